// 512-bit integer/float vector policy for the avx512 and avx512_vnni tiers.
//
// Same contract as vec256 (see there). Without VNNI, AVX-512 has no vpsignb,
// so signed weights use a mask: s8 x s8 = |w| x (a negated where w < 0).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "lowbit/detail/codegen.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// acc + u8 x s8 dot products (vpdpbusd), and the same with the s8 operand
/// a 4-byte broadcast from memory. Under GCC they are inline assembly: GCC 12
/// register-allocates the intrinsic in long unrolled tiles with a register
/// copy (and spills) per instruction, and never folds the broadcast into an
/// embedded {1to16} operand. Templates, so units without VNNI never compile them.
#if defined(__GNUC__) && !defined(__clang__)
template <class I>
inline I vnni_dot512(I acc, I u, I s) {
  asm("vpdpbusd %[s], %[u], %[acc]" : [acc] "+v"(acc) : [u] "v"(u), [s] "v"(s));
  return acc;
}
template <class I>
inline I vnni_dot512_at(I acc, I u, const void* p) {
  using word = int32_t __attribute__((may_alias));
  asm("vpdpbusd %[m]%{1to16%}, %[u], %[acc]" : [acc] "+v"(acc) : [u] "v"(u), [m] "m"(*static_cast<const word*>(p)));
  return acc;
}
/// The four bytes at p in every dword, by a load (vpbroadcastd from memory
/// takes a load port alone). Bytes the kernel has just stored from a
/// register, GCC otherwise takes from that register and broadcasts by
/// shuffles (vpsrldq, vpbroadcastd from a register) on the ports the
/// products need.
template <class I = __m512i>
inline I broadcast4_loaded(const void* p) {
  using word = int32_t __attribute__((may_alias));
  I r;
  asm("vpbroadcastd %[m], %[r]" : [r] "=v"(r) : [m] "m"(*static_cast<const word*>(p)));
  return r;
}
#else
template <class I>
inline I vnni_dot512(I acc, I u, I s) {
  return _mm512_dpbusd_epi32(acc, u, s);
}
template <class I>
inline I vnni_dot512_at(I acc, I u, const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_dpbusd_epi32(acc, u, _mm512_set1_epi32(v));
}
template <class I = __m512i>
inline I broadcast4_loaded(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
#endif

template <bool Vnni>
struct vec512 {
  using ivec = __m512i;
  using fvec = __m512;
  static constexpr int lanes = 16;
  static constexpr bool biased_signed_weights = Vnni;

  static ivec load(const void* p) { return _mm512_loadu_si512(p); }
  static ivec nibbles_low(ivec v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0f)); }
  static ivec nibbles_high(ivec v) { return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0f)); }
  static ivec broadcast4(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  static ivec set1(int32_t v) { return _mm512_set1_epi32(v); }
  /// 16 bytes -> 16 int32 lanes, zero-extended.
  static ivec widen_u8(const void* p) {
    return _mm512_maskz_cvtepu8_epi32(0xffff, _mm_loadu_si128(static_cast<const __m128i*>(p)));
  }
  /// `lanes` int8 -> int32 lanes, sign-extended.
  static ivec widen_s8(const void* p) { return _mm512_maskz_cvtepi8_epi32(0xffff, _mm_loadu_si128(static_cast<const __m128i*>(p))); }
  static ivec splat8(int v) { return _mm512_set1_epi8(static_cast<char>(v)); }
  static ivec and_(ivec a, ivec b) { return _mm512_and_si512(a, b); }
  static ivec xor_(ivec a, ivec b) { return _mm512_xor_si512(a, b); }
  static ivec or_(ivec a, ivec b) { return _mm512_or_si512(a, b); }
  // 16-bit lane shifts: callers mask to whole bytes afterwards (or before, for shl4).
  static ivec shl4(ivec a) { return _mm512_slli_epi16(a, 4); }
  static ivec shr2(ivec a) { return _mm512_srli_epi16(a, 2); }
  static ivec shr4(ivec a) { return _mm512_srli_epi16(a, 4); }
  static ivec shr6(ivec a) { return _mm512_srli_epi16(a, 6); }
  static constexpr bool vnni = Vnni;
  /// acc + pairwise s16 x s16 products summed to s32 (vpmaddwd: exact for any s16).
  static ivec dot_s16(ivec acc, ivec a, ivec b) { return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b)); }
  static ivec sub(ivec a, ivec b) { return _mm512_sub_epi32(a, b); }
  static void storei(int32_t* p, ivec v) { _mm512_storeu_si512(p, v); }
  static fvec loadf(const float* p) { return _mm512_loadu_ps(p); }
  static ivec add(ivec a, ivec b) { return _mm512_add_epi32(a, b); }
  static ivec mullo(ivec a, ivec b) { return _mm512_mullo_epi32(a, b); }

  static ivec dot_u8s8(ivec acc, ivec u, ivec s) {
    if constexpr (Vnni) {
      return vnni_dot512(acc, u, s);
    } else {
      const __m512i pairs = _mm512_maddubs_epi16(u, s);
      return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
    }
  }
  /// acc + u . (the 4 bytes at p, broadcast): on VNNI one vpdpbusd with an
  /// embedded {1to16} broadcast.
  static ivec dot_u8s8_at(ivec acc, ivec u, const void* p) {
    if constexpr (Vnni) return vnni_dot512_at(acc, u, p);
    else return dot_u8s8(acc, u, broadcast4(p));
  }
  /// a with the bytes where `negative` has a bit negated (0 - a): AVX-512
  /// has no vpsignb; one masked vpsubb.
  static ivec negate_where(ivec a, __mmask64 negative) {
    return _mm512_mask_sub_epi8(a, negative, _mm512_setzero_si512(), a);
  }
  static ivec dot_s8s8(ivec acc, ivec w, ivec a) {
    if constexpr (Vnni) {
      return vnni_dot512(acc, _mm512_xor_si512(w, _mm512_set1_epi8(static_cast<char>(0x80))), a);
    } else {
      const __m512i signed_a = negate_where(a, _mm512_movepi8_mask(w));
      const __m512i pairs = _mm512_maddubs_epi16(_mm512_abs_epi8(w), signed_a);
      return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
    }
  }

  static fvec zero() { return _mm512_setzero_ps(); }
  static fvec set1f(float v) { return _mm512_set1_ps(v); }
  // maskz forms: GCC 12's unmasked ones trip -Wmaybe-uninitialized in its own header.
  static fvec to_float(ivec v) { return _mm512_maskz_cvtepi32_ps(0xffff, v); }
  static fvec mul(fvec a, fvec b) { return _mm512_mul_ps(a, b); }
  static fvec divf(fvec a, fvec b) { return _mm512_div_ps(a, b); }
  static fvec addf(fvec a, fvec b) { return _mm512_add_ps(a, b); }
  static fvec sub(fvec a, fvec b) { return _mm512_sub_ps(a, b); }
  static fvec load_half(const void* p) {
    return _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(static_cast<const __m256i*>(p)));
  }
  // --- f32 helpers for attention ---
  static fvec fmadd(fvec a, fvec b, fvec c) { return _mm512_fmadd_ps(a, b, c); }
  static fvec maxf(fvec a, fvec b) { return _mm512_max_ps(a, b); }
  static float hsum(fvec v) { return _mm512_reduce_add_ps(v); }
  static float hmax(fvec v) { return _mm512_reduce_max_ps(v); }
  /// Lanes [0, n) of v, the rest zero.
  static __mmask16 first_lanes(size_t n) { return n >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << n) - 1); }
  static fvec keep_first(fvec v, size_t n) { return _mm512_maskz_mov_ps(first_lanes(n), v); }
  static ivec keep_first(ivec v, size_t n) { return _mm512_maskz_mov_epi32(first_lanes(n), v); }
  static fvec round_nearest(fvec v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  /// x * 2^n for integral n (the result must be a normal number): vscalefps, one
  /// instruction where adding n to x's exponent bits takes three (a
  /// conversion, a shift and an add), with the same result for normal numbers.
  static fvec times_pow2i(fvec x, fvec n) { return _mm512_scalef_ps(x, n); }
  /// v - floor(v) in [0, 1), exact: vreduceps (one instruction where
  /// vrndscaleps, two uops, and a subtraction take three).
  static fvec floor_fraction(fvec v) { return _mm512_reduce_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  /// x * 2^floor(y): vscalefps floors its exponent operand itself.
  static fvec times_pow2_floor(fvec x, fvec y) { return _mm512_scalef_ps(x, y); }
  /// Sum of the 128-bit quarters: four partial sums.
  static __m128 fold128(fvec v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  }
  static void store(float* p, fvec v) { _mm512_storeu_ps(p, v); }
};

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
