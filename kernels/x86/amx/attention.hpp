// The amx tier's attention kernel: q8_0 keys and values, the prefill's two
// integer products on the AMX tile unit (TDPBUSD for QKᵀ, TDPBSUD for P . V)
// instead of vpdpbusd, everything else as attention_q8_row_lanes on 512-bit
// vectors (the same scaling, softmax and u8 rounding, so the same results as
// the avx512_vnni kernel). Decode steps (a few rows per KV head) keep the
// avx512_vnni kernel's tiles of keys: a tile product needs 16 rows to pay.
// The other (K format, V format) pairs come from the tiers below.
#pragma once


#include "../common/attention_q8.hpp"
#include "../common/vec512.hpp"

namespace lowbit::kernels {
namespace x86 {
LOWBIT_CODEGEN_BEGIN

/// attention_q8_row_lanes' products on AMX tiles. The cache's groups are
/// already laid out as a tile product's second operand wants (four bytes of
/// each of 16 columns per 64-byte row), but as the second operand they give
/// sums with rows of the query in columns, where the kernel keeps a vector
/// of query rows per key (and per value column). So each tile of keys is
/// staged once for all row blocks, its keys row by row (kt) and its values
/// column by column (vt), and those are the first operands:
/// - QKᵀ, per 16 keys and 32-value block: C[key][row] = sum of the key's
///   biased bytes (unsigned) times the row's query bytes (signed), the
///   second operand being the row block's transposed query dwords as the
///   vpdpbusd loop reads them;
/// - P . V, per 16 value columns of a block: C[column][row] = sum of the
///   column's value bytes (signed) times the row's u8 weights, the second
///   operand being the packed weights (a row of 64 bytes per key quad).
/// The tile registers: 0 the sums (16 x 64 bytes), 1 and 2 QKᵀ's operands
/// (16 keys x 32 bytes, 8 dwords x 64 bytes), 3 and 4 P . V's (16 columns x
/// 64 keys, 16 quads x 64 bytes).
struct amx_products {
  static constexpr bool tiles = true;
  static constexpr size_t keys = attention_prefill_subtiles * kv_group_tokens;  // a tile's keys
  static_assert(keys == 64, "a P . V tile product spans a whole tile of keys (64 bytes a row)");

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
  /// values column by column (vt: a row of 64 key bytes per column),
  /// through the 16 x 16 dword transpose. Groups past `groups` are not
  /// staged: what their rows hold is finite (earlier tiles', or zeros) and
  /// only meets masked scores or zero weights.
  static void stage(const unsigned char* const* kg, const unsigned char* const* vg, size_t groups, size_t nb,
                    size_t d, unsigned char* kt, unsigned char* vt) {
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
    // Values: per block and 16 columns, the 16 quads' dwords -> 16 columns of 64 bytes.
    for (size_t b = 0; b < nb; ++b)
      for (size_t h = 0; h < qk8_0; h += 16) {
        for (size_t q = 0; q < 16; ++q)
          rows[q] = q / 4 < groups ? reinterpret_cast<const float*>(vg[q / 4] + kv_group_block(nb, b) +
                                                                    q % 4 * kv_value_quad_bytes + h * 4)
                                   : reinterpret_cast<const float*>(zeros);
        ops::transpose(rows, reinterpret_cast<float*>(vt + (b * qk8_0 + h) * keys));
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

  /// sums[column * 16 + row] for 16 value columns (rows of vt from `a`)
  /// against the packed u8 weights (16 key quads of 16 rows at `u`).
  static void values(const unsigned char* a, const int32_t* u, int32_t* sums) {
    asm volatile("" ::: "memory");
    _tile_zero(0);
    _tile_loadd(3, a, keys);
    _tile_loadd(4, u, 64);
    _tile_dpbsud(0, 3, 4);
    _tile_stored(0, sums, 64);
    asm volatile("" ::: "memory");
  }
};

LOWBIT_CODEGEN_END
}  // namespace x86

LOWBIT_CODEGEN_BEGIN

inline constexpr attention_fn attn_q8_0_q8_0__amx =
    x86::attention_online_q8<x86::vec512<true>, format::q8_0, x86::amx_products>;

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
