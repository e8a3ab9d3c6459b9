// Scalar oracle: quantized dot products and the `linear` layer.
//
// Each dot product accumulates the integer products of one block exactly in
// int32, then folds the block into an f32 sum with the block's scales, in block
// order. SIMD kernels must reproduce the integer sums exactly; their float
// epilogue may reorder, and tests bound that difference from K and the format.
//
// linear(): y[M x N] = x[M x K] . W^T, W stored as N GGUF rows of K, x first
// quantized row by row to the activation format W pairs with (Q4_0/Q8_0 ->
// Q8_0, Q4_1 -> Q8_1, Q4_K/Q6_K -> Q8_K).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "quant.hpp"

namespace lowbit::ref {
LOWBIT_CODEGEN_BEGIN

/// sum_i w_i * a_i over `k` elements, Q4_0 weights x Q8_0 activations.
inline float dot_q4_0_q8_0(const block_q4_0* w, const block_q8_0* a, size_t k) noexcept {
  float sum = 0.0f;
  for (size_t b = 0; b < k / qk4_0; ++b) {
    int32_t isum = 0;
    for (size_t j = 0; j < 16; ++j) {
      isum += ((w[b].qs[j] & 0x0f) - 8) * a[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + 16];
    }
    sum += static_cast<float>(isum) * (fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d));
  }
  return sum;
}

/// Q4_1 weights x Q8_1 activations: d_w*d_a*sum(q_w*q_a) + m_w*s_a per block.
inline float dot_q4_1_q8_1(const block_q4_1* w, const block_q8_1* a, size_t k) noexcept {
  float sum = 0.0f;
  for (size_t b = 0; b < k / qk4_1; ++b) {
    int32_t isum = 0;
    for (size_t j = 0; j < 16; ++j) {
      isum += (w[b].qs[j] & 0x0f) * a[b].qs[j];
      isum += (w[b].qs[j] >> 4) * a[b].qs[j + 16];
    }
    sum += static_cast<float>(isum) * (fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d)) +
           fp16_to_fp32(w[b].m) * fp16_to_fp32(a[b].s);
  }
  return sum;
}

/// Q8_0 weights x Q8_0 activations.
inline float dot_q8_0_q8_0(const block_q8_0* w, const block_q8_0* a, size_t k) noexcept {
  float sum = 0.0f;
  for (size_t b = 0; b < k / qk8_0; ++b) {
    int32_t isum = 0;
    for (size_t j = 0; j < qk8_0; ++j) isum += w[b].qs[j] * a[b].qs[j];
    sum += static_cast<float>(isum) * (fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d));
  }
  return sum;
}

/// Q4_K weights x Q8_K activations: d_a*(d*sum_s sc_s*isum_s - dmin*sum_s mn_s*bsum_s).
inline float dot_q4_k_q8_k(const block_q4_k* w, const block_q8_k* a, size_t k) noexcept {
  float sum = 0.0f;
  for (size_t b = 0; b < k / qk_k; ++b) {
    int32_t scaled = 0, mins = 0;
    for (size_t s = 0; s < 8; ++s) {
      int sc, mn;
      q4_k_scale_min(w[b].scales, s, sc, mn);
      const size_t g = s / 2;
      const int shift = (s % 2) * 4;
      int32_t isum = 0;
      for (size_t l = 0; l < 32; ++l) isum += ((w[b].qs[32 * g + l] >> shift) & 0x0f) * a[b].qs[32 * s + l];
      scaled += sc * isum;
      mins += mn * (a[b].bsums[2 * s] + a[b].bsums[2 * s + 1]);
    }
    sum += a[b].d * (fp16_to_fp32(w[b].d) * static_cast<float>(scaled)) -
           a[b].d * (fp16_to_fp32(w[b].dmin) * static_cast<float>(mins));
  }
  return sum;
}

/// Q6_K weights x Q8_K activations: d_w*d_a*sum_s scale_s*sum((code-32)*q_a).
inline float dot_q6_k_q8_k(const block_q6_k* w, const block_q8_k* a, size_t k) noexcept {
  float sum = 0.0f;
  for (size_t b = 0; b < k / qk_k; ++b) {
    int32_t scaled = 0;
    for (size_t s = 0; s < 16; ++s) {
      int32_t isum = 0;
      for (size_t j = 0; j < 16; ++j) isum += (q6_k_code(w[b], 16 * s + j) - 32) * a[b].qs[16 * s + j];
      scaled += w[b].scales[s] * isum;
    }
    sum += a[b].d * (fp16_to_fp32(w[b].d) * static_cast<float>(scaled));
  }
  return sum;
}

/// Dot of one weight row of `fmt` with one activation row of the paired format.
/// Returns false when `fmt` is not a weight format.
inline bool dot_row(format fmt, const void* w, const void* a, size_t k, float& out) noexcept {
  switch (fmt) {
    case format::q4_0:
      out = dot_q4_0_q8_0(static_cast<const block_q4_0*>(w), static_cast<const block_q8_0*>(a), k);
      return true;
    case format::q4_1:
      out = dot_q4_1_q8_1(static_cast<const block_q4_1*>(w), static_cast<const block_q8_1*>(a), k);
      return true;
    case format::q8_0:
      out = dot_q8_0_q8_0(static_cast<const block_q8_0*>(w), static_cast<const block_q8_0*>(a), k);
      return true;
    case format::q4_k:
      out = dot_q4_k_q8_k(static_cast<const block_q4_k*>(w), static_cast<const block_q8_k*>(a), k);
      return true;
    case format::q6_k:
      out = dot_q6_k_q8_k(static_cast<const block_q6_k*>(w), static_cast<const block_q8_k*>(a), k);
      return true;
    default:
      return false;
  }
}

/// y[m*ldy + n] = sum_k x[m*ldx + k] * W[n][k], with x quantized to the paired
/// activation format first. `w` is N GGUF rows of `k` elements of `fmt`.
/// Returns false when `fmt` is not a weight format.
inline bool linear(format fmt, const void* w, size_t n, size_t k, const float* x, size_t ldx, size_t m, float* y,
                   size_t ldy) {
  const format_traits* wt = find_format(fmt);
  if (!wt || !wt->is_weight) return false;
  const format_traits* at = find_format(wt->activation);
  const size_t w_row = row_bytes(*wt, k), a_row = row_bytes(*at, k);
  std::vector<unsigned char> xq(a_row);
  for (size_t i = 0; i < m; ++i) {
    // Only the three activation formats can occur here; naming them keeps the
    // compiler from reasoning about the plain formats' copies on this buffer.
    switch (at->id) {
      case format::q8_0: quantize_row_q8_0(x + i * ldx, reinterpret_cast<block_q8_0*>(xq.data()), k); break;
      case format::q8_1: quantize_row_q8_1(x + i * ldx, reinterpret_cast<block_q8_1*>(xq.data()), k); break;
      case format::q8_k: quantize_row_q8_k(x + i * ldx, reinterpret_cast<block_q8_k*>(xq.data()), k); break;
      default: return false;
    }
    for (size_t j = 0; j < n; ++j)
      dot_row(fmt, static_cast<const unsigned char*>(w) + j * w_row, xq.data(), k, y[i * ldy + j]);
  }
  return true;
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::ref
