# tests of decoder/tokenizer
