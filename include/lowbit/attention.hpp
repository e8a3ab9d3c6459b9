// Multi-head attention (causal or not, GQA/MQA) through dispatch.
#pragma once

#include <cstddef>

namespace lowbit {

/// Shape of one attention call. Layouts are token-major: q and out are
/// [n_q][n_heads][head_dim], k and v are [n_kv][n_kv_heads][head_dim]; a stride
/// is the distance in floats between consecutive tokens (0 = dense). Query i sits
/// at position n_kv - n_q + i, so a causal query sees keys 0 .. n_kv - n_q + i.
struct attention_shape {
  size_t n_q = 0;
  size_t n_kv = 0;
  size_t n_heads = 0;
  size_t n_kv_heads = 0;   ///< must divide n_heads
  size_t head_dim = 0;
  float scale = 0.0f;      ///< 0 means 1/sqrt(head_dim)
  bool causal = true;
  size_t q_stride = 0, k_stride = 0, v_stride = 0, out_stride = 0;
};

/// out = softmax(scale * q . k^T [+ causal mask]) . v, per head, in f32.
void attention(const attention_shape& shape, const float* q, const float* k, const float* v, float* out);

}  // namespace lowbit
