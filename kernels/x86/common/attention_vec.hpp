// The shuffles attention needs beyond the vec256 / vec512 policies.
//
// Attention turns per-key dot products into one vector of scores (lane i =
// key i of a tile), reduces four rows' vectors at once, and, for integer P .
// V on the VNNI tiers, packs softmax weights to bytes. (q8_0 keys and values
// need no shuffle: the cache keeps them grouped as the integer kernels read
// them, kernels/kv_layout.hpp.) All are shuffle patterns that differ between
// 256- and 512-bit vectors, so they live here as one specialization per
// policy rather than as branches in the kernels. Every
// member is a member of a class template specialization: a translation unit
// compiles only the width it uses.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "quant_q8.hpp"
#include "vec256.hpp"
#include "vec512.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

template <class V>
struct attention_vec;

/// AVX2 (+ AVX-VNNI): 8 keys per tile.
template <bool Vnni>
struct attention_vec<vec256<Vnni>> {
  using fvec = __m256;
  using ivec = __m256i;
  /// The activation quantizer that rounds query rows to q8_0.
  using q8_lanes = q8_lanes256;

  /// Lanes [n, 8) of v replaced by x.
  static fvec fill_past(fvec v, size_t n, float x) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane));
    return _mm256_blendv_ps(_mm256_set1_ps(x), v, keep);
  }
  /// Four keys' dot-product vectors -> one vector whose 128-bit lane h holds,
  /// in element j, the sum of lane h of key j's vector.
  static fvec sum4(fvec a, fvec b, fvec c, fvec d) {
    const fvec ab = _mm256_add_ps(_mm256_shuffle_ps(a, b, 0x88), _mm256_shuffle_ps(a, b, 0xdd));
    const fvec cd = _mm256_add_ps(_mm256_shuffle_ps(c, d, 0x88), _mm256_shuffle_ps(c, d, 0xdd));
    return _mm256_add_ps(_mm256_shuffle_ps(ab, cd, 0x88), _mm256_shuffle_ps(ab, cd, 0xdd));
  }
  /// The sum4 results of keys 0-3 and 4-7 (g[0], g[1]) -> lane i = key i's dot product.
  static fvec finish(const fvec* g) {
    return _mm256_add_ps(_mm256_permute2f128_ps(g[0], g[1], 0x20), _mm256_permute2f128_ps(g[0], g[1], 0x31));
  }
  /// Per row of a four-row group: the maximum (sum) of each of the four vectors, in lanes 0-3.
  static __m128 max_each(fvec a, fvec b, fvec c, fvec d) {
    const fvec ab = _mm256_max_ps(_mm256_shuffle_ps(a, b, 0x88), _mm256_shuffle_ps(a, b, 0xdd));
    const fvec cd = _mm256_max_ps(_mm256_shuffle_ps(c, d, 0x88), _mm256_shuffle_ps(c, d, 0xdd));
    const fvec m = _mm256_max_ps(_mm256_shuffle_ps(ab, cd, 0x88), _mm256_shuffle_ps(ab, cd, 0xdd));
    return _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  }
  /// Eight vectors -> lane r: the largest element of m[r].
  static fvec max_of_each(const fvec* m) {
    return _mm256_set_m128(max_each(m[4], m[5], m[6], m[7]), max_each(m[0], m[1], m[2], m[3]));
  }
  static __m128 sum_each(fvec a, fvec b, fvec c, fvec d) {
    const fvec s = sum4(a, b, c, d);
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  }
  /// Four floats in lanes 0-3, the other lanes zero.
  static fvec from4(__m128 x) { return _mm256_zextps128_ps256(x); }
  /// Lane by lane, a > b ? x : y.
  static fvec select_gt(fvec a, fvec b, fvec x, fvec y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
  /// Whether a < b in any lane.
  static bool any_lt(fvec a, fvec b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_LT_OQ)) != 0; }
  /// Eight rows of eight floats (row i at rows[i]) transposed: out + j * 8
  /// gets column j (lane i = row i).
  static void transpose(const float* const* rows, float* out) {
    fvec u[8];
    transpose_in_lanes([&](int i) { return _mm256_loadu_ps(rows[i]); }, u);
    for (int k = 0; k < 4; ++k) {
      _mm256_storeu_ps(out + k * 8, _mm256_permute2f128_ps(u[k], u[4 + k], 0x20));
      _mm256_storeu_ps(out + (4 + k) * 8, _mm256_permute2f128_ps(u[k], u[4 + k], 0x31));
    }
  }
  /// Eight vectors transposed into rows: out[j][i] = element j of x[i]
  /// (i < 8), for each out[j] not null. The 4 x 4 transposes inside the
  /// 128-bit lanes, then each lane stored where its row's four elements go:
  /// store-only uops where transpose's lane shuffles take the shuffle port.
  static void transpose_stores(const fvec* x, float* const* out) {
    fvec u[8];
    transpose_in_lanes([&](int i) { return x[i]; }, u);
    for (int g = 0; g < 2; ++g)
      for (int k = 0; k < 4; ++k) {
        if (out[k]) _mm_storeu_ps(out[k] + 4 * g, _mm256_castps256_ps128(u[4 * g + k]));
        if (out[4 + k]) _mm_storeu_ps(out[4 + k] + 4 * g, _mm256_extractf128_ps(u[4 * g + k], 1));
      }
  }
  /// u[4g + k], 128-bit lane h: vectors 4g .. 4g + 3 (x(i), in pairs) at
  /// element 4h + k.
  template <class X>
  [[gnu::always_inline]] static void transpose_in_lanes(X x, fvec* u) {
    fvec t[8];
    for (int i = 0; i < 8; i += 2) {
      const fvec a = x(i), b = x(i + 1);
      t[i] = _mm256_unpacklo_ps(a, b);
      t[i + 1] = _mm256_unpackhi_ps(a, b);
    }
    for (int g = 0; g < 2; ++g) {
      u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
      u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
  }


  /// Byte T of every dword of v, sign-extended (a grouped q8_0 vector's
  /// values of one key, or of one column, kernels/kv_layout.hpp).
  template <int T>
  static ivec byte_of(ivec v) {
    return _mm256_srai_epi32(T == 3 ? v : _mm256_slli_epi32(v, 24 - 8 * T), 24);
  }
  /// Four vectors of int32 in [-128, 127] -> bytes, with signed saturation:
  /// dword 4 L + j of the result holds elements 4 L .. 4 L + 3 of the j-th
  /// (a, b, c, e). The packs work within 128-bit lanes.
  static ivec pack_lanes(ivec a, ivec b, ivec c, ivec e) {
    return _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, e));
  }
  /// num / den where den > 0, else 0.
  static fvec quotient_if_positive(fvec num, fvec den) {
    return _mm256_and_ps(_mm256_div_ps(num, den), _mm256_cmp_ps(den, _mm256_setzero_ps(), _CMP_GT_OQ));
  }
  /// num / den where den != 0 (or is NaN), else 0.
  static fvec quotient_if_nonzero(fvec num, fvec den) {
    return _mm256_and_ps(_mm256_div_ps(num, den), _mm256_cmp_ps(den, _mm256_setzero_ps(), _CMP_NEQ_UQ));
  }
  /// v through binary16 and back (to nearest even): an f16 scale as stored.
  static fvec f16_rounded(fvec v) { return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }
  /// Four vectors of weights times `scale` (each product in [0, 255.5)),
  /// rounded to the nearest integer (ties to even) and packed as quad_bytes
  /// packs them: byte k of lane r from vector k. One FMA rounds a product:
  /// x scale + 2^23 lies in [2^23, 2^24), where floats are the integers, so
  /// the sum's one rounding leaves round(x scale) in its low mantissa bits
  /// (2^23's bits, 0x4b000000, above them); shifts and ors then put each
  /// vector's byte in place: 11 instructions for four vectors where a
  /// multiply, cvtps2dq and the packs took 12 (9 on 512-bit vectors).
  static ivec u8_quad(fvec a, fvec b, fvec c, fvec e, fvec scale) {
    const fvec magic = _mm256_set1_ps(0x1p23f);
    const auto rounded = [&](fvec x) { return _mm256_castps_si256(_mm256_fmadd_ps(x, scale, magic)); };
    const ivec first = _mm256_xor_si256(rounded(a), _mm256_castps_si256(magic));
    return _mm256_or_si256(_mm256_or_si256(first, _mm256_slli_epi32(rounded(b), 8)),
                           _mm256_or_si256(_mm256_slli_epi32(rounded(c), 16), _mm256_slli_epi32(rounded(e), 24)));
  }

  /// Weights already scaled to [0, 255] -> one byte each (rounded to nearest),
  /// keys in order at out[0..8).
  static void weights_to_u8(fvec w, unsigned char* out) {
    const __m256i x = _mm256_cvtps_epi32(w);
    const __m256i words = _mm256_packus_epi32(x, x);  // per 128-bit lane: keys 0-3 (4-7), twice
    const __m256i bytes = _mm256_packus_epi16(words, words);
    const __m256i both = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(both));
  }
  /// weights_to_u8 of four vectors (a's keys, then b's, c's, e's) at
  /// out[0..32): the packs of two pairs, then one of those, one permute and
  /// one store, where four calls take four of each.
  static void weights_to_u8x4(fvec a, fvec b, fvec c, fvec e, unsigned char* out) {
    const __m256i ab = _mm256_packus_epi32(_mm256_cvtps_epi32(a), _mm256_cvtps_epi32(b));
    const __m256i ce = _mm256_packus_epi32(_mm256_cvtps_epi32(c), _mm256_cvtps_epi32(e));
    // Per 128-bit lane h: dword h of a, of b, of c, of e (keys 4h..4h+3).
    const __m256i bytes = _mm256_packus_epi16(ab, ce);
    const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), ordered);
  }
};

/// AVX-512 (+ VNNI): 16 keys per tile.
template <bool Vnni>
struct attention_vec<vec512<Vnni>> {
  using fvec = __m512;
  using ivec = __m512i;
  using q8_lanes = q8_lanes512;

  static fvec fill_past(fvec v, size_t n, float x) {
    const __mmask16 keep = n >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << n) - 1);
    return _mm512_mask_mov_ps(_mm512_set1_ps(x), keep, v);
  }
  /// As for vec256, per 128-bit lane.
  static fvec sum4(fvec a, fvec b, fvec c, fvec d) {
    const fvec ab = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xdd));
    const fvec cd = _mm512_add_ps(_mm512_shuffle_ps(c, d, 0x88), _mm512_shuffle_ps(c, d, 0xdd));
    return _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x88), _mm512_shuffle_ps(ab, cd, 0xdd));
  }
  /// The sum4 results of keys 0-3, 4-7, 8-11, 12-15 -> lane i = key i's dot product.
  static fvec finish(const fvec* g) {
    const fvec lo = _mm512_add_ps(_mm512_shuffle_f32x4(g[0], g[1], 0x88), _mm512_shuffle_f32x4(g[0], g[1], 0xdd));
    const fvec hi = _mm512_add_ps(_mm512_shuffle_f32x4(g[2], g[3], 0x88), _mm512_shuffle_f32x4(g[2], g[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(lo, hi, 0x88), _mm512_shuffle_f32x4(lo, hi, 0xdd));
  }
  /// Per 128-bit lane h, element j: the maximum of lane h of the j-th vector.
  static fvec max_in_lanes(fvec a, fvec b, fvec c, fvec d) {
    const fvec ab = _mm512_max_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xdd));
    const fvec cd = _mm512_max_ps(_mm512_shuffle_ps(c, d, 0x88), _mm512_shuffle_ps(c, d, 0xdd));
    return _mm512_max_ps(_mm512_shuffle_ps(ab, cd, 0x88), _mm512_shuffle_ps(ab, cd, 0xdd));
  }
  /// Four max_in_lanes results -> element 4 k + j: the maximum over the
  /// 128-bit lanes of the k-th's element j (max_each of four groups at once).
  static fvec max_across_lanes(fvec m0, fvec m1, fvec m2, fvec m3) {
    // Lanes (0 | 2, 1 | 3) of m0, of m1; of m2, of m3; then (0 | 1) of each.
    const fvec h01 = _mm512_max_ps(_mm512_shuffle_f32x4(m0, m1, 0x44), _mm512_shuffle_f32x4(m0, m1, 0xee));
    const fvec h23 = _mm512_max_ps(_mm512_shuffle_f32x4(m2, m3, 0x44), _mm512_shuffle_f32x4(m2, m3, 0xee));
    return _mm512_max_ps(_mm512_shuffle_f32x4(h01, h23, 0x88), _mm512_shuffle_f32x4(h01, h23, 0xdd));
  }
  /// Sixteen vectors -> lane r: the largest element of m[r].
  static fvec max_of_each(const fvec* m) {
    return max_across_lanes(max_in_lanes(m[0], m[1], m[2], m[3]), max_in_lanes(m[4], m[5], m[6], m[7]),
                            max_in_lanes(m[8], m[9], m[10], m[11]), max_in_lanes(m[12], m[13], m[14], m[15]));
  }
  static __m128 max_each(fvec a, fvec b, fvec c, fvec d) {
    const fvec m = max_in_lanes(a, b, c, d);
    const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(m), _mm512_extractf32x8_ps(m, 1));
    return _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  }
  static __m128 sum_each(fvec a, fvec b, fvec c, fvec d) {
    const fvec s = sum4(a, b, c, d);
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  }
  static fvec from4(__m128 x) { return _mm512_zextps128_ps512(x); }
  static fvec select_gt(fvec a, fvec b, fvec x, fvec y) { return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), x); }
  static bool any_lt(fvec a, fvec b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ) != 0; }
  /// As for vec256, sixteen rows of sixteen: the 4 x 4 transposes inside the
  /// 128-bit lanes, then a 4 x 4 transpose of the lanes.
  static void transpose(const float* const* rows, float* out) {
    fvec u[16];
    transpose_in_lanes([&](int i) { return _mm512_loadu_ps(rows[i]); }, u);
    // Column 4h + k = lane h of u[k], u[4 + k], u[8 + k], u[12 + k].
    for (int k = 0; k < 4; ++k) {
      const fvec v0 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x44), v1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xee);
      const fvec v2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x44), v3 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xee);
      _mm512_storeu_ps(out + k * 16, _mm512_shuffle_f32x4(v0, v2, 0x88));
      _mm512_storeu_ps(out + (4 + k) * 16, _mm512_shuffle_f32x4(v0, v2, 0xdd));
      _mm512_storeu_ps(out + (8 + k) * 16, _mm512_shuffle_f32x4(v1, v3, 0x88));
      _mm512_storeu_ps(out + (12 + k) * 16, _mm512_shuffle_f32x4(v1, v3, 0xdd));
    }
  }
  /// As for vec256, sixteen vectors.
  static void transpose_stores(const fvec* x, float* const* out) {
    fvec u[16];
    transpose_in_lanes([&](int i) { return x[i]; }, u);
    for (int g = 0; g < 4; ++g)
      for (int k = 0; k < 4; ++k) {
        const fvec v = u[4 * g + k];
        if (out[k]) _mm_storeu_ps(out[k] + 4 * g, _mm512_castps512_ps128(v));
        if (out[4 + k]) _mm_storeu_ps(out[4 + k] + 4 * g, _mm512_extractf32x4_ps(v, 1));
        if (out[8 + k]) _mm_storeu_ps(out[8 + k] + 4 * g, _mm512_extractf32x4_ps(v, 2));
        if (out[12 + k]) _mm_storeu_ps(out[12 + k] + 4 * g, _mm512_extractf32x4_ps(v, 3));
      }
  }
  /// As for vec256.
  template <class X>
  [[gnu::always_inline]] static void transpose_in_lanes(X x, fvec* u) {
    fvec t[16];
    for (int i = 0; i < 16; i += 2) {
      const fvec a = x(i), b = x(i + 1);
      t[i] = _mm512_unpacklo_ps(a, b);
      t[i + 1] = _mm512_unpackhi_ps(a, b);
    }
    for (int g = 0; g < 4; ++g) {
      u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
      u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
  }


  template <int T>
  static ivec byte_of(ivec v) {
    return _mm512_srai_epi32(T == 3 ? v : _mm512_slli_epi32(v, 24 - 8 * T), 24);
  }
  /// As for vec256.
  static ivec pack_lanes(ivec a, ivec b, ivec c, ivec e) {
    return _mm512_packs_epi16(_mm512_packs_epi32(a, b), _mm512_packs_epi32(c, e));
  }
  static fvec quotient_if_positive(fvec num, fvec den) {
    return _mm512_maskz_div_ps(_mm512_cmp_ps_mask(den, _mm512_setzero_ps(), _CMP_GT_OQ), num, den);
  }
  static fvec quotient_if_nonzero(fvec num, fvec den) {
    return _mm512_maskz_div_ps(_mm512_cmp_ps_mask(den, _mm512_setzero_ps(), _CMP_NEQ_UQ), num, den);
  }
  static fvec f16_rounded(fvec v) {
    return _mm512_maskz_cvtph_ps(0xffff, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  /// As for vec256; ternary logic merges the ors.
  static ivec u8_quad(fvec a, fvec b, fvec c, fvec e, fvec scale) {
    const fvec magic = _mm512_set1_ps(0x1p23f);
    const auto rounded = [&](fvec x) { return _mm512_castps_si512(_mm512_fmadd_ps(x, scale, magic)); };
    // (a ^ magic) | b << 8, then that | c << 16 | e << 24.
    const ivec low = _mm512_ternarylogic_epi32(rounded(a), _mm512_castps_si512(magic), _mm512_slli_epi32(rounded(b), 8), 0xbe);
    return _mm512_ternarylogic_epi32(low, _mm512_slli_epi32(rounded(c), 16), _mm512_slli_epi32(rounded(e), 24), 0xfe);
  }
  /// As for vec256, 16 keys.
  static void weights_to_u8(fvec w, unsigned char* out) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(w)));
  }
};

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
