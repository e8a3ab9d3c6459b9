// Synthetic models: llama/qwen2 GGUF files with random weights, written by
// lowbit's own GGUF writer.
//
// They serve two jobs. Tests build tiny ones to exercise loading and its
// errors without shipping a model; the speed comparison builds a 1B-class one
// that llama.cpp loads too, so both engines run the same large file. Weights
// are drawn from a seeded generator (the same seed gives the same file) at a
// small scale, so activations stay finite through any number of layers. The
// tokenizer, when wanted, is copied from an existing GGUF model.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gguf/gguf.hpp"
#include "gguf/gguf_writer.hpp"
#include "lowbit/formats.hpp"

namespace lowbit::model {

struct synthetic_config {
  std::string architecture = "llama";  ///< "llama" or "qwen2" (qwen2 adds Q/K/V biases)
  size_t n_layers = 2;
  size_t n_embd = 64;
  size_t n_ff = 128;
  size_t n_heads = 4;
  size_t n_kv_heads = 2;
  size_t n_vocab = 256;         ///< ignored when a tokenizer is copied (its vocabulary decides)
  size_t context_length = 2048;
  float rope_freq_base = 10000.0f;
  format weights = format::q4_0;        ///< every matrix
  format embedding = format::q4_0;      ///< token_embd (also the tied output head)
  bool tied_output = true;
  uint64_t seed = 1;
  float scale = 0.05f;          ///< weights are uniform in [-scale, scale]
};

/// Copies every metadata key of `source` that starts with `prefix` ("" for
/// all), values unchanged, into `writer`; general.alignment is the writer's
/// own and is never copied.
void copy_metadata(gguf::Writer& writer, const gguf::File& source, std::string_view prefix);

/// Writes a synthetic model to `path` (atomically: a temporary file renamed).
/// With `tokenizer_source`, its tokenizer.* keys are copied and n_vocab is its
/// vocabulary size.
void write_synthetic_model(const std::string& path, const synthetic_config& config,
                           const gguf::File* tokenizer_source = nullptr);

}  // namespace lowbit::model
