// The reference decoder's transformer: llama and qwen2 from a GGUF file.
//
// It exists to prove the kernels right end to end, so it runs every matmul
// through lowbit::linear (packed once at load, activations quantized to the
// format the weights pair with, as llama.cpp does) and every attention call
// through the paged KV cache and lowbit::attention. What is left here is the
// glue both architectures share: RMSNorm, RoPE (pairwise for llama, NEOX for
// qwen2), SwiGLU, the residual stream, and qwen2's Q/K/V biases. Weights are
// validated once at load against the architecture's shapes, so a bad file is a
// clear error naming the tensor, never a crash mid-generation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gguf/gguf.hpp"
#include "lowbit/formats.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/kv_cache.hpp"

namespace lowbit::model {

/// RoPE conventions: which pairs of a head's values rotate together.
enum class rope_style {
  pairwise,  ///< (2i, 2i+1): llama
  neox,      ///< (i, i + n_rot/2): qwen2
};

/// Hyper-parameters, read from the `{arch}.*` keys.
struct model_config {
  std::string architecture;   ///< "llama" or "qwen2"
  std::string name;           ///< general.name, when present
  size_t n_layers = 0;
  size_t n_embd = 0;
  size_t n_ff = 0;
  size_t n_heads = 0;
  size_t n_kv_heads = 0;
  size_t head_dim = 0;
  size_t n_rot = 0;           ///< rotated dimensions per head
  size_t n_vocab = 0;
  size_t context_length = 0;
  float rope_freq_base = 10000.0f;
  float rms_epsilon = 1e-5f;
  rope_style rope = rope_style::pairwise;
  bool qkv_bias = false;      ///< qwen2
  bool tied_output = false;   ///< the output head reuses token_embd.weight
};

/// Options for loading.
struct load_options {
  format kv_k_format = format::f16;  ///< KV cache formats (llama.cpp's default is f16)
  format kv_v_format = format::f16;
};

/// One projection: packed weights, plus a bias for qwen2's Q/K/V.
struct projection {
  PackedWeights weights;
  std::vector<float> bias;    ///< empty when the layer has none
};

/// The weights of one transformer block.
struct layer_weights {
  std::vector<float> attn_norm, ffn_norm;
  projection q, k, v, o;
  projection gate, up, down;
};

/// A loaded model: configuration and packed weights. Immutable after load and
/// shared by any number of Contexts.
class Model {
 public:
  /// Loads a model from a GGUF file already opened (the file is kept for the
  /// token embedding rows). Throws lowbit::Error naming the key or tensor that
  /// is missing, has the wrong shape, or has a type lowbit cannot run.
  static std::shared_ptr<const Model> load(gguf::File file, const load_options& options = {});

  const model_config& config() const { return config_; }
  const gguf::File& file() const { return file_; }
  const load_options& options() const { return options_; }
  /// Seconds spent packing the weights (the parallel repack step), of the total load.
  double pack_seconds() const { return pack_seconds_; }

  /// Writes the embedding of each token into rows of x ([n][n_embd]).
  void embed(std::span<const int32_t> tokens, float* x) const;

  const std::vector<layer_weights>& layers() const { return layers_; }
  const std::vector<float>& output_norm() const { return output_norm_; }
  const PackedWeights& output() const { return output_; }

 private:
  explicit Model(gguf::File file) : file_(std::move(file)) {}
  model_config config_;
  load_options options_;
  gguf::File file_;
  const gguf::tensor_info* token_embd_ = nullptr;
  std::vector<layer_weights> layers_;
  std::vector<float> output_norm_;
  PackedWeights output_;
  double pack_seconds_ = 0;
};

/// Reads the configuration of a GGUF model without loading weights.
model_config read_config(const gguf::File& file);

/// A generation state: one sequence in its own paged KV cache, and scratch.
class Context {
 public:
  /// `max_tokens` bounds the context (default: the model's context length).
  explicit Context(std::shared_ptr<const Model> model, size_t max_tokens = 0);

  /// Runs `tokens` through the model at positions position() .. position()+n-1
  /// and appends them to the cache. Returns logits: [n][n_vocab] when
  /// `all_logits`, else those of the last token only ([n_vocab]). Throws when
  /// the context would overflow (and then appends nothing).
  std::vector<float> evaluate(std::span<const int32_t> tokens, bool all_logits = false);

  /// Tokens in the cache.
  size_t position() const { return position_; }
  size_t max_tokens() const { return max_tokens_; }
  /// Forgets everything (the sequence's blocks go back to the pool).
  void reset();

  const Model& model() const { return *model_; }

 private:
  std::shared_ptr<const Model> model_;
  size_t max_tokens_ = 0;
  size_t position_ = 0;
  KvCache cache_;
  seq_id sequence_ = 0;
};

}  // namespace lowbit::model
