// SIMD activation quantizers (f32 -> Q8_0 / Q8_1 / Q8_K) for the x86 tiers.
//
// They must produce the oracle's bytes exactly, so each step is one the
// oracle takes, in vector form: the block's largest |x| (max is exact), the
// scale computed in scalar code exactly as kernels/ref does, x * (1/d) as one
// f32 multiply per element, then the oracle's rounding: half away from zero
// for Q8_0/Q8_1 (C's roundf), half to even for Q8_K (ggml's nearest_int).
// The sums (Q8_1's s, Q8_K's bsums) are integer sums of the rounded quants.
// Written once against two small "lane" helpers, q8_lanes256 and q8_lanes512.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../ukernel.hpp"
#include "lowbit/formats.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// Half away from zero as one add and a truncation: trunc(p + copysign(0.5 -
/// 2^-25, p)) equals roundf(p) for every |p| < 2^22 (quants are at most
/// 127). Below a half, p + 0.5 - 2^-25 stays under the next integer even
/// after the add's rounding (the gap to it is at least one ulp of p plus
/// 2^-25, more than half the spacing there); at a half or above it reaches
/// it (from a half, the sum lies 2^-25 below the integer, less than half the
/// spacing there, 2^-23 at least, or rounds up to it on a tie at 1 - 2^-25).
inline constexpr float half_down = 0x1.fffffep-2f;  // 0.5 - 2^-25, the float just below one half

/// The largest of n floats, as std::max_element picks it (the first of
/// equals; a NaN wins only in first place). Written out so that the ISA
/// units instantiate no std algorithm: the linker keeps one copy of such a
/// template for every caller, and a copy compiled with an ISA's flags could
/// be the one baseline code runs (tests/isa/baseline_code.sh).
inline float largest(const float* x, size_t n) {
  float best = x[0];
  for (size_t i = 1; i < n; ++i)
    if (best < x[i]) best = x[i];
  return best;
}

/// 8 floats at a time (AVX2).
struct q8_lanes256 {
  static constexpr size_t width = 8;
  /// |x|.
  static __m256 abs(__m256 x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  /// p rounded half away from zero (see half_down), as int32.
  static __m256i round_away(__m256 p) {
    const __m256 nudge = _mm256_or_ps(_mm256_set1_ps(half_down), _mm256_and_ps(p, _mm256_set1_ps(-0.0f)));
    return _mm256_cvttps_epi32(_mm256_add_ps(p, nudge));
  }
  static float abs_max(const float* x, size_t n) {
    __m256 m = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) m = _mm256_max_ps(m, abs(_mm256_loadu_ps(x + i)));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m);
    return largest(lanes, 8);
  }
  /// 32 quants: round(x * scale), half away from zero (Even = false) or to even, capped at 127.
  template <bool Even>
  static void round32(const float* x, float scale, int8_t* q) {
    const __m256 s = _mm256_set1_ps(scale);
    __m256i v[4];
    for (int j = 0; j < 4; ++j) {
      const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), s);
      if constexpr (Even) {
        v[j] = _mm256_min_epi32(_mm256_cvtps_epi32(p), _mm256_set1_epi32(127));
      } else {
        v[j] = round_away(p);
      }
    }
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    const __m256i ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), ordered);
  }
  /// Sum of n int8 values (n a multiple of 16).
  static int32_t sum(const int8_t* q, size_t n) {
    __m256i acc = _mm256_setzero_si256();
    for (size_t i = 0; i < n; i += 16)
      acc = _mm256_add_epi32(acc, _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i))));
    for (size_t i = 8; i < n; i += 16)
      acc = _mm256_add_epi32(acc, _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i))));
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
    int32_t s = 0;
    for (int32_t v : lanes) s += v;
    return s;
  }
};

/// 16 floats at a time (AVX-512 F/BW). A class template (q8_lanes512 is
/// its one instance), so that units without AVX-512 never compile its
/// 512-bit returns, which would change their ABI.
template <int = 0>
struct q8_lanes512_of {
  static constexpr size_t width = 16;
  static __m512 abs(__m512 x) { return _mm512_abs_ps(x); }
  static __m512i round_away(__m512 p) {
    const __m512i nudge = _mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(half_down)),
                                          _mm512_and_si512(_mm512_castps_si512(p),
                                                           _mm512_set1_epi32(static_cast<int>(0x80000000u))));
    return _mm512_cvttps_epi32(_mm512_add_ps(p, _mm512_castsi512_ps(nudge)));
  }
  static float abs_max(const float* x, size_t n) {
    __m512 m = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) m = _mm512_max_ps(m, abs(_mm512_loadu_ps(x + i)));
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, m);
    return largest(lanes, 16);
  }
  template <bool Even>
  static void round32(const float* x, float scale, int8_t* q) {
    const __m512 s = _mm512_set1_ps(scale);
    for (int j = 0; j < 2; ++j) {
      const __m512 p = _mm512_mul_ps(_mm512_loadu_ps(x + 16 * j), s);
      __m512i v;
      if constexpr (Even) {
        v = _mm512_min_epi32(_mm512_cvt_roundps_epi32(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                             _mm512_set1_epi32(127));
      } else {
        v = round_away(p);
      }
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * j), _mm512_cvtsepi32_epi8(v));
    }
  }
  static int32_t sum(const int8_t* q, size_t n) {
    __m512i acc = _mm512_setzero_si512();
    for (size_t i = 0; i < n; i += 16)
      acc = _mm512_add_epi32(acc, _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i))));
    alignas(64) int32_t lanes[16];
    _mm512_store_si512(lanes, acc);
    int32_t s = 0;
    for (int32_t v : lanes) s += v;
    return s;
  }
};
using q8_lanes512 = q8_lanes512_of<>;

template <class L>
void quant_q8_0_row(const float* x, void* out, size_t k) {
  auto* y = static_cast<block_q8_0*>(out);
  for (size_t b = 0; b < k / qk8_0; ++b, x += qk8_0) {
    const float d = L::abs_max(x, qk8_0) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    L::template round32<false>(x, id, y[b].qs);
  }
}

template <class L>
void quant_q8_1_row(const float* x, void* out, size_t k) {
  auto* y = static_cast<block_q8_1*>(out);
  for (size_t b = 0; b < k / qk8_1; ++b, x += qk8_1) {
    const float d = L::abs_max(x, qk8_1) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    L::template round32<false>(x, id, y[b].qs);
    y[b].s = fp32_to_fp16(static_cast<float>(L::sum(y[b].qs, qk8_1)) * d);
  }
}

template <class L>
void quant_q8_k_row(const float* x, void* out, size_t k) {
  auto* y = static_cast<block_q8_k*>(out);
  for (size_t b = 0; b < k / qk_k; ++b, x += qk_k) {
    std::memset(&y[b], 0, sizeof y[b]);
    const float amax = L::abs_max(x, qk_k);
    if (amax == 0.0f) continue;
    float max = 0.0f;  // the first element of largest magnitude, with its sign
    for (size_t j = 0; j < qk_k; ++j)
      if (std::fabs(x[j]) == amax) {
        max = x[j];
        break;
      }
    const float iscale = -127.0f / max;
    for (size_t j = 0; j < qk_k; j += 32) L::template round32<true>(x + j, iscale, y[b].qs + j);
    for (size_t g = 0; g < qk_k / 16; ++g) y[b].bsums[g] = static_cast<int16_t>(L::sum(y[b].qs + 16 * g, 16));
    y[b].d = 1.0f / iscale;
  }
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
