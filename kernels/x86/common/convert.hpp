// SIMD f32 -> f16 and f32 -> bf16 row converters for the x86 tiers.
//
// They are the quantize kernels of the two plain 16-bit formats (and the last
// step of dequantize_rows to f16/bf16), so they must write the oracle's bytes
// exactly: lowbit::fp32_to_fp16 and lowbit::fp32_to_bf16 of formats.hpp.
//
// f16: F16C's vcvtps2ph (AVX-512: the EVEX form) with an explicit
// round-to-nearest-even immediate, which is the oracle's rounding, including
// subnormal results, overflow to Inf and the sign of zero. NaN: the instruction
// quiets a signalling NaN (sets mantissa bit 22) and keeps the top 10 mantissa
// bits, i.e. sign | 0x7e00 | (mantissa >> 13), which is the oracle's rule, so no
// fix-up is needed (the tests hold every tier to the oracle on NaN payloads).
// MXCSR.DAZ cannot change a result: an f32 subnormal is far below half the
// smallest f16 subnormal, so it becomes a signed zero either way.
//
// bf16: integer round-to-nearest-even, (bits + 0x7fff + ((bits >> 16) & 1)) >> 16,
// and for NaN (|bits| > 0x7f800000) the oracle's (bits >> 16) | 0x40, selected
// per lane. No AVX512-BF16 needed.
//
// Written once against two small policies, cvt_lanes256 (AVX2 + F16C) and
// cvt_lanes512 (AVX-512 F/BW/VL). Any k is accepted (no block constraint): the
// tail (k not a multiple of the vector) goes through the same vector code,
// with a zero-padded copy on AVX2 and masked loads/stores on AVX-512; a call
// reads exactly k floats and writes exactly k 16-bit values.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../ukernel.hpp"
#include "lowbit/formats.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// 8 lanes: AVX2 integer ops and F16C. Tails go through a zero-padded buffer.
struct cvt_lanes256 {
  static constexpr size_t lanes = 8;
  using ivec = __m256i;   // 8 x 32-bit lanes
  using half = __m128i;   // 8 x 16-bit results

  static ivec load(const float* x) { return _mm256_castps_si256(_mm256_loadu_ps(x)); }
  static ivec load_part(const float* x, size_t n) {
    alignas(32) float buf[lanes] = {};
    std::memcpy(buf, x, n * sizeof(float));
    return _mm256_castps_si256(_mm256_load_ps(buf));
  }
  static void store(uint16_t* y, half h) { _mm_storeu_si128(reinterpret_cast<__m128i*>(y), h); }
  static void store_part(uint16_t* y, half h, size_t n) {
    alignas(16) uint16_t buf[lanes];
    _mm_store_si128(reinterpret_cast<__m128i*>(buf), h);
    std::memcpy(y, buf, n * sizeof(uint16_t));
  }

  static half to_f16(ivec bits) { return _mm256_cvtps_ph(_mm256_castsi256_ps(bits), _MM_FROUND_TO_NEAREST_INT); }

  static ivec set1(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
  static ivec add(ivec a, ivec b) { return _mm256_add_epi32(a, b); }
  static ivec and_(ivec a, ivec b) { return _mm256_and_si256(a, b); }
  static ivec or_(ivec a, ivec b) { return _mm256_or_si256(a, b); }
  static ivec shr16(ivec a) { return _mm256_srli_epi32(a, 16); }
  /// Lanes where a > b (both below 2^31, so the signed compare is exact) take
  /// `if_gt`, the others `otherwise`.
  static ivec select_gt(ivec a, ivec b, ivec if_gt, ivec otherwise) {
    return _mm256_blendv_epi8(otherwise, if_gt, _mm256_cmpgt_epi32(a, b));
  }
  /// 32-bit lanes holding values below 2^16 -> packed 16-bit values, in order.
  static half narrow(ivec v) {
    // packus works per 128-bit half: [v0..3 v0..3 | v4..7 v4..7]; take qwords 0 and 2.
    const __m256i packed = _mm256_packus_epi32(v, v);
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
  }
};

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
/// 16 lanes: AVX-512 F/BW/VL (only in units compiled for them: its 512-bit
/// returns would change the ABI elsewhere). Tails use masked loads and stores.
/// maskz forms throughout: GCC 12's unmasked ones trip -Wmaybe-uninitialized.
struct cvt_lanes512 {
  static constexpr size_t lanes = 16;
  using ivec = __m512i;
  using half = __m256i;

  static __mmask16 first(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

  static ivec load(const float* x) { return _mm512_loadu_si512(x); }
  static ivec load_part(const float* x, size_t n) { return _mm512_maskz_loadu_epi32(first(n), x); }
  static void store(uint16_t* y, half h) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), h); }
  static void store_part(uint16_t* y, half h, size_t n) { _mm256_mask_storeu_epi16(y, first(n), h); }

  static half to_f16(ivec bits) {
    return _mm512_maskz_cvtps_ph(0xffff, _mm512_castsi512_ps(bits), _MM_FROUND_TO_NEAREST_INT);
  }

  static ivec set1(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
  static ivec add(ivec a, ivec b) { return _mm512_add_epi32(a, b); }
  static ivec and_(ivec a, ivec b) { return _mm512_and_si512(a, b); }
  static ivec or_(ivec a, ivec b) { return _mm512_or_si512(a, b); }
  static ivec shr16(ivec a) { return _mm512_srli_epi32(a, 16); }
  static ivec select_gt(ivec a, ivec b, ivec if_gt, ivec otherwise) {
    return _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(a, b), otherwise, if_gt);
  }
  static half narrow(ivec v) { return _mm512_maskz_cvtepi32_epi16(0xffff, v); }
};
#endif

/// fp32_to_bf16 of every lane of `bits` (see formats.hpp), as 16-bit values.
template <class P>
typename P::half to_bf16(typename P::ivec bits) {
  const auto top = P::shr16(bits);
  const auto rounded = P::shr16(P::add(P::add(bits, P::set1(0x7fffu)), P::and_(top, P::set1(1u))));
  const auto quiet_nan = P::or_(top, P::set1(0x40u));
  const auto abs = P::and_(bits, P::set1(0x7fffffffu));
  return P::narrow(P::select_gt(abs, P::set1(0x7f800000u), quiet_nan, rounded));
}

/// Converts k floats at x to k 16-bit values at y with `Convert(bits)`.
template <class P, typename P::half (*Convert)(typename P::ivec)>
void convert_row(const float* x, uint16_t* y, size_t k) {
  size_t i = 0;
  for (; i + P::lanes <= k; i += P::lanes) P::store(y + i, Convert(P::load(x + i)));
  if (i < k) P::store_part(y + i, Convert(P::load_part(x + i, k - i)), k - i);
}

/// f32 row -> f16 row (quantize_fn signature), bit-identical to lowbit::fp32_to_fp16.
/// Requires F16C (+ AVX-512 F/BW/VL for cvt_lanes512). Any k.
template <class P>
void quant_f16_row(const float* x, void* y, size_t k) {
  convert_row<P, &P::to_f16>(x, static_cast<uint16_t*>(y), k);
}

/// f32 row -> bf16 row (quantize_fn signature), bit-identical to lowbit::fp32_to_bf16.
/// Requires AVX2 (+ AVX-512 F/BW/VL for cvt_lanes512). Any k.
template <class P>
void quant_bf16_row(const float* x, void* y, size_t k) {
  convert_row<P, &to_bf16<P>>(x, static_cast<uint16_t*>(y), k);
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
