// The amx tier's attention kernel: q8_0 keys and values, the prefill's two
// products on the AMX tile unit in f32 over bf16 operands (TDPBF16PS): QKᵀ
// on the query rows times the score scale rounded to bf16 (so the scores
// come out scaled) and the keys staged as q d_k in bf16,
// one f32 sum over the whole head (no per-block integer sums to convert and
// scale, which were half the vector work of the integer QKᵀ); P . V on the
// values staged as q d_v and the weights rounded to bf16 once per key,
// where the VNNI kernels round w = p d_v to u8 per 32-value block. The rest
// is attention_q8_row_lanes on 512-bit vectors. Decode steps (a few rows
// per KV head) keep the avx512_vnni kernel's tiles of keys (a q8_0 query,
// u8 weights): a tile product needs 16 rows to pay. The other (K format, V
// format) pairs come from the tiers below.
#pragma once


#include "../common/attention_q8.hpp"
#include "../common/vec512.hpp"

namespace lowbit::kernels {
namespace x86 {
LOWBIT_CODEGEN_BEGIN

/// attention_q8_row_lanes' products on AMX tiles, in f32 over bf16
/// operands. The kernel keeps a vector of query rows per key (scores) and
/// per value column (sums), so the tile products' results must have the
/// rows in columns: C[key][row] and C[column][row]. Each tile of keys is
/// staged once for all row blocks, in bf16, as the first operands: its keys
/// row by row (kt: q d_k, d values a key) and its values column by column
/// (vt: q d_v, a tile's keys a column). Then:
/// - QKᵀ, per 16 keys: C[key][row] = sum over the head's values of the
///   key's times the row's, one product per 32-value block (a 64-byte row
///   of A), the second operand being the row block's query as pairs of
///   values (a row of 64 bytes per pair: 16 rows' two values);
/// - P . V, per 16 value columns: C[column][row] += sum over the keys of the
///   column's q d_v times the row's weight, the second operand being the
///   weights as pairs of keys (a row of 64 bytes per key pair), C being the
///   row block's f32 accumulators themselves (a vector of rows per column),
///   loaded and stored back (started on the tile unit at the block's first
///   tile: values()'s `first`).
/// Every tile register is 16 rows of 64 bytes. QKᵀ: 0 the scores, 1 a
/// block of keys, 2 a block of the query. P . V: 0 the sums, 3 and 4 the
/// values (16 columns x 32 keys, each half of the tile), 5 and 6 the
/// weights (16 key pairs x 16 rows, each half).
struct amx_products {
  static constexpr bool tiles = true;
  static constexpr size_t keys = attention_prefill_subtiles * kv_group_tokens;  // a tile's keys
  static_assert(keys == 64, "P . V spans a tile of keys in two 32-key halves (bf16, 64 bytes a row)");

  static void begin() {
    struct alignas(64) config {
      uint8_t palette, start_row, reserved[14];
      uint16_t bytes[16];
      uint8_t rows[16];
    } c{};
    c.palette = 1;
    for (int t = 0; t < 8; ++t) {
      c.bytes[t] = 64;
      c.rows[t] = 16;
    }
    _tile_loadconfig(&c);
  }
  static void end() { _tile_release(); }

  /// 2^y lane by lane for the softmax weights (log2 units, y <= 0, up to
  /// rescale_slack above), which this kernel rounds to bf16 (8 significant
  /// bits, a relative step of 2^-8): exp2_floor_form (y = n + f, vreduceps,
  /// vscalefps, the clamp at -125 that keeps the results normal) with a
  /// degree-3 polynomial for 2^f, fitted here for the least largest
  /// relative error on [0, 1) with 2^0 exact: 8.6e-5 evaluated in f32, a
  /// fiftieth of the bf16 rounding's largest (1.95e-3), one FMA fewer than
  /// the weights' degree 4 (3e-6) that the u8 path's 8-bit roundings need.
  template <class V>
  static typename V::fvec weight(typename V::fvec y) {
    static_assert(V::lanes == 16, "the tile unit's row blocks are 512-bit vectors");
    static constexpr float c3[] = {7.706813514e-2f, 2.276438028e-1f, 6.951170564e-1f, 1.0f};
    return exp2_floor_form<V>(y, c3);
  }

  /// 32 signed bytes (lo: the first 16, hi: the next 16), each 16 times its
  /// scale, as 32 bf16: exact products in f32, rounded once (to nearest even).
  static __m512i bf16_scaled(__m128i lo, __m128i hi, __m512 lo_scale, __m512 hi_scale) {
    const __m512 a = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), lo_scale);
    const __m512 b = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), hi_scale);
    return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));
  }

  /// Keys [0, 16 groups) of the tile row by row in bf16 (kt: a row of d
  /// values q d_k per key) and its values column by column in bf16 (vt: per
  /// block, a row of 64 keys' q d_v per column), through the 16 x 16 dword
  /// transpose. Key groups past `groups` are not staged: their rows are
  /// never read (QKᵀ covers the groups holding keys below n). Keys and
  /// values of slots past `n` are staged as zeros: their scores are masked
  /// and their weights zero, and an unwritten slot's scale need not be
  /// finite.
  static void stage(const unsigned char* const* kg, const unsigned char* const* vg, size_t groups, size_t n,
                    size_t nb, size_t d, const float* dk, const float* dv, unsigned char* kt, unsigned char* vt) {
    using ops = attention_vec<vec512<true>>;
    constexpr size_t G = kv_group_tokens;
    alignas(64) static constexpr uint32_t zeros[16] = {};
    alignas(64) uint32_t out[16 * 16];
    const float* rows[16];
    // Keys: two blocks at a time, 8 dwords of 16 keys each -> 16 keys of 64
    // bytes, then each block's 32 bytes (unbiased) times the key's d_k in
    // bf16; keys past n times 0.
    for (size_t g = 0; g < groups; ++g)
      for (size_t b = 0; b < nb; b += 2) {
        const size_t pair = std::min<size_t>(2, nb - b);
        for (size_t i = 0; i < 16; ++i)
          rows[i] = i / 8 < pair ? reinterpret_cast<const float*>(kg[g] + kv_group_block(nb, b + i / 8) +
                                                                  i % 8 * kv_key_vector_bytes)
                                 : reinterpret_cast<const float*>(zeros);
        ops::transpose(rows, reinterpret_cast<float*>(out));  // out + key * 16: its dwords
        for (size_t i = 0; i < G; ++i) {
          const size_t key = g * G + i;
          const unsigned char* bytes = reinterpret_cast<const unsigned char*>(out + i * 16);
          uint16_t* row = reinterpret_cast<uint16_t*>(kt) + key * d + b * qk8_0;
          for (size_t j = 0; j < pair; ++j) {
            const __m512 scale = _mm512_set1_ps(key < n ? dk[(b + j) * keys + key] : 0.0f);
            const __m256i q = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(bytes + 32 * j)),
                                               _mm256_set1_epi8(char(0x80)));  // biased -> signed
            _mm512_storeu_si512(row + j * qk8_0, bf16_scaled(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1),
                                                             scale, scale));
          }
        }
      }
    // Values: per block and 16 columns, the 16 quads' dwords -> 16 columns
    // of 64 bytes, then each column's bytes times their keys' d_v in bf16.
    for (size_t b = 0; b < nb; ++b) {
      __m512 scale[keys / 16];
      for (size_t j = 0; j < keys / 16; ++j) {
        const size_t real = n > 16 * j ? std::min<size_t>(16, n - 16 * j) : 0;
        scale[j] = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << real) - 1), dv + b * keys + 16 * j);
      }
      for (size_t h = 0; h < qk8_0; h += 16) {
        for (size_t q = 0; q < 16; ++q)
          rows[q] = q / 4 < groups ? reinterpret_cast<const float*>(vg[q / 4] + kv_group_block(nb, b) +
                                                                    q % 4 * kv_value_quad_bytes + h * 4)
                                   : reinterpret_cast<const float*>(zeros);
        ops::transpose(rows, reinterpret_cast<float*>(out));  // out + column * 16: its 64 key bytes
        for (size_t c = 0; c < 16; ++c) {
          const unsigned char* bytes = reinterpret_cast<const unsigned char*>(out + c * 16);
          uint16_t* row = reinterpret_cast<uint16_t*>(vt) + (b * qk8_0 + h + c) * keys;
          for (size_t j = 0; j < keys / 16; j += 2)
            _mm512_storeu_si512(row + 16 * j,
                                bf16_scaled(_mm_load_si128(reinterpret_cast<const __m128i*>(bytes + 16 * j)),
                                            _mm_load_si128(reinterpret_cast<const __m128i*>(bytes + 16 * j + 16)),
                                            scale[j], scale[j + 1]));
        }
      }
    }
  }

  /// out[key * 16 + row]: the scores of 16 keys (bf16 rows of kt from `a`,
  /// `stride` bytes apart) against a row block's query as bf16 pairs (16
  /// pairs of 16 rows per 32-value block at `q`), one f32 sum over every
  /// block.
  static void scores(const unsigned char* a, size_t stride, const int32_t* q, size_t nb, float* out) {
    asm volatile("" ::: "memory");  // the operands are written by ordinary stores
    _tile_zero(0);
    for (size_t b = 0; b < nb; ++b) {
      _tile_loadd(1, a + b * 64, stride);
      _tile_loadd(2, q + b * 256, 64);
      _tile_dpbf16ps(0, 1, 2);
    }
    _tile_stored(0, out, 64);
    asm volatile("" ::: "memory");  // and the scores read by ordinary loads
  }

  /// out[column * 16 + row] += sum over the tile's keys of row's weight
  /// times the column's value, for every column of the nb blocks: the values
  /// in bf16 as stage() leaves them (vt), the weights as bf16 pairs (16 key
  /// pairs of 16 rows per 32-key half, at `w`), over `halves` halves of the
  /// tile (the weights past the keys zero). Each 16 columns' f32 sums are a
  /// tile of 16 rows of 64 bytes in `out`, loaded, added to and stored back;
  /// or, for a row block's first tile (`first`), started at zero and stored,
  /// `out` not read (so it need not hold zeros, nor anything finite).
  static void values(const unsigned char* vt, const int32_t* w, float* out, size_t nb, size_t halves, bool first) {
    asm volatile("" ::: "memory");  // the weights and out are written by ordinary stores
    _tile_loadd(5, w, 64);
    if (halves > 1) _tile_loadd(6, w + 16 * 16, 64);
    for (size_t c = 0; c < nb * qk8_0; c += 16) {
      const unsigned char* a = vt + c * keys * 2;
      if (first)
        _tile_zero(0);
      else
        _tile_loadd(0, out + c * 16, 64);
      _tile_loadd(3, a, keys * 2);
      _tile_dpbf16ps(0, 3, 5);
      if (halves > 1) {
        _tile_loadd(4, a + 64, keys * 2);
        _tile_dpbf16ps(0, 4, 6);
      }
      _tile_stored(0, out + c * 16, 64);
    }
    asm volatile("" ::: "memory");  // and read by ordinary loads
  }
};

LOWBIT_CODEGEN_END
}  // namespace x86

LOWBIT_CODEGEN_BEGIN

inline constexpr attention_fn attn_q8_0_q8_0__amx =
    x86::attention_online_q8<x86::vec512<true>, format::q8_0, x86::amx_products>;

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
