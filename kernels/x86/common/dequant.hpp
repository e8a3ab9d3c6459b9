// SIMD dequantizers (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K -> f32) for the x86 tiers.
//
// Each block's codes are first spread to one byte per element (nibble split
// with 128-bit ops, or the Q6_K bit gather), then widened V::lanes at a time to
// int32, converted and scaled. Every float operation is the oracle's, in the
// oracle's order (for example float(q - 8) * d, float(q) * d + m, and
// (d * float(sc)) * float(code - 32)), so the output is bit-identical to
// kernels/ref. Written once against the vec256 / vec512 policies.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../../ref/quant.hpp"
#include "../../ukernel.hpp"
#include "lowbit/formats.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// 16 packed bytes -> their 16 low nibbles at `low` and 16 high nibbles at `high`.
inline void split_nibbles(const uint8_t* qs, uint8_t* low, uint8_t* high) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0f);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(low), _mm_and_si128(v, mask));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(high), _mm_and_si128(_mm_srli_epi16(v, 4), mask));
}

/// y[i] = float(codes[i] + offset) * scale + shift for n elements (n a multiple of
/// V::lanes); the `+ shift` is skipped when Shift is false, as the oracle does.
template <class V, bool Signed, bool Shift>
inline void scale_codes(const void* codes, int32_t offset, float scale, float shift, float* y, size_t n) {
  const auto* c = static_cast<const unsigned char*>(codes);
  const auto s = V::set1f(scale), m = V::set1f(shift);
  const auto off = V::set1(offset);
  for (size_t i = 0; i < n; i += V::lanes) {
    const auto q = V::add(Signed ? V::widen_s8(c + i) : V::widen_u8(c + i), off);
    auto v = V::mul(V::to_float(q), s);
    if constexpr (Shift) v = V::addf(v, m);
    V::store(y + i, v);
  }
}

template <class V>
void dequant_q4_0_row(const void* x, float* y, size_t k) {
  const auto* b = static_cast<const block_q4_0*>(x);
  alignas(32) uint8_t codes[32];
  for (size_t i = 0; i < k / qk4_0; ++i, y += qk4_0) {
    split_nibbles(b[i].qs, codes, codes + 16);
    scale_codes<V, false, false>(codes, -8, fp16_to_fp32(b[i].d), 0.0f, y, 32);
  }
}

template <class V>
void dequant_q4_1_row(const void* x, float* y, size_t k) {
  const auto* b = static_cast<const block_q4_1*>(x);
  alignas(32) uint8_t codes[32];
  for (size_t i = 0; i < k / qk4_1; ++i, y += qk4_1) {
    split_nibbles(b[i].qs, codes, codes + 16);
    scale_codes<V, false, true>(codes, 0, fp16_to_fp32(b[i].d), fp16_to_fp32(b[i].m), y, 32);
  }
}

template <class V>
void dequant_q8_0_row(const void* x, float* y, size_t k) {
  const auto* b = static_cast<const block_q8_0*>(x);
  for (size_t i = 0; i < k / qk8_0; ++i, y += qk8_0)
    scale_codes<V, true, false>(b[i].qs, 0, fp16_to_fp32(b[i].d), 0.0f, y, 32);
}

/// Q4_K: value = (d * sc) * nibble - dmin * mn; the oracle's form is d0 * q - m0.
template <class V>
void dequant_q4_k_row(const void* x, float* y, size_t k) {
  const auto* b = static_cast<const block_q4_k*>(x);
  for (size_t i = 0; i < k / qk_k; ++i, y += qk_k) {
    const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    for (size_t g = 0; g < 4; ++g) {
      alignas(32) uint8_t low[32], high[32];  // sub-block 2g, sub-block 2g + 1
      split_nibbles(b[i].qs + 32 * g, low, high);
      split_nibbles(b[i].qs + 32 * g + 16, low + 16, high + 16);
      int sc0, mn0, sc1, mn1;
      ref::q4_k_scale_min(b[i].scales, 2 * g, sc0, mn0);
      ref::q4_k_scale_min(b[i].scales, 2 * g + 1, sc1, mn1);
      const float d0 = d * static_cast<float>(sc0), m0 = dmin * static_cast<float>(mn0);
      const float d1 = d * static_cast<float>(sc1), m1 = dmin * static_cast<float>(mn1);
      scale_codes<V, false, true>(low, 0, d0, -m0, y + 64 * g, 32);
      scale_codes<V, false, true>(high, 0, d1, -m1, y + 64 * g + 32, 32);
    }
  }
}

/// Q6_K: value = (d * float(scale)) * float(code - 32).
template <class V>
void dequant_q6_k_row(const void* x, float* y, size_t k) {
  const auto* b = static_cast<const block_q6_k*>(x);
  alignas(32) uint8_t codes[qk_k];
  for (size_t i = 0; i < k / qk_k; ++i, y += qk_k) {
    for (size_t e = 0; e < qk_k; ++e) codes[e] = static_cast<uint8_t>(ref::q6_k_code(b[i], e));
    const float d = fp16_to_fp32(b[i].d);
    for (size_t s = 0; s < 16; ++s)
      scale_codes<V, false, false>(codes + 16 * s, -32, d * static_cast<float>(b[i].scales[s]), 0.0f, y + 16 * s,
                                   16);
  }
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
