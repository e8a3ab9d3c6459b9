// Row-interleaved linear kernels for Q4_0, Q4_1 and Q8_0 weights on x86.
//
// Layout (packer pack_interleaved<NR>, NR = vector lanes: 8 for 256-bit, 16
// for 512-bit): rows are taken NR at a time (the last group padded with zero
// rows); for every 32-element block the group stores
//     NR f16 d, [NR f16 m for Q4_1], then C chunks of NR x 4 bytes,
// where chunk j, lane r holds bytes 4j..4j+3 of row r's GGUF quants. A group
// block is as large as NR GGUF blocks, so packing costs no memory.
//
// Why: one 32-bit lane per output row. A chunk is one vector load; each
// 4-byte group of activations is broadcast to all lanes, and a u8 x s8 dot
// (vpdpbusd, or its emulation) adds 4 products into every row's lane at once.
// After a block, each lane holds that row's exact integer block sum, and the
// f32 epilogue is the oracle's, operation for operation:
//     y += float(isum) * (d_w * d_a)            [+ m_w * s_a for Q4_1]
// so results are bit-identical to kernels/ref. The Q4_0 "-8" and the Q8_0 bias
// are folded into the accumulator's start value from the activation's block
// sum. The unpacked weights of a block are reused for MR activation rows.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include <immintrin.h>

#include "../../ukernel.hpp"
#include "row_count.hpp"
#include "lowbit/formats.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// Per-format shape of an interleaved block: f16 header fields and 4-byte chunks.
struct interleaved_format {
  size_t halves;   ///< f16 fields per row and block (d, or d and m)
  size_t chunks;   ///< 4-byte quant chunks per row and block
  size_t gguf_qs;  ///< offset of the quants in the GGUF block
};
constexpr interleaved_format interleaved_layout(format f) {
  return f == format::q4_1   ? interleaved_format{2, 4, 4}
         : f == format::q8_0 ? interleaved_format{1, 8, 2}
                             : interleaved_format{1, 4, 2};  // q4_0
}

/// n rounded up to whole NR-row groups.
template <size_t NR>
constexpr size_t padded_rows(size_t n) {
  return (n + NR - 1) / NR * NR;
}

/// Calls fn(row, lane, real) for rows [n_begin, n_end) and, in the range that
/// ends the matrix, for the padding rows of the last group (real = false), which
/// packers fill with zero blocks so kernels can run every lane.
template <size_t NR, class Fn>
void for_each_packed_row(size_t n, size_t n_begin, size_t n_end, Fn fn) {
  const size_t last = n_end == n ? padded_rows<NR>(n) : n_end;
  for (size_t r = n_begin; r < last; ++r) fn(r, r % NR, r < n);
}

/// Packs GGUF rows of Q4_0, Q4_1 or Q8_0 into NR-row interleaved groups.
template <size_t NR>
struct pack_interleaved {
  static size_t packed_size(format fmt, size_t n, size_t k) noexcept {
    const format_traits* t = find_format(fmt);
    return t ? padded_rows<NR>(n) * row_bytes(*t, k) : 0;
  }
  static void pack(format fmt, const void* w, size_t n, size_t k, void* dst, size_t n_begin, size_t n_end) noexcept {
    const format_traits* t = find_format(fmt);
    const interleaved_format f = interleaved_layout(fmt);
    const size_t blocks = k / 32, block_bytes = t->block_bytes, row = row_bytes(*t, k);
    const size_t group_block = NR * block_bytes, group_bytes = blocks * group_block;
    const unsigned char zero_block[sizeof(block_q8_0)] = {};  // the largest of the three formats
    for_each_packed_row<NR>(n, n_begin, n_end, [&](size_t r, size_t lane, bool real) {
      unsigned char* group = static_cast<unsigned char*>(dst) + r / NR * group_bytes;
      for (size_t b = 0; b < blocks; ++b) {
        unsigned char* gb = group + b * group_block;
        const unsigned char* sb = real ? static_cast<const unsigned char*>(w) + r * row + b * block_bytes : zero_block;
        for (size_t h = 0; h < f.halves; ++h) std::memcpy(gb + h * 2 * NR + 2 * lane, sb + 2 * h, 2);
        unsigned char* q = gb + f.halves * 2 * NR;
        for (size_t j = 0; j < f.chunks; ++j) std::memcpy(q + j * NR * 4 + lane * 4, sb + f.gguf_qs + 4 * j, 4);
      }
    });
  }
};

/// How far ahead of use the weight stream is prefetched, in bytes. Weights
/// stream once from DRAM: one core's demand misses alone keep too few lines
/// in flight (the L1 fill buffers), so the stream is prefetched into L2 (more
/// outstanding misses) far enough ahead to cover DRAM latency. Measured on a
/// 2-core AVX-512 Xeon: the Q4_0 GEMV went from 0.68 to ~0.9 of the read
/// probe when the hint went from L1 at 1.5 KiB to L2 at 4 KiB. On an AMD EPYC
/// (Zen 4), N = 4096, K = 14336 (bench/ab.py, medians of 4-8 rounds): 6 KiB
/// instead of 4 took 5-24% off the one-thread GEMV of every format and tier
/// but one, most of them faster in every round; on two threads it was within
/// the noise (0.90-1.06, the unchanged kernel's own 1.00-1.08); 12 KiB was
/// slower than 8. The one is Q8_0 on the VNNI tiers, the kernel with the
/// least work per byte: 13-15% slower at 6 and at 8 KiB, so it keeps 4 KiB.
template <class V, format Weights>
inline constexpr size_t prefetch_distance = Weights == format::q8_0 && V::vnni ? 4096 : 6144;

/// Asks for the weight bytes [p + Distance, p + Distance + bytes) ahead of use.
template <size_t Distance>
inline void prefetch_stream(const unsigned char* p, size_t bytes) {
  for (size_t line = 0; line < bytes; line += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p + Distance + line), _MM_HINT_T1);
}

/// The quantized activations of rows m0 .. m0 + MR - 1 read where quantization
/// left them: row i's block b at x + (m0 + i) * x_row_bytes + b * act_block.
/// Used by the GEMV and small-M kernels, which see few rows per call.
template <format Weights>
struct activations_in_place {
  static constexpr size_t act_qs = Weights == format::q4_1 ? 4 : 2;  // qs offset in Q8_1 / Q8_0 blocks
  static constexpr size_t act_block = Weights == format::q4_1 ? sizeof(block_q8_1) : sizeof(block_q8_0);
  const linear_args& a;
  size_t m0, blocks;
  const unsigned char* quants(size_t b, int i) const {
    return static_cast<const unsigned char*>(a.x) + (m0 + i) * a.x_row_bytes + b * act_block + act_qs;
  }
  float scale(size_t b, int i) const { return a.x_scale[(m0 + i) * blocks + b]; }
  float offset(size_t b, int i) const { return a.x_offset[(m0 + i) * blocks + b]; }
  int32_t sum(size_t b, int i) const { return a.x_sum32[(m0 + i) * blocks + b]; }
};

/// The same rows copied once per call into tiles of MR rows, so one pointer
/// with constant offsets reaches every row of a block: row i of block b has
/// its quants at (b * MR + i) * 32 and its scale, sum and offset at b * MR + i.
/// Read in place, eight rows' pointers and strided scale indices outnumber the
/// general registers and GCC spills them on every block of the large-M kernel.
template <int MR>
struct activation_tile {
  const unsigned char* qs;
  const float* scales;
  const float* offsets;
  const int32_t* sums;
  const unsigned char* quants(size_t b, int i) const { return qs + (b * MR + i) * 32; }
  float scale(size_t b, int i) const { return scales[b * MR + i]; }
  float offset(size_t b, int i) const { return offsets[b * MR + i]; }
  int32_t sum(size_t b, int i) const { return sums[b * MR + i]; }
};

/// Every row of a's activations as tiles of MR rows in `buffer` (a missing
/// row of the last tile is left unset and never read); tile(m0 / MR) views one.
template <format Weights, int MR>
class tiled_activations {
 public:
  tiled_activations(const linear_args& a, std::vector<unsigned char>& buffer)
      : cells_(a.k / 32 * MR), base_(nullptr) {
    const size_t blocks = a.k / 32, tiles = (a.m + MR - 1) / MR;
    buffer.resize(tiles * cells_ * bytes_per_cell);
    base_ = buffer.data();
    for (size_t row = 0; row < a.m; ++row) {
      unsigned char* qs = base_ + row / MR * cells_ * bytes_per_cell;
      auto* scales = reinterpret_cast<float*>(qs + cells_ * 32);
      auto* offsets = scales + cells_;
      auto* sums = reinterpret_cast<int32_t*>(offsets + cells_);
      const activations_in_place<Weights> source{a, row, blocks};
      for (size_t b = 0; b < blocks; ++b) {
        const size_t cell = b * MR + row % MR;
        std::memcpy(qs + cell * 32, source.quants(b, 0), 32);
        scales[cell] = source.scale(b, 0);
        if constexpr (Weights == format::q4_1)
          offsets[cell] = source.offset(b, 0);
        else
          sums[cell] = source.sum(b, 0);
      }
    }
  }
  activation_tile<MR> tile(size_t index) const {
    const unsigned char* qs = base_ + index * cells_ * bytes_per_cell;
    const auto* scales = reinterpret_cast<const float*>(qs + cells_ * 32);
    return {qs, scales, scales + cells_, reinterpret_cast<const int32_t*>(scales + 2 * cells_)};
  }

 private:
  static constexpr size_t bytes_per_cell = 32 + 2 * sizeof(float) + sizeof(int32_t);
  size_t cells_;
  unsigned char* base_;
};

/// R activation rows x one NR-row group over all of K; `x` gives the rows'
/// quants, scales, sums and offsets (activations_in_place or activation_tile).
template <class V, format Weights, int R, class Activations>
inline void interleaved_rows(const linear_args& a, const Activations x, const unsigned char* group,
                             float (*out)[V::lanes]) {
  constexpr size_t NR = V::lanes;
  constexpr interleaved_format f = interleaved_layout(Weights);
  constexpr size_t block_bytes = Weights == format::q4_1   ? sizeof(block_q4_1)
                                 : Weights == format::q8_0 ? sizeof(block_q8_0)
                                                           : sizeof(block_q4_0);
  const size_t blocks = a.k / 32;

  typename V::fvec acc[R];
  for (int i = 0; i < R; ++i) acc[i] = V::zero();
  for (size_t b = 0; b < blocks; ++b) {
    const unsigned char* gb = group + b * NR * block_bytes;
    const unsigned char* q = gb + f.halves * 2 * NR;
    // Weights stream once: ask for them well ahead of use.
    prefetch_stream<prefetch_distance<V, Weights>>(gb, NR * block_bytes);
    // Two accumulators per row keep the dependent dot-product chain short.
    typename V::ivec isum[R], isum2[R];
    for (int i = 0; i < R; ++i) {
      if constexpr (Weights == format::q4_0)
        isum[i] = V::set1(-8 * x.sum(b, i));  // sum (q - 8) * a = sum q * a - 8 * sum a
      else if constexpr (Weights == format::q8_0 && V::biased_signed_weights)
        isum[i] = V::set1(-128 * x.sum(b, i));  // sum (w + 128) * a - 128 * sum a
      else
        isum[i] = V::set1(0);
      isum2[i] = V::set1(0);
    }
    if constexpr (Weights == format::q8_0) {
      for (size_t j = 0; j < 8; j += 2) {
        const auto w0 = V::load(q + j * NR * 4), w1 = V::load(q + (j + 1) * NR * 4);
        if constexpr (V::biased_signed_weights) {
          // w + 128 as u8, once for all R rows (the accumulator starts at -128 * sum).
          const auto u0 = V::xor_(w0, V::splat8(0x80)), u1 = V::xor_(w1, V::splat8(0x80));
          for (int i = 0; i < R; ++i) {
            isum[i] = V::dot_u8s8_at(isum[i], u0, x.quants(b, i) + 4 * j);
            isum2[i] = V::dot_u8s8_at(isum2[i], u1, x.quants(b, i) + 4 * j + 4);
          }
        } else {
          for (int i = 0; i < R; ++i) {
            isum[i] = V::dot_s8s8(isum[i], w0, V::broadcast4(x.quants(b, i) + 4 * j));
            isum2[i] = V::dot_s8s8(isum2[i], w1, V::broadcast4(x.quants(b, i) + 4 * j + 4));
          }
        }
      }
    } else {
      for (size_t j = 0; j < 4; ++j) {
        const auto raw = V::load(q + j * NR * 4);
        const auto lo = V::nibbles_low(raw), hi = V::nibbles_high(raw);
        for (int i = 0; i < R; ++i) {
          isum[i] = V::dot_u8s8_at(isum[i], lo, x.quants(b, i) + 4 * j);
          isum2[i] = V::dot_u8s8_at(isum2[i], hi, x.quants(b, i) + 16 + 4 * j);
        }
      }
    }
    for (int i = 0; i < R; ++i) isum[i] = V::add(isum[i], isum2[i]);
    const auto dw = V::load_half(gb);
    for (int i = 0; i < R; ++i) {
      const auto term = V::mul(V::to_float(isum[i]), V::mul(dw, V::set1f(x.scale(b, i))));
      if constexpr (Weights == format::q4_1) {
        const auto offset = V::mul(V::load_half(gb + 2 * NR), V::set1f(x.offset(b, i)));
        acc[i] = V::addf(acc[i], V::addf(term, offset));
      } else {
        acc[i] = V::addf(acc[i], term);
      }
    }
  }
  for (int i = 0; i < R; ++i) V::store(out[i], acc[i]);
}

/// Bytes of packed weights swept by every row tile before moving on: small
/// enough to stay in L2, large enough that the activations (re-read once per
/// sweep) cost little. At M = 512, K = 4096 this took Q4_0 from reading all
/// 2.2 MB of activations again for every 16 columns to once per ~400 columns.
inline constexpr size_t weight_block_bytes = 256 * 1024;

/// Runs `rows` over the NR-row groups of columns [n_begin, n_end) (n_begin a
/// multiple of NR): MR activation rows at a time, then the 1..MR-1 left over,
/// and copies each group's valid columns to y. Groups are taken in blocks of
/// about weight_block_bytes, and every row tile passes over a block before the
/// next. `rows(std::integral_constant<int, R>, group, m0, out)` computes R rows
/// of one group into out[0..R).
template <size_t NR, int MR, class Rows>
void for_each_group(const linear_args& a, size_t n_begin, size_t n_end, size_t group_bytes, Rows rows) {
  alignas(64) float out[MR][NR];
  const size_t block_cols = std::max<size_t>(1, weight_block_bytes / std::max<size_t>(group_bytes, 1)) * NR;
  for (size_t b0 = n_begin; b0 < n_end; b0 += block_cols) {
    const size_t b1 = std::min(n_end, b0 + block_cols);
    for (size_t m0 = 0; m0 < a.m; m0 += MR) {
      const int count = static_cast<int>(std::min<size_t>(MR, a.m - m0));
      for (size_t g0 = b0; g0 < b1; g0 += NR) {
        const unsigned char* group = static_cast<const unsigned char*>(a.w) + g0 / NR * group_bytes;
        const size_t valid = std::min(NR, n_end - g0);
        with_row_count<MR>(count, [&](auto r) { rows(r, group, m0, out); });
        for (int i = 0; i < count; ++i) std::memcpy(a.y + (m0 + i) * a.ldy + g0, out[i], valid * sizeof(float));
      }
    }
  }
}

/// The linear kernel for Q4_0, Q4_1 and Q8_0: columns [n_begin, n_end).
template <class V, format Weights, int MR>
void linear_interleaved(const linear_args& a, size_t n_begin, size_t n_end) {
  const size_t group_bytes = a.k / 32 * V::lanes * find_format(Weights)->block_bytes;
  if constexpr (MR >= 8) {
    // Large M: tile the activations once per call (dispatch hands each thread
    // one wide column range, so this copy is made once per thread).
    thread_local std::vector<unsigned char> buffer;
    const tiled_activations<Weights, MR> tiles(a, buffer);
    for_each_group<V::lanes, MR>(a, n_begin, n_end, group_bytes, [&](auto r, const unsigned char* g, size_t m0, auto out) {
      interleaved_rows<V, Weights, decltype(r)::value>(a, tiles.tile(m0 / MR), g, out);
    });
  } else {
    for_each_group<V::lanes, MR>(a, n_begin, n_end, group_bytes, [&](auto r, const unsigned char* g, size_t m0, auto out) {
      interleaved_rows<V, Weights, decltype(r)::value>(a, activations_in_place<Weights>{a, m0, a.k / 32}, g, out);
    });
  }
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
