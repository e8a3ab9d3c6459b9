// Scalar oracle: multi-head attention in f32 (causal or not, GQA/MQA).
//
// Layouts are token-major: q and out are [n_q][n_heads][head_dim], k and v are
// [n_kv][n_kv_heads][head_dim], each with its own token stride in floats. Query
// i sits at position n_kv - n_q + i (the new tokens come last), so a causal
// query sees keys 0..n_kv-n_q+i. Query head h reads KV head h / (n_heads /
// n_kv_heads). Scores and sums are accumulated in double with the maximum
// subtracted before exp, so the oracle is as exact as f32 inputs allow.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "lowbit/attention.hpp"
#include "lowbit/detail/codegen.hpp"

namespace lowbit::ref {
LOWBIT_CODEGEN_BEGIN

/// Attention for query heads [head_begin, head_end) of every query token.
/// `s` must be normalized: strides and scale filled in (the public API does this).
inline void attention(const attention_shape& s, const float* q, const float* k, const float* v, float* out,
                      size_t head_begin, size_t head_end) {
  const size_t group = s.n_heads / s.n_kv_heads;
  std::vector<double> scores(s.n_kv), acc(s.head_dim);
  for (size_t h = head_begin; h < head_end; ++h) {
    const size_t kvh = h / group;
    for (size_t i = 0; i < s.n_q; ++i) {
      const float* qi = q + i * s.q_stride + h * s.head_dim;
      const size_t visible = s.causal ? s.n_kv - s.n_q + i + 1 : s.n_kv;
      double max_score = -INFINITY;
      for (size_t j = 0; j < visible; ++j) {
        const float* kj = k + j * s.k_stride + kvh * s.head_dim;
        double dot = 0;
        for (size_t d = 0; d < s.head_dim; ++d) dot += static_cast<double>(qi[d]) * kj[d];
        scores[j] = dot * s.scale;
        max_score = std::max(max_score, scores[j]);
      }
      double total = 0;
      for (size_t d = 0; d < s.head_dim; ++d) acc[d] = 0;
      for (size_t j = 0; j < visible; ++j) {
        const double p = std::exp(scores[j] - max_score);
        total += p;
        const float* vj = v + j * s.v_stride + kvh * s.head_dim;
        for (size_t d = 0; d < s.head_dim; ++d) acc[d] += p * vj[d];
      }
      float* oi = out + i * s.out_stride + h * s.head_dim;
      for (size_t d = 0; d < s.head_dim; ++d) oi[d] = static_cast<float>(acc[d] / total);
    }
  }
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::ref
