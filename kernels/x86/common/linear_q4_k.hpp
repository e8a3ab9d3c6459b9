// Row-interleaved linear kernel for Q4_K weights (x Q8_K activations) on x86.
//
// Layout (packer pack_interleaved_q4_k<NR>): rows NR at a time, last group
// padded with zero rows; per 256-element super-block the group stores
//     NR f16 d, NR f16 dmin, 8 x NR u8 scales, 8 x NR u8 mins,
//     then 32 chunks of NR x 4 quant bytes,
// where chunk 8g + j, lane r holds GGUF qs bytes 32g + 4j .. 32g + 4j + 3 of
// row r: low nibbles are sub-block 2g, high nibbles sub-block 2g + 1. The
// 6-bit scales and mins are unpacked at load (148 bytes per row and block
// instead of 144) so the kernel reads them with one widening load.
//
// Per sub-block the lanes collect the exact integer dot of each row; the
// scales multiply it in int32, the mins use the activation's 32-element sums,
// and the f32 epilogue is the oracle's:
//     y += d_a * (d * float(sum_s sc_s * isum_s)) - d_a * (dmin * float(sum_s mn_s * asum_s))
// so results are bit-identical to kernels/ref.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../ref/quant.hpp"
#include "../../ukernel.hpp"
#include "linear_interleaved.hpp"
#include "lowbit/formats.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

inline constexpr size_t q4_k_interleaved_row_bytes = 4 + 16 + 128;

template <size_t NR>
struct pack_interleaved_q4_k {
  static size_t packed_size(format, size_t n, size_t k) noexcept {
    return padded_rows<NR>(n) * (k / qk_k) * q4_k_interleaved_row_bytes;
  }
  static void pack(format, const void* w, size_t n, size_t k, void* dst, size_t n_begin, size_t n_end) noexcept {
    const size_t blocks = k / qk_k, group_block = NR * q4_k_interleaved_row_bytes;
    for_each_packed_row<NR>(n, n_begin, n_end, [&](size_t r, size_t lane, bool real) {
      unsigned char* group = static_cast<unsigned char*>(dst) + r / NR * blocks * group_block;
      for (size_t b = 0; b < blocks; ++b) {
        unsigned char* gb = group + b * group_block;
        block_q4_k blk{};  // padding rows stay zero
        if (real) blk = static_cast<const block_q4_k*>(w)[r * blocks + b];
        std::memcpy(gb + 2 * lane, &blk.d, 2);
        std::memcpy(gb + 2 * NR + 2 * lane, &blk.dmin, 2);
        for (size_t s = 0; s < 8; ++s) {
          int sc, mn;
          ref::q4_k_scale_min(blk.scales, s, sc, mn);
          gb[4 * NR + s * NR + lane] = static_cast<unsigned char>(sc);
          gb[12 * NR + s * NR + lane] = static_cast<unsigned char>(mn);
        }
        unsigned char* q = gb + 20 * NR;
        for (size_t c = 0; c < 32; ++c) std::memcpy(q + c * NR * 4 + lane * 4, blk.qs + 4 * c, 4);
      }
    });
  }
};

template <class V, int MR>
inline void q4_k_rows(const linear_args& a, const unsigned char* group, size_t m0, float (*out)[V::lanes]) {
  constexpr size_t NR = V::lanes;
  const size_t blocks = a.k / qk_k, sums = a.k / 32;
  const unsigned char* x[MR];
  for (int i = 0; i < MR; ++i) x[i] = static_cast<const unsigned char*>(a.x) + (m0 + i) * a.x_row_bytes;
  typename V::fvec acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = V::zero();
  for (size_t b = 0; b < blocks; ++b) {
    const unsigned char* gb = group + b * NR * q4_k_interleaved_row_bytes;
    const unsigned char* q = gb + 20 * NR;
    typename V::ivec scaled[MR], mins[MR];
    for (int i = 0; i < MR; ++i) scaled[i] = mins[i] = V::set1(0);
    for (size_t g = 0; g < 4; ++g) {
      // A quarter of the block's prefetches per step: a burst of 36 lines would overflow the miss queue.
      constexpr size_t quarter = NR * q4_k_interleaved_row_bytes / 4;
      prefetch_stream<prefetch_distance<V, format::q4_k>>(gb + g * quarter, quarter);
      typename V::ivec lo_sum[MR], hi_sum[MR];
      for (int i = 0; i < MR; ++i) lo_sum[i] = hi_sum[i] = V::set1(0);
      for (size_t j = 0; j < 8; ++j) {
        const auto raw = V::load(q + (8 * g + j) * NR * 4);
        const auto lo = V::nibbles_low(raw), hi = V::nibbles_high(raw);
        for (int i = 0; i < MR; ++i) {
          const unsigned char* xq = x[i] + b * sizeof(block_q8_k) + offsetof(block_q8_k, qs) + 64 * g + 4 * j;
          lo_sum[i] = V::dot_u8s8_at(lo_sum[i], lo, xq);
          hi_sum[i] = V::dot_u8s8_at(hi_sum[i], hi, xq + 32);
        }
      }
      const auto sc_lo = V::widen_u8(gb + 4 * NR + (2 * g) * NR), sc_hi = V::widen_u8(gb + 4 * NR + (2 * g + 1) * NR);
      const auto mn_lo = V::widen_u8(gb + 12 * NR + (2 * g) * NR), mn_hi = V::widen_u8(gb + 12 * NR + (2 * g + 1) * NR);
      for (int i = 0; i < MR; ++i) {
        scaled[i] = V::add(scaled[i], V::add(V::mullo(sc_lo, lo_sum[i]), V::mullo(sc_hi, hi_sum[i])));
        const int32_t* s32 = a.x_sum32 + (m0 + i) * sums + b * 8 + 2 * g;
        mins[i] = V::add(mins[i], V::add(V::mullo(mn_lo, V::set1(s32[0])), V::mullo(mn_hi, V::set1(s32[1]))));
      }
    }
    const auto d = V::load_half(gb), dmin = V::load_half(gb + 2 * NR);
    for (int i = 0; i < MR; ++i) {
      const auto da = V::set1f(a.x_scale[(m0 + i) * blocks + b]);
      const auto t1 = V::mul(da, V::mul(d, V::to_float(scaled[i])));
      const auto t2 = V::mul(da, V::mul(dmin, V::to_float(mins[i])));
      acc[i] = V::addf(acc[i], V::sub(t1, t2));
    }
  }
  for (int i = 0; i < MR; ++i) V::store(out[i], acc[i]);
}

/// Columns [n_begin, n_end) (n_begin a multiple of NR), every activation row.
template <class V, int MR>
void linear_q4_k_interleaved(const linear_args& a, size_t n_begin, size_t n_end) {
  const size_t group_bytes = a.k / qk_k * V::lanes * q4_k_interleaved_row_bytes;
  for_each_group<V::lanes, MR>(a, n_begin, n_end, group_bytes, [&](auto r, const unsigned char* g, size_t m0, auto out) {
    q4_k_rows<V, decltype(r)::value>(a, g, m0, out);
  });
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
