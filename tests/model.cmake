# tests of decoder/model
