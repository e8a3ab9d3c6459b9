// The shuffles attention needs beyond the vec256 / vec512 policies.
//
// Attention turns per-key dot products into one vector of scores (lane i =
// key i of a tile) and, for q8_0 keys on the VNNI tiers, transposes a tile of
// int8 key rows so one vpdpbusd serves a whole tile; for q8_0 values there,
// it interleaves four keys' bytes per column so one vpdpbusd adds four keys'
// weighted values. All are shuffle patterns that differ between 256- and
// 512-bit vectors, so they live here as
// one specialization per policy rather than as branches in the kernels. Every
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
  /// Lane i = the f16 at base + min(i, n - 1) * stride (a q8_0 block's scale
  /// in key i's row), as f32: one gather, 4 bytes read per address.
  static fvec gather_f16(const unsigned char* base, size_t stride, size_t n) {
    const __m256i index = _mm256_mullo_epi32(
        _mm256_min_epu32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(n - 1))),
        _mm256_set1_epi32(static_cast<int>(stride)));
    const __m256i words = _mm256_i32gather_epi32(reinterpret_cast<const int*>(base), index, 1);
    // The low halves of the eight dwords, packed into the low 128 bits.
    const __m256i halves = _mm256_shuffle_epi8(
        words, _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 4, 5, 8, 9, 12, 13, -1,
                                -1, -1, -1, -1, -1, -1, -1));
    return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(halves, 0x08)));
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
    fvec t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      const fvec a = _mm256_loadu_ps(rows[i]), b = _mm256_loadu_ps(rows[i + 1]);
      t[i] = _mm256_unpacklo_ps(a, b);
      t[i + 1] = _mm256_unpackhi_ps(a, b);
    }
    // u[4g + k], 128-bit lane h: rows 4g..4g+3 at column 4h + k.
    for (int g = 0; g < 2; ++g) {
      u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
      u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
    for (int k = 0; k < 4; ++k) {
      _mm256_storeu_ps(out + k * 8, _mm256_permute2f128_ps(u[k], u[4 + k], 0x20));
      _mm256_storeu_ps(out + (4 + k) * 8, _mm256_permute2f128_ps(u[k], u[4 + k], 0x31));
    }
  }

  /// One q8_0 block (32 int8, 8 dwords) of 8 keys, transposed: kt[j] lane i =
  /// dword j of key i's quants, each byte biased by 128 (x ^ 0x80) so it can
  /// be vpdpbusd's unsigned operand. Key i's quants start at base + i * stride.
  static void transpose_keys(const unsigned char* base, size_t stride, ivec* kt) {
    ivec z[8];
    for (int i = 0; i < 8; ++i) z[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + i * stride));
    const ivec t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    const ivec t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    const ivec t4 = _mm256_unpacklo_epi32(z[4], z[5]), t5 = _mm256_unpackhi_epi32(z[4], z[5]);
    const ivec t6 = _mm256_unpacklo_epi32(z[6], z[7]), t7 = _mm256_unpackhi_epi32(z[6], z[7]);
    // u_m: keys 0-3 (u0..u3) or 4-7 (u4..u7), dword m in the low 128 bits, m + 4 in the high.
    const ivec u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const ivec u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    const ivec u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    const ivec u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    const ivec bias = _mm256_set1_epi8(static_cast<char>(0x80));
    kt[0] = _mm256_xor_si256(_mm256_permute2x128_si256(u0, u4, 0x20), bias);
    kt[1] = _mm256_xor_si256(_mm256_permute2x128_si256(u1, u5, 0x20), bias);
    kt[2] = _mm256_xor_si256(_mm256_permute2x128_si256(u2, u6, 0x20), bias);
    kt[3] = _mm256_xor_si256(_mm256_permute2x128_si256(u3, u7, 0x20), bias);
    kt[4] = _mm256_xor_si256(_mm256_permute2x128_si256(u0, u4, 0x31), bias);
    kt[5] = _mm256_xor_si256(_mm256_permute2x128_si256(u1, u5, 0x31), bias);
    kt[6] = _mm256_xor_si256(_mm256_permute2x128_si256(u2, u6, 0x31), bias);
    kt[7] = _mm256_xor_si256(_mm256_permute2x128_si256(u3, u7, 0x31), bias);
  }

  /// One 32-value q8_0 block of four value rows (quants at q[0..3] + offset)
  /// made ready for vpdpbusd over keys: out[m] holds, in every dword, one
  /// column's four bytes in key order, columns (16 L + 4 m + e) for 128-bit
  /// lane L and dword e. Pairs (out[2c], out[2c + 1]) go back to column order
  /// through columns_in_order.
  static void interleave_values(const unsigned char* const* q, size_t offset, ivec* out) {
    const ivec r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[0] + offset));
    const ivec r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[1] + offset));
    const ivec r2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[2] + offset));
    const ivec r3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[3] + offset));
    // Byte pairs (key 0, key 1) and (key 2, key 3): columns 0-7 | 16-23 (lo), 8-15 | 24-31 (hi).
    const ivec lo01 = _mm256_unpacklo_epi8(r0, r1), hi01 = _mm256_unpackhi_epi8(r0, r1);
    const ivec lo23 = _mm256_unpacklo_epi8(r2, r3), hi23 = _mm256_unpackhi_epi8(r2, r3);
    out[0] = _mm256_unpacklo_epi16(lo01, lo23);
    out[1] = _mm256_unpackhi_epi16(lo01, lo23);
    out[2] = _mm256_unpacklo_epi16(hi01, hi23);
    out[3] = _mm256_unpackhi_epi16(hi01, hi23);
  }
  /// Sums over interleave_values' pair (out[2c], out[2c + 1]) as floats ->
  /// block columns [8c, 8c + 8) (lo) and [16 + 8c, 24 + 8c) (hi).
  static void columns_in_order(fvec a, fvec b, fvec& lo, fvec& hi) {
    lo = _mm256_permute2f128_ps(a, b, 0x20);
    hi = _mm256_permute2f128_ps(a, b, 0x31);
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
  /// As for vec256.
  static fvec gather_f16(const unsigned char* base, size_t stride, size_t n) {
    const __m512i index = _mm512_mullo_epi32(
        _mm512_min_epu32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int>(n - 1))),
        _mm512_set1_epi32(static_cast<int>(stride)));
    const __m512i words = _mm512_i32gather_epi32(index, base, 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(words));
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
  static __m128 max_each(fvec a, fvec b, fvec c, fvec d) {
    const fvec ab = _mm512_max_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xdd));
    const fvec cd = _mm512_max_ps(_mm512_shuffle_ps(c, d, 0x88), _mm512_shuffle_ps(c, d, 0xdd));
    const fvec m = _mm512_max_ps(_mm512_shuffle_ps(ab, cd, 0x88), _mm512_shuffle_ps(ab, cd, 0xdd));
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
    fvec t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
      const fvec a = _mm512_loadu_ps(rows[i]), b = _mm512_loadu_ps(rows[i + 1]);
      t[i] = _mm512_unpacklo_ps(a, b);
      t[i + 1] = _mm512_unpackhi_ps(a, b);
    }
    // u[4g + k], 128-bit lane h: rows 4g..4g+3 at column 4h + k.
    for (int g = 0; g < 4; ++g) {
      u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
      u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
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

  /// As for vec256, for 16 keys: keys i and i + 8 share a register through
  /// the 32-bit and 64-bit unpacks, then vpermt2q gathers each dword's four
  /// 128-bit pieces.
  static void transpose_keys(const unsigned char* base, size_t stride, ivec* kt) {
    ivec z[8];
    for (int i = 0; i < 8; ++i)
      z[i] = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + i * stride))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + (i + 8) * stride)), 1);
    const ivec t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const ivec t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    const ivec t4 = _mm512_unpacklo_epi32(z[4], z[5]), t5 = _mm512_unpackhi_epi32(z[4], z[5]);
    const ivec t6 = _mm512_unpacklo_epi32(z[6], z[7]), t7 = _mm512_unpackhi_epi32(z[6], z[7]);
    // u_m 128-bit lanes: keys {0-3, 0-3, 8-11, 8-11} (m < 4) or {4-7, 4-7, 12-15,
    // 12-15} (m >= 4), dwords {m, m + 4, m, m + 4} (m mod 4).
    const ivec u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
    const ivec u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
    const ivec u4 = _mm512_unpacklo_epi64(t4, t6), u5 = _mm512_unpackhi_epi64(t4, t6);
    const ivec u6 = _mm512_unpacklo_epi64(t5, t7), u7 = _mm512_unpackhi_epi64(t5, t7);
    const ivec low = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), high = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    const ivec bias = _mm512_set1_epi8(static_cast<char>(0x80));
    kt[0] = _mm512_xor_si512(_mm512_permutex2var_epi64(u0, low, u4), bias);
    kt[1] = _mm512_xor_si512(_mm512_permutex2var_epi64(u1, low, u5), bias);
    kt[2] = _mm512_xor_si512(_mm512_permutex2var_epi64(u2, low, u6), bias);
    kt[3] = _mm512_xor_si512(_mm512_permutex2var_epi64(u3, low, u7), bias);
    kt[4] = _mm512_xor_si512(_mm512_permutex2var_epi64(u0, high, u4), bias);
    kt[5] = _mm512_xor_si512(_mm512_permutex2var_epi64(u1, high, u5), bias);
    kt[6] = _mm512_xor_si512(_mm512_permutex2var_epi64(u2, high, u6), bias);
    kt[7] = _mm512_xor_si512(_mm512_permutex2var_epi64(u3, high, u7), bias);
  }

  /// As for vec256: out[0] and out[1], columns (L & 1) * 16 + (L >> 1) * 8 +
  /// 4 m + e for 128-bit lane L and dword e.
  static void interleave_values(const unsigned char* const* q, size_t offset, ivec* out) {
    auto pair = [offset](const unsigned char* a, const unsigned char* b) {
      return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + offset))),
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + offset)), 1);
    };
    const ivec a = pair(q[0], q[2]), b = pair(q[1], q[3]);
    // Byte pairs: lanes (key 0, key 1) columns 0-7, 16-23, then (key 2, key 3)
    // the same (lo); columns 8-15, 24-31 likewise (hi).
    const ivec lo = _mm512_unpacklo_epi8(a, b), hi = _mm512_unpackhi_epi8(a, b);
    // Keys 0-1 (2-3) for columns 0-7, 16-23, 8-15, 24-31.
    const ivec k01 = _mm512_shuffle_i64x2(lo, hi, 0x44), k23 = _mm512_shuffle_i64x2(lo, hi, 0xee);
    out[0] = _mm512_unpacklo_epi16(k01, k23);
    out[1] = _mm512_unpackhi_epi16(k01, k23);
  }
  /// As for vec256: columns [0, 16) (lo) and [16, 32) (hi).
  static void columns_in_order(fvec a, fvec b, fvec& lo, fvec& hi) {
    lo = _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27), b);
    hi = _mm512_permutex2var_ps(a, _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31), b);
  }
  /// As for vec256, 16 keys.
  static void weights_to_u8(fvec w, unsigned char* out) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(w)));
  }
};

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
