# tests of decoder/gguf
