// The amx tier's attention kernel: q8_0 keys and values, the prefill's two
// products on the AMX tile unit: QKᵀ in integers (TDPBUSD, the same exact
// sums as the avx512_vnni kernel's vpdpbusd, so the same scores and softmax
// weights), and P . V in bf16 (TDPBF16PS) on values staged as q d_v and
// weights rounded to bf16 once per key, where the VNNI kernels round w = p
// d_v to u8 per 32-value block (about a third of their vector work). The
// rest is attention_q8_row_lanes on 512-bit vectors. Decode steps (a few rows
// per KV head) keep the avx512_vnni kernel's tiles of keys: a tile product
// needs 16 rows to pay. The other (K format, V format) pairs come from the
// tiers below.
#pragma once


#include "../common/attention_q8.hpp"
#include "../common/vec512.hpp"

namespace lowbit::kernels {
namespace x86 {
LOWBIT_CODEGEN_BEGIN

/// attention_q8_row_lanes' products on AMX tiles. The cache's key groups
/// are laid out as a tile product's second operand wants (four bytes of
/// each of 16 keys per 64-byte row), but as the second operand they give
/// sums with the query rows in columns, where the kernel keeps a vector of
/// query rows per key. So each tile of keys is staged once for all row
/// blocks, its keys row by row (kt) and its values column by column in
/// bf16 (vt), and those are the first operands:
/// - QKᵀ, per 16 keys and 32-value block: C[key][row] = sum of the key's
///   biased bytes (unsigned) times the row's query bytes (signed), the
///   second operand being the row block's transposed query dwords as the
///   vpdpbusd loop reads them;
/// - P . V, per 16 value columns: C[column][row] += sum over the keys of the
///   column's q d_v times the row's weight, both bf16, the second operand
///   being the weights as pairs of keys (a row of 64 bytes per key pair),
///   C being the row block's f32 accumulators themselves (a vector of rows
///   per column), loaded and stored back.
/// The tile registers: 0 the sums (16 x 64 bytes), 1 and 2 QKᵀ's operands
/// (16 keys x 32 bytes, 8 dwords x 64 bytes), 5-7 three more sums of QKᵀ;
/// for P . V, 3 and 4 the values (16 columns x 32 keys, each half of the
/// tile) and 5 and 6 the weights (16 key pairs x 16 rows, each half).
struct amx_products {
  static constexpr bool tiles = true;
  static constexpr bool bf16_values = true;
  static constexpr size_t keys = attention_prefill_subtiles * kv_group_tokens;  // a tile's keys
  static_assert(keys == 64, "P . V spans a tile of keys in two 32-key halves (bf16, 64 bytes a row)");

  static void begin() {
    struct alignas(64) config {
      uint8_t palette, start_row, reserved[14];
      uint16_t bytes[16];
      uint8_t rows[16];
    } c{};
    c.palette = 1;
    const uint16_t bytes[8] = {64, 32, 64, 64, 64, 64, 64, 64};
    const uint8_t rows[8] = {16, 16, 8, 16, 16, 16, 16, 16};
    for (int t = 0; t < 8; ++t) {
      c.bytes[t] = bytes[t];
      c.rows[t] = rows[t];
    }
    _tile_loadconfig(&c);
  }
  static void end() { _tile_release(); }

  /// Keys [0, 16 groups) of the tile row by row (kt: d bytes a key) and its
  /// values column by column in bf16 (vt: per block, a row of 64 keys' q
  /// d_v per column), through the 16 x 16 dword transpose. Key groups past
  /// `groups` are not staged: what their rows hold is finite (earlier
  /// tiles', or zeros) and only meets masked scores. Values of keys past
  /// `n` are staged as zeros: their weights are zero, and a zero weight
  /// times an unwritten slot's scale (not necessarily finite) must give 0.
  static void stage(const unsigned char* const* kg, const unsigned char* const* vg, size_t groups, size_t n,
                    size_t nb, size_t d, const float* dv, unsigned char* kt, unsigned char* vt) {
    using ops = attention_vec<vec512<true>>;
    constexpr size_t G = kv_group_tokens;
    alignas(64) static constexpr uint32_t zeros[16] = {};
    alignas(64) uint32_t out[16 * 16];
    const float* rows[16];
    // Keys: two blocks at a time, 8 dwords of 16 keys each -> 16 keys of 64 bytes.
    for (size_t g = 0; g < groups; ++g)
      for (size_t b = 0; b < nb; b += 2) {
        const size_t pair = std::min<size_t>(2, nb - b);
        for (size_t i = 0; i < 16; ++i)
          rows[i] = i / 8 < pair ? reinterpret_cast<const float*>(kg[g] + kv_group_block(nb, b + i / 8) +
                                                                  i % 8 * kv_key_vector_bytes)
                                 : reinterpret_cast<const float*>(zeros);
        ops::transpose(rows, reinterpret_cast<float*>(out));  // out + key * 16: its dwords
        for (size_t i = 0; i < G; ++i) {
          unsigned char* row = kt + (g * G + i) * d + b * qk8_0;
          if (pair == 2) _mm512_storeu_si512(row, _mm512_load_si512(out + i * 16));
          else _mm256_storeu_si256(reinterpret_cast<__m256i*>(row), _mm256_load_si256(reinterpret_cast<const __m256i*>(out + i * 16)));
        }
      }
    // Values: per block and 16 columns, the 16 quads' dwords -> 16 columns
    // of 64 bytes, then each column's bytes times their keys' d_v in bf16
    // (exact products in f32, rounded once).
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
          for (size_t j = 0; j < keys / 16; j += 2) {
            const __m512 lo = _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(bytes + 16 * j)))),
                scale[j]);
            const __m512 hi = _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(bytes + 16 * j + 16)))),
                scale[j + 1]);
            _mm512_storeu_si512(row + 16 * j, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
          }
        }
      }
    }
  }

  /// sums[(b * 16 + key) * 16 + row] for 16 keys (rows of kt from `a`,
  /// `stride` bytes apart) and every 32-value block b < nb, against a row
  /// block's query dwords (8 vectors of 16 rows per block at `q`). Four
  /// blocks' products go to four sum tiles before any is stored, so the
  /// tile unit has them in flight together.
  static void scores(const unsigned char* a, size_t stride, const int32_t* q, size_t nb, int32_t* sums) {
    asm volatile("" ::: "memory");  // the operands are written by ordinary stores
    for (size_t b0 = 0; b0 < nb; b0 += 4) {
      const size_t m = std::min<size_t>(4, nb - b0);
      // Block b0 + j's operands into tiles 1 and 2 (tile numbers are immediates).
      const auto operands = [&](size_t j) {
        _tile_loadd(1, a + (b0 + j) * qk8_0, stride);
        _tile_loadd(2, q + (b0 + j) * 8 * 16, 64);
      };
      _tile_zero(0);
      operands(0);
      _tile_dpbusd(0, 1, 2);
      if (m > 1) {
        _tile_zero(5);
        operands(1);
        _tile_dpbusd(5, 1, 2);
      }
      if (m > 2) {
        _tile_zero(6);
        operands(2);
        _tile_dpbusd(6, 1, 2);
      }
      if (m > 3) {
        _tile_zero(7);
        operands(3);
        _tile_dpbusd(7, 1, 2);
      }
      _tile_stored(0, sums + (b0 + 0) * 256, 64);
      if (m > 1) _tile_stored(5, sums + (b0 + 1) * 256, 64);
      if (m > 2) _tile_stored(6, sums + (b0 + 2) * 256, 64);
      if (m > 3) _tile_stored(7, sums + (b0 + 3) * 256, 64);
    }
    asm volatile("" ::: "memory");  // and the sums read by ordinary loads
  }

  /// out[column * 16 + row] += sum over the tile's keys of row's weight
  /// times the column's value, for every column of the nb blocks: the values
  /// in bf16 as stage() leaves them (vt), the weights as bf16 pairs (16 key
  /// pairs of 16 rows per 32-key half, at `w`), over `halves` halves of the
  /// tile (the weights past the keys zero). Each 16 columns' f32 sums are a
  /// tile of 16 rows of 64 bytes in `out`, loaded, added to and stored back.
  static void values(const unsigned char* vt, const int32_t* w, float* out, size_t nb, size_t halves) {
    asm volatile("" ::: "memory");  // the weights and out are written by ordinary stores
    _tile_loadd(5, w, 64);
    if (halves > 1) _tile_loadd(6, w + 16 * 16, 64);
    for (size_t c = 0; c < nb * qk8_0; c += 16) {
      const unsigned char* a = vt + c * keys * 2;
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
