// Synthetic models; see synthetic.hpp.
#include "model/synthetic.hpp"

#include <cstring>
#include <vector>

#include "gguf/gguf_writer.hpp"
#include "lowbit/error.hpp"
#include "lowbit/parallel.hpp"
#include "lowbit/quant.hpp"

namespace lowbit::model {
namespace {

/// A counter-based generator (splitmix64): value i of stream s is a pure
/// function of (seed, s, i), so rows can be filled in parallel and the file
/// is the same for any thread count.
float uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + stream * 0xbf58476d1ce4e5b9ull + index;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<double>(z >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

class tensor_maker {
 public:
  tensor_maker(gguf::Writer& writer, const synthetic_config& config) : writer_(writer), config_(config) {}

  /// A [rows x cols] matrix in `fmt`, quantized from random f32 values.
  void matrix(const std::string& name, size_t cols, size_t rows, format fmt) {
    const format_traits& t = traits(fmt);
    if (cols % t.block_length != 0)
      throw Error(status::invalid_argument, "synthetic model: " + name + " has " + std::to_string(cols) +
                                                " columns, not a multiple of the " + std::string(t.name) + " block");
    const uint64_t stream = ++streams_;
    const size_t row = row_bytes(t, cols);
    std::vector<uint8_t> bytes(row * rows);
    parallel_for(rows, 64, [&](size_t begin, size_t end) {
      std::vector<float> values(cols);
      for (size_t r = begin; r < end; ++r) {
        for (size_t c = 0; c < cols; ++c) values[c] = config_.scale * uniform(config_.seed, stream, r * cols + c);
        if (fmt == format::f32)
          std::memcpy(bytes.data() + r * row, values.data(), row);
        else
          quantize_rows(fmt, values.data(), 1, cols, bytes.data() + r * row, row);
      }
    });
    writer_.add_tensor(name, {cols, rows}, static_cast<uint32_t>(fmt), bytes);
  }

  /// A vector of `n` f32 values around `center`.
  void vector(const std::string& name, size_t n, float center, float spread) {
    const uint64_t stream = ++streams_;
    std::vector<uint8_t> bytes(n * sizeof(float));
    for (size_t i = 0; i < n; ++i) {
      const float v = center + spread * uniform(config_.seed, stream, i);
      std::memcpy(bytes.data() + i * sizeof(float), &v, sizeof v);
    }
    writer_.add_tensor(name, {n}, static_cast<uint32_t>(format::f32), bytes);
  }

 private:
  gguf::Writer& writer_;
  const synthetic_config& config_;
  uint64_t streams_ = 0;
};

}  // namespace

void copy_metadata(gguf::Writer& writer, const gguf::File& source, std::string_view prefix) {
  for (size_t i = 0; i < source.metadata_count(); ++i) {
    const std::string_view key = source.key(i);
    // The alignment belongs to the file being written (the Writer's own).
    if (key.substr(0, prefix.size()) != prefix || key == "general.alignment") continue;
    const gguf::value& v = source.metadata(i);
    const std::span<const uint8_t> payload(v.data, v.bytes);
    if (v.type == gguf::value_type::array)
      writer.set_raw_array(std::string(key), v.element_type, v.count, payload);
    else
      writer.set_raw(std::string(key), v.type, payload);
  }
}

void write_synthetic_model(const std::string& path, const synthetic_config& config,
                           const gguf::File* tokenizer_source) {
  const synthetic_config& c = config;
  if (c.architecture != "llama" && c.architecture != "qwen2")
    throw Error(status::invalid_argument, "synthetic model: architecture '" + c.architecture +
                                              "' is not llama or qwen2");
  if (c.n_heads == 0 || c.n_kv_heads == 0 || c.n_heads % c.n_kv_heads != 0 || c.n_embd % c.n_heads != 0)
    throw Error(status::invalid_argument, "synthetic model: n_heads must divide n_embd and be a multiple of n_kv_heads");
  size_t n_vocab = c.n_vocab;
  if (tokenizer_source) n_vocab = tokenizer_source->get_string_array("tokenizer.ggml.tokens").size();
  const size_t head_dim = c.n_embd / c.n_heads;

  gguf::Writer w;
  const std::string a = c.architecture + ".";
  w.set_string("general.architecture", c.architecture);
  w.set_string("general.name", "lowbit synthetic " + c.architecture);
  w.set_u32("general.quantization_version", 2);
  w.set_u32(a + "block_count", static_cast<uint32_t>(c.n_layers));
  w.set_u32(a + "context_length", static_cast<uint32_t>(c.context_length));
  w.set_u32(a + "embedding_length", static_cast<uint32_t>(c.n_embd));
  w.set_u32(a + "feed_forward_length", static_cast<uint32_t>(c.n_ff));
  w.set_u32(a + "attention.head_count", static_cast<uint32_t>(c.n_heads));
  w.set_u32(a + "attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  w.set_u32(a + "rope.dimension_count", static_cast<uint32_t>(head_dim));
  w.set_f32(a + "rope.freq_base", c.rope_freq_base);
  w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_u32(a + "vocab_size", static_cast<uint32_t>(n_vocab));
  if (tokenizer_source) copy_metadata(w, *tokenizer_source, "tokenizer.");

  tensor_maker make(w, c);
  make.matrix("token_embd.weight", c.n_embd, n_vocab, c.embedding);
  for (size_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    make.vector(p + "attn_norm.weight", c.n_embd, 1.0f, 0.1f);
    make.matrix(p + "attn_q.weight", c.n_embd, c.n_embd, c.weights);
    make.matrix(p + "attn_k.weight", c.n_embd, c.n_kv_heads * head_dim, c.weights);
    make.matrix(p + "attn_v.weight", c.n_embd, c.n_kv_heads * head_dim, c.weights);
    if (c.architecture == "qwen2") {
      make.vector(p + "attn_q.bias", c.n_embd, 0.0f, 0.1f);
      make.vector(p + "attn_k.bias", c.n_kv_heads * head_dim, 0.0f, 0.1f);
      make.vector(p + "attn_v.bias", c.n_kv_heads * head_dim, 0.0f, 0.1f);
    }
    make.matrix(p + "attn_output.weight", c.n_embd, c.n_embd, c.weights);
    make.vector(p + "ffn_norm.weight", c.n_embd, 1.0f, 0.1f);
    make.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff, c.weights);
    make.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff, c.weights);
    make.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd, c.weights);
  }
  make.vector("output_norm.weight", c.n_embd, 1.0f, 0.1f);
  if (!c.tied_output) make.matrix("output.weight", c.n_embd, n_vocab, c.weights);
  w.write(path);
}

}  // namespace lowbit::model
