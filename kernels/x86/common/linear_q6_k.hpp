// Row-interleaved linear kernel for Q6_K weights (x Q8_K activations) on x86.
//
// Layout (packer pack_interleaved_q6_k<NR>): rows NR at a time, last group
// padded with zero rows; per 256-element super-block the group stores
//     NR f16 d, 16 x NR int8 scales,
//     then for each half h (128 elements) and c = 0..7 three chunks of NR x 4
//     bytes: ql[64h + 4c ..], ql[64h + 32 + 4c ..], qh[32h + 4c ..]
// (same size as GGUF: 210 bytes per row and block). From one chunk triple a
// lane rebuilds the 6-bit codes of elements 4c+t, 32+4c+t, 64+4c+t and
// 96+4c+t of its row with byte masks and shifts, exactly as GGUF defines them.
//
// Each 16-element sub-block starts its accumulator at -32 * (the activation's
// 16-element sum), so the lanes hold sum((code - 32) * a) exactly; the int8
// scales multiply in int32 and the f32 epilogue is the oracle's:
//     y += d_a * (d * float(sum_s scale_s * isum_s))
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../ukernel.hpp"
#include "linear_interleaved.hpp"
#include "lowbit/formats.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

template <size_t NR>
struct pack_interleaved_q6_k {
  static size_t packed_size(format, size_t n, size_t k) noexcept {
    return padded_rows<NR>(n) * (k / qk_k) * sizeof(block_q6_k);
  }
  static void pack(format, const void* w, size_t n, size_t k, void* dst, size_t n_begin, size_t n_end) noexcept {
    const size_t blocks = k / qk_k, group_block = NR * sizeof(block_q6_k);
    for_each_packed_row<NR>(n, n_begin, n_end, [&](size_t r, size_t lane, bool real) {
      unsigned char* group = static_cast<unsigned char*>(dst) + r / NR * blocks * group_block;
      for (size_t b = 0; b < blocks; ++b) {
        unsigned char* gb = group + b * group_block;
        block_q6_k blk{};  // padding rows stay zero
        if (real) blk = static_cast<const block_q6_k*>(w)[r * blocks + b];
        std::memcpy(gb + 2 * lane, &blk.d, 2);
        for (size_t s = 0; s < 16; ++s) gb[2 * NR + s * NR + lane] = static_cast<unsigned char>(blk.scales[s]);
        unsigned char* q = gb + 18 * NR;
        for (size_t h = 0; h < 2; ++h)
          for (size_t c = 0; c < 8; ++c) {
            unsigned char* t = q + ((h * 8 + c) * 3) * NR * 4 + lane * 4;
            std::memcpy(t, blk.ql + 64 * h + 4 * c, 4);
            std::memcpy(t + NR * 4, blk.ql + 64 * h + 32 + 4 * c, 4);
            std::memcpy(t + 2 * NR * 4, blk.qh + 32 * h + 4 * c, 4);
          }
      }
    });
  }
};

template <class V, int MR>
inline void q6_k_rows(const linear_args& a, const unsigned char* group, size_t m0, float (*out)[V::lanes]) {
  constexpr size_t NR = V::lanes;
  const size_t blocks = a.k / qk_k;
  const unsigned char* x[MR];
  for (int i = 0; i < MR; ++i) x[i] = static_cast<const unsigned char*>(a.x) + (m0 + i) * a.x_row_bytes;
  const auto low4 = V::splat8(0x0f), two = V::splat8(0x03);
  typename V::fvec acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = V::zero();
  for (size_t b = 0; b < blocks; ++b) {
    const unsigned char* gb = group + b * NR * sizeof(block_q6_k);
    const unsigned char* q = gb + 18 * NR;
    typename V::ivec scaled[MR];
    for (int i = 0; i < MR; ++i) scaled[i] = V::set1(0);
    for (size_t h = 0; h < 2; ++h) {
      for (size_t half_sub = 0; half_sub < 2; ++half_sub) {  // c in [4*half_sub, 4*half_sub + 4)
        // Sub-blocks 8h + 2p + half_sub for p = 0..3 (elements 32p + 16*half_sub ..).
        typename V::ivec isum[MR][4];
        for (int i = 0; i < MR; ++i) {
          const auto* xb = reinterpret_cast<const block_q8_k*>(x[i] + b * sizeof(block_q8_k));
          for (size_t p = 0; p < 4; ++p) isum[i][p] = V::set1(-32 * xb->bsums[8 * h + 2 * p + half_sub]);
        }
        for (size_t c = 4 * half_sub; c < 4 * half_sub + 4; ++c) {
          // A 16th of the block's prefetches per step: one burst of 53 lines would overflow the miss queue.
          constexpr size_t step = NR * sizeof(block_q6_k) / 16;
          prefetch_stream<prefetch_distance<V, format::q6_k>>(gb + (h * 8 + c) * step, step);
          const unsigned char* t = q + ((h * 8 + c) * 3) * NR * 4;
          const auto A = V::load(t), B = V::load(t + NR * 4), H = V::load(t + 2 * NR * 4);
          const typename V::ivec code[4] = {
              V::or_(V::and_(A, low4), V::shl4(V::and_(H, two))),
              V::or_(V::and_(B, low4), V::shl4(V::and_(V::shr2(H), two))),
              V::or_(V::and_(V::shr4(A), low4), V::shl4(V::and_(V::shr4(H), two))),
              V::or_(V::and_(V::shr4(B), low4), V::shl4(V::and_(V::shr6(H), two))),
          };
          for (int i = 0; i < MR; ++i) {
            const unsigned char* xq = x[i] + b * sizeof(block_q8_k) + offsetof(block_q8_k, qs) + 128 * h + 4 * c;
            for (size_t p = 0; p < 4; ++p) isum[i][p] = V::dot_u8s8_at(isum[i][p], code[p], xq + 32 * p);
          }
        }
        for (size_t p = 0; p < 4; ++p) {
          const auto sc = V::widen_s8(gb + 2 * NR + (8 * h + 2 * p + half_sub) * NR);
          for (int i = 0; i < MR; ++i) scaled[i] = V::add(scaled[i], V::mullo(sc, isum[i][p]));
        }
      }
    }
    const auto d = V::load_half(gb);
    for (int i = 0; i < MR; ++i) {
      const auto da = V::set1f(a.x_scale[(m0 + i) * blocks + b]);
      acc[i] = V::addf(acc[i], V::mul(da, V::mul(d, V::to_float(scaled[i]))));
    }
  }
  for (int i = 0; i < MR; ++i) V::store(out[i], acc[i]);
}

/// Columns [n_begin, n_end) (n_begin a multiple of NR), every activation row.
template <class V, int MR>
void linear_q6_k_interleaved(const linear_args& a, size_t n_begin, size_t n_end) {
  const size_t group_bytes = a.k / qk_k * V::lanes * sizeof(block_q6_k);
  for_each_group<V::lanes, MR>(a, n_begin, n_end, group_bytes, [&](auto r, const unsigned char* g, size_t m0, auto out) {
    q6_k_rows<V, decltype(r)::value>(a, g, m0, out);
  });
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
