// Loading and running llama / qwen2 models. See model.hpp for why the model is
// built this way; this file keeps the numerics close to llama.cpp's CPU
// backend (double-accumulated RMSNorm, RoPE angles stepped by repeated
// multiplication, SiLU as x / (1 + e^-x)) so greedy continuations can be
// compared token for token.
#include "model/model.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string_view>

#include "lowbit/attention.hpp"
#include "lowbit/error.hpp"
#include "lowbit/quant.hpp"

namespace lowbit::model {
namespace {

[[noreturn]] void bad_model(const gguf::File& file, const std::string& what) {
  throw Error(status::bad_file, "bad model '" + file.path() + "': " + what);
}

[[noreturn]] void unsupported_model(const gguf::File& file, const std::string& what) {
  throw Error(status::unsupported, "model '" + file.path() + "': " + what);
}

std::string type_label(uint32_t type) {
  const gguf::tensor_type_traits* t = gguf::tensor_type(type);
  return t ? std::string(t->name) : "type " + std::to_string(type);
}

std::string shape_label(const gguf::tensor_info& t) {
  std::string s = "[";
  for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
  return s + "]";
}

/// A 1-D f32 (or f16) vector of `length` values, e.g. a norm weight or a bias.
std::vector<float> load_vector(const gguf::File& file, const std::string& name, size_t length) {
  const gguf::tensor_info& t = file.tensor(name);
  if (t.n_dims != 1 || t.ne[0] != length)
    bad_model(file, "tensor '" + name + "' has shape " + shape_label(t) + ", expected [" + std::to_string(length) + "]");
  std::vector<float> v(length);
  if (t.type == static_cast<uint32_t>(format::f32)) {
    std::memcpy(v.data(), t.data, length * sizeof(float));
  } else if (t.type == static_cast<uint32_t>(format::f16)) {
    for (size_t i = 0; i < length; ++i) {
      f16_bits h;
      std::memcpy(&h, t.data + 2 * i, 2);
      v[i] = fp16_to_fp32(h);
    }
  } else {
    unsupported_model(file, "tensor '" + name + "' has type " + type_label(t.type) + "; vectors must be f32 or f16");
  }
  return v;
}

/// Checks a matrix of `out` rows of `in` values and returns its lowbit format.
format check_matrix(const gguf::File& file, const gguf::tensor_info& t, size_t in, size_t out) {
  if (t.n_dims != 2 || t.ne[0] != in || t.ne[1] != out)
    bad_model(file, "tensor '" + t.name + "' has shape " + shape_label(t) + ", expected [" + std::to_string(in) + ", " +
                        std::to_string(out) + "]");
  const format_traits* f = find_format(static_cast<format>(t.type));
  if (!f || !f->is_weight)
    unsupported_model(file, "tensor '" + t.name + "' has type " + type_label(t.type) +
                                ", which lowbit's linear does not run (supported: q4_0, q4_1, q8_0, q4_k, q6_k)");
  return f->id;
}

PackedWeights load_matrix(const gguf::File& file, const std::string& name, size_t in, size_t out) {
  const gguf::tensor_info& t = file.tensor(name);
  const format fmt = check_matrix(file, t, in, out);
  return pack_weights(fmt, t.data, t.bytes, out, in);
}

/// y = x * 1/sqrt(mean(x^2) + eps) * weight, row by row; the sum of squares is
/// accumulated in double, as ggml does.
void rms_norm(const float* x, const float* weight, size_t rows, size_t n, float epsilon, float* y) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float mean = static_cast<float>(sum / static_cast<double>(n));
    const float scale = 1.0f / std::sqrt(mean + epsilon);
    for (size_t i = 0; i < n; ++i) yr[i] = (xr[i] * scale) * weight[i];
  }
}

/// cos and sin of every rotation angle of tokens first_position ..
/// first_position + rows - 1: the angle of pair j is position *
/// base^(-2j/n_rot), stepped by one multiplication per pair. Built once per
/// evaluate and shared by Q and K of every layer.
struct rope_angles {
  size_t pairs;
  std::vector<float> cos, sin;  ///< [rows][pairs]

  rope_angles(size_t rows, size_t n_rot, size_t first_position, float freq_base)
      : pairs(n_rot / 2), cos(rows * pairs), sin(rows * pairs) {
    const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
    for (size_t r = 0; r < rows; ++r) {
      float theta = static_cast<float>(first_position + r);
      for (size_t j = 0; j < pairs; ++j) {
        cos[r * pairs + j] = std::cos(theta);
        sin[r * pairs + j] = std::sin(theta);
        theta *= theta_scale;
      }
    }
  }
};

/// Rotates the first n_rot values of each head of `rows` tokens in place.
void apply_rope(float* x, size_t rows, size_t n_heads, size_t head_dim, const rope_angles& angles, rope_style style) {
  const size_t pairs = angles.pairs;
  for (size_t r = 0; r < rows; ++r) {
    const float* c = &angles.cos[r * pairs];
    const float* s = &angles.sin[r * pairs];
    for (size_t h = 0; h < n_heads; ++h) {
      float* v = x + (r * n_heads + h) * head_dim;
      for (size_t j = 0; j < pairs; ++j) {
        const size_t a = style == rope_style::pairwise ? 2 * j : j;
        const size_t b = style == rope_style::pairwise ? 2 * j + 1 : j + pairs;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * c[j] - x1 * s[j];
        v[b] = x0 * s[j] + x1 * c[j];
      }
    }
  }
}

void add_bias(float* y, size_t rows, const std::vector<float>& bias) {
  if (bias.empty()) return;
  for (size_t r = 0; r < rows; ++r)
    for (size_t i = 0; i < bias.size(); ++i) y[r * bias.size() + i] += bias[i];
}

void project(const projection& p, const float* x, size_t rows, float* y) {
  linear(p.weights, x, rows, y);
  add_bias(y, rows, p.bias);
}

}  // namespace

model_config read_config(const gguf::File& file) {
  model_config c;
  c.architecture = std::string(file.get_string("general.architecture"));
  if (c.architecture == "llama") {
    c.rope = rope_style::pairwise;
  } else if (c.architecture == "qwen2") {
    c.rope = rope_style::neox;
    c.qkv_bias = true;
  } else {
    unsupported_model(file, "architecture '" + c.architecture + "' is not supported (supported: llama, qwen2)");
  }
  c.name = std::string(file.get_string_or("general.name", ""));
  const std::string a = c.architecture + ".";
  c.n_layers = file.get_uint(a + "block_count");
  c.n_embd = file.get_uint(a + "embedding_length");
  c.n_ff = file.get_uint(a + "feed_forward_length");
  c.n_heads = file.get_uint(a + "attention.head_count");
  c.n_kv_heads = file.get_uint_or(a + "attention.head_count_kv", c.n_heads);
  c.context_length = file.get_uint(a + "context_length");
  c.rms_epsilon = static_cast<float>(file.get_float(a + "attention.layer_norm_rms_epsilon"));
  c.rope_freq_base = static_cast<float>(file.get_float_or(a + "rope.freq_base", 10000.0));
  if (c.n_layers == 0 || c.n_embd == 0 || c.n_ff == 0 || c.n_heads == 0 || c.n_kv_heads == 0 || c.context_length == 0)
    bad_model(file, "block_count, embedding_length, feed_forward_length, head counts and context_length must be non-zero");
  if (c.n_heads % c.n_kv_heads != 0)
    bad_model(file, "head_count " + std::to_string(c.n_heads) + " is not a multiple of head_count_kv " +
                        std::to_string(c.n_kv_heads));
  c.head_dim = file.get_uint_or(a + "attention.key_length", c.n_embd / c.n_heads);
  const uint64_t value_length = file.get_uint_or(a + "attention.value_length", c.head_dim);
  if (value_length != c.head_dim)
    unsupported_model(file, "key_length " + std::to_string(c.head_dim) + " differs from value_length " +
                                std::to_string(value_length));
  if (c.head_dim == 0 || c.head_dim % 2 != 0)
    bad_model(file, "head dimension " + std::to_string(c.head_dim) + " must be even and non-zero");
  c.n_rot = file.get_uint_or(a + "rope.dimension_count", c.head_dim);
  if (c.n_rot == 0 || c.n_rot % 2 != 0 || c.n_rot > c.head_dim)
    bad_model(file, "rope.dimension_count " + std::to_string(c.n_rot) + " must be even and at most the head dimension " +
                        std::to_string(c.head_dim));
  const gguf::tensor_info& embd = file.tensor("token_embd.weight");
  if (embd.n_dims != 2 || embd.ne[0] != c.n_embd)
    bad_model(file, "tensor 'token_embd.weight' has shape " + shape_label(embd) + ", expected [" +
                        std::to_string(c.n_embd) + ", n_vocab]");
  c.n_vocab = embd.ne[1];
  c.tied_output = file.find_tensor("output.weight") == nullptr;
  return c;
}

std::shared_ptr<const Model> Model::load(gguf::File file, const load_options& options) {
  std::shared_ptr<Model> m(new Model(std::move(file)));
  m->options_ = options;
  const gguf::File& f = m->file_;
  model_config& c = m->config_;
  c = read_config(f);

  m->token_embd_ = &f.tensor("token_embd.weight");
  const format_traits* embd_format = find_format(static_cast<format>(m->token_embd_->type));
  if (!embd_format)
    unsupported_model(f, "tensor 'token_embd.weight' has type " + type_label(m->token_embd_->type) +
                             ", which lowbit cannot dequantize");

  const size_t q_out = c.n_heads * c.head_dim;
  const size_t kv_out = c.n_kv_heads * c.head_dim;
  const auto started = std::chrono::steady_clock::now();
  m->layers_.resize(c.n_layers);
  for (size_t l = 0; l < c.n_layers; ++l) {
    layer_weights& w = m->layers_[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    w.attn_norm = load_vector(f, p + "attn_norm.weight", c.n_embd);
    w.ffn_norm = load_vector(f, p + "ffn_norm.weight", c.n_embd);
    w.q.weights = load_matrix(f, p + "attn_q.weight", c.n_embd, q_out);
    w.k.weights = load_matrix(f, p + "attn_k.weight", c.n_embd, kv_out);
    w.v.weights = load_matrix(f, p + "attn_v.weight", c.n_embd, kv_out);
    w.o.weights = load_matrix(f, p + "attn_output.weight", q_out, c.n_embd);
    w.gate.weights = load_matrix(f, p + "ffn_gate.weight", c.n_embd, c.n_ff);
    w.up.weights = load_matrix(f, p + "ffn_up.weight", c.n_embd, c.n_ff);
    w.down.weights = load_matrix(f, p + "ffn_down.weight", c.n_ff, c.n_embd);
    if (c.qkv_bias) {
      w.q.bias = load_vector(f, p + "attn_q.bias", q_out);
      w.k.bias = load_vector(f, p + "attn_k.bias", kv_out);
      w.v.bias = load_vector(f, p + "attn_v.bias", kv_out);
    }
  }
  m->output_norm_ = load_vector(f, "output_norm.weight", c.n_embd);
  m->output_ = load_matrix(f, c.tied_output ? "token_embd.weight" : "output.weight", c.n_embd, c.n_vocab);
  m->pack_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return m;
}

void Model::embed(std::span<const int32_t> tokens, float* x) const {
  const format fmt = static_cast<format>(token_embd_->type);
  const size_t row = token_embd_->row_bytes();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t id = tokens[i];
    if (id < 0 || static_cast<size_t>(id) >= config_.n_vocab)
      throw Error(status::invalid_argument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                                std::to_string(config_.n_vocab) + ")");
    dequantize_rows(fmt, token_embd_->data + static_cast<size_t>(id) * row, row, 1, config_.n_embd,
                    x + i * config_.n_embd);
  }
}

namespace {

kv_cache_config cache_config(const Model& model, size_t max_tokens) {
  const model_config& c = model.config();
  kv_cache_config k;
  k.n_layers = c.n_layers;
  k.n_kv_heads = c.n_kv_heads;
  k.head_dim = c.head_dim;
  k.k_format = model.options().kv_k_format;
  k.v_format = model.options().kv_v_format;
  k.block_tokens = 32;
  k.max_blocks = (max_tokens + k.block_tokens - 1) / k.block_tokens;
  return k;
}

size_t context_tokens(const Model& model, size_t max_tokens) {
  const size_t limit = model.config().context_length;
  if (max_tokens == 0) return limit;
  if (max_tokens > limit)
    throw Error(status::invalid_argument, "a context of " + std::to_string(max_tokens) +
                                              " tokens exceeds the model's context length " + std::to_string(limit));
  return max_tokens;
}

}  // namespace

Context::Context(std::shared_ptr<const Model> model, size_t max_tokens)
    : model_(std::move(model)),
      max_tokens_(context_tokens(*model_, max_tokens)),
      cache_(cache_config(*model_, max_tokens_)),
      sequence_(cache_.create_sequence()) {}

void Context::reset() {
  cache_.free_sequence(sequence_);
  sequence_ = cache_.create_sequence();
  position_ = 0;
}

std::vector<float> Context::evaluate(std::span<const int32_t> tokens, bool all_logits) {
  const model_config& c = model_->config();
  const size_t n = tokens.size();
  if (n == 0) throw Error(status::invalid_argument, "evaluate: no tokens");
  if (position_ + n > max_tokens_)
    throw Error(status::invalid_argument, "evaluate: " + std::to_string(n) + " more tokens would overflow the context (" +
                                              std::to_string(position_) + " of " + std::to_string(max_tokens_) +
                                              " used)");
  const size_t q_dim = c.n_heads * c.head_dim;
  const size_t kv_dim = c.n_kv_heads * c.head_dim;
  std::vector<float> x(n * c.n_embd), h(n * std::max(c.n_embd, q_dim)), q(n * q_dim), k(n * kv_dim), v(n * kv_dim),
      att(n * q_dim), gate(n * c.n_ff), up(n * c.n_ff);
  model_->embed(tokens, x.data());
  const rope_angles angles(n, c.n_rot, position_, c.rope_freq_base);

  for (size_t l = 0; l < c.n_layers; ++l) {
    const layer_weights& w = model_->layers()[l];
    rms_norm(x.data(), w.attn_norm.data(), n, c.n_embd, c.rms_epsilon, h.data());
    project(w.q, h.data(), n, q.data());
    project(w.k, h.data(), n, k.data());
    project(w.v, h.data(), n, v.data());
    apply_rope(q.data(), n, c.n_heads, c.head_dim, angles, c.rope);
    apply_rope(k.data(), n, c.n_kv_heads, c.head_dim, angles, c.rope);
    cache_.append(sequence_, l, k.data(), v.data(), n);
    paged_query query;
    query.seq = sequence_;
    query.q = q.data();
    query.n_q = n;
    query.out = att.data();
    attention(cache_, l, c.n_heads, &query, 1);
    project(w.o, att.data(), n, h.data());
    for (size_t i = 0; i < n * c.n_embd; ++i) x[i] += h[i];

    rms_norm(x.data(), w.ffn_norm.data(), n, c.n_embd, c.rms_epsilon, h.data());
    project(w.gate, h.data(), n, gate.data());
    project(w.up, h.data(), n, up.data());
    for (size_t i = 0; i < n * c.n_ff; ++i) {
      const float g = gate[i];
      gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
    project(w.down, gate.data(), n, h.data());
    for (size_t i = 0; i < n * c.n_embd; ++i) x[i] += h[i];
  }
  position_ += n;

  const size_t first = all_logits ? 0 : n - 1;
  const size_t rows = n - first;
  rms_norm(x.data() + first * c.n_embd, model_->output_norm().data(), rows, c.n_embd, c.rms_epsilon, h.data());
  std::vector<float> logits(rows * c.n_vocab);
  linear(model_->output(), h.data(), rows, logits.data());
  return logits;
}

}  // namespace lowbit::model
