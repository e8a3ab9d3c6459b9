// 256-bit integer/float vector policy for the avx2 and avx2_vnni tiers.
//
// The interleaved kernels are written once against a policy; this one maps
// them onto AVX2 (+FMA/F16C), with the u8 x s8 dot product done either by
// AVX-VNNI's vpdpbusd (Vnni = true) or by vpmaddubsw + vpmaddwd (Vnni = false).
// The emulation is exact for the operands lowbit feeds it: unsigned values
// below 128 (4- and 6-bit codes, attention's 7-bit weights) times int8, so
// vpmaddubsw cannot saturate.
// Signed weights (Q8_0) go through dot_signed, which uses the sign trick
// without VNNI and a +128 bias with it.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "lowbit/detail/codegen.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// acc + u8 x s8 dot products with AVX-VNNI's VEX vpdpbusd; inline assembly
/// under GCC for the reason given at vnni_dot512 (vec512.hpp). A template, so
/// units without AVX-VNNI never compile it.
#if defined(__GNUC__) && !defined(__clang__)
template <class I>
inline I vnni_dot256(I acc, I u, I s) {
  asm("%{vex%} vpdpbusd %[s], %[u], %[acc]" : [acc] "+x"(acc) : [u] "x"(u), [s] "x"(s));
  return acc;
}
#else
template <class I>
inline I vnni_dot256(I acc, I u, I s) {
  return _mm256_dpbusd_avx_epi32(acc, u, s);
}
#endif

template <bool Vnni>
struct vec256 {
  using ivec = __m256i;
  using fvec = __m256;
  static constexpr int lanes = 8;
  /// vpdpbusd needs u8 x s8: signed weights are biased by 128 (x ^ 0x80),
  /// and the caller subtracts 128 * sum(activations).
  static constexpr bool biased_signed_weights = Vnni;

  static ivec load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static ivec nibbles_low(ivec v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0f)); }
  static ivec nibbles_high(ivec v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f)); }
  static ivec broadcast4(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  static ivec set1(int32_t v) { return _mm256_set1_epi32(v); }
  /// 8 bytes -> 8 int32 lanes, zero-extended.
  static ivec widen_u8(const void* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(static_cast<const __m128i*>(p))); }
  /// `lanes` int8 -> int32 lanes, sign-extended.
  static ivec widen_s8(const void* p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64(static_cast<const __m128i*>(p))); }
  static ivec splat8(int v) { return _mm256_set1_epi8(static_cast<char>(v)); }
  static ivec and_(ivec a, ivec b) { return _mm256_and_si256(a, b); }
  static ivec xor_(ivec a, ivec b) { return _mm256_xor_si256(a, b); }
  /// |a| bytewise (a > -128), and a with b's signs bytewise (0 where b is 0).
  static ivec abs8(ivec a) { return _mm256_abs_epi8(a); }
  static ivec sign8(ivec a, ivec b) { return _mm256_sign_epi8(a, b); }
  static ivec or_(ivec a, ivec b) { return _mm256_or_si256(a, b); }
  // 16-bit lane shifts: callers mask to whole bytes afterwards (or before, for shl4).
  static ivec shl4(ivec a) { return _mm256_slli_epi16(a, 4); }
  static ivec shr2(ivec a) { return _mm256_srli_epi16(a, 2); }
  static ivec shr4(ivec a) { return _mm256_srli_epi16(a, 4); }
  static ivec shr6(ivec a) { return _mm256_srli_epi16(a, 6); }
  static constexpr bool vnni = Vnni;
  /// acc + pairwise s16 x s16 products summed to s32 (vpmaddwd: exact for any s16).
  static ivec dot_s16(ivec acc, ivec a, ivec b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
  static ivec sub(ivec a, ivec b) { return _mm256_sub_epi32(a, b); }
  static void storei(int32_t* p, ivec v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static fvec loadf(const float* p) { return _mm256_loadu_ps(p); }
  static ivec add(ivec a, ivec b) { return _mm256_add_epi32(a, b); }
  static ivec mullo(ivec a, ivec b) { return _mm256_mullo_epi32(a, b); }

  /// A sum of the emulated dot products (dot_u8s8, dot_s8s8 without VNNI),
  /// through an empty asm that claims to change it: GCC cannot see through
  /// it, so a chain of such steps stays a chain of adds into one register.
  /// Left alone, GCC took a chain as one sum of independent products and
  /// added them as a tree at its end, storing every product to the stack and
  /// loading it back (the avx2 decode tile: 0.956 of the time from L2 with
  /// the chains kept; docs/attention.md, thirty-seventh section).
  static ivec chained(ivec sum) {
    asm("" : "+x"(sum));
    return sum;
  }
  /// acc + sum over each group of 4 bytes of u[i] * s[i]; u < 128 without VNNI.
  static ivec dot_u8s8(ivec acc, ivec u, ivec s) {
    if constexpr (Vnni) {
      return vnni_dot256(acc, u, s);
    } else {
      const __m256i pairs = _mm256_maddubs_epi16(u, s);
      return chained(_mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))));
    }
  }
  /// acc + u . (the 4 bytes at p, broadcast). VEX encodings have no embedded
  /// broadcast, so this is the broadcast and the dot product.
  static ivec dot_u8s8_at(ivec acc, ivec u, const void* p) { return dot_u8s8(acc, u, broadcast4(p)); }
  /// acc + sum over each group of 4 bytes of w[i] * a[i], both signed, a >
  /// -128 (any w: |-128| reads as 128 unsigned); with VNNI the caller takes
  /// off 128 * sum(a), the bias of w ^ 0x80. Without VNNI the sign trick:
  /// vpmaddubsw(|w|, a with w's signs), whose pairs of products (at most 2 *
  /// 128 * 127) cannot saturate, then vpmaddwd by ones.
  static ivec dot_s8s8(ivec acc, ivec w, ivec a) {
    if constexpr (Vnni) {
      return vnni_dot256(acc, _mm256_xor_si256(w, _mm256_set1_epi8(static_cast<char>(0x80))), a);
    } else {
      const __m256i pairs = _mm256_maddubs_epi16(abs8(w), sign8(a, w));
      return chained(_mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))));
    }
  }

  static fvec zero() { return _mm256_setzero_ps(); }
  static fvec set1f(float v) { return _mm256_set1_ps(v); }
  static fvec to_float(ivec v) { return _mm256_cvtepi32_ps(v); }
  static fvec mul(fvec a, fvec b) { return _mm256_mul_ps(a, b); }
  static fvec divf(fvec a, fvec b) { return _mm256_div_ps(a, b); }
  static fvec addf(fvec a, fvec b) { return _mm256_add_ps(a, b); }
  static fvec sub(fvec a, fvec b) { return _mm256_sub_ps(a, b); }
  /// `lanes` binary16 values -> floats (exact).
  static fvec load_half(const void* p) { return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p))); }
  // --- f32 helpers for attention ---
  static fvec fmadd(fvec a, fvec b, fvec c) { return _mm256_fmadd_ps(a, b, c); }
  static fvec maxf(fvec a, fvec b) { return _mm256_max_ps(a, b); }
  static float hsum(fvec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(fvec v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  /// All ones in lanes [0, n), zeros in the rest.
  static ivec first_lanes(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  /// Lanes [0, n) of v, the rest zero.
  static fvec keep_first(fvec v, size_t n) { return _mm256_and_ps(v, _mm256_castsi256_ps(first_lanes(n))); }
  static ivec keep_first(ivec v, size_t n) { return _mm256_and_si256(v, first_lanes(n)); }
  static fvec round_nearest(fvec v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  /// x * 2^n for integral n, by adding n to x's exponent bits (the result must be a normal number).
  static fvec times_pow2i(fvec x, fvec n) {
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(x), _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23)));
  }
  /// x * 2^n where t = n + 1.5 * 2^23 as a float (n in t's low mantissa
  /// bits, two's complement): t's bits shifted into x's exponent field, the
  /// same as times_pow2i(x, n) (the result must be a normal number).
  static fvec times_pow2_shifted(fvec x, fvec t) {
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(x), _mm256_slli_epi32(_mm256_castps_si256(t), 23)));
  }
  /// Sum of the 128-bit quarters: four partial sums.
  static __m128 fold128(fvec v) { return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); }
  static void store(float* p, fvec v) { _mm256_storeu_ps(p, v); }
};

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
