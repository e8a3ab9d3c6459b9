// Register-blocked int8 GEMM (C = A . B^T, A s8 or u8, B s8, s32 sums) for the
// x86 tiers, written once against the vec256 / vec512 policies.
//
// Each call packs, for every panel of NR = 2 vectors of output columns, the
// panel's B rows into a per-thread buffer laid out for the tier's dot product,
// then sweeps A in tiles of MR rows, keeping MR x 2 accumulator vectors in
// registers over all of K:
//   VNNI tiers: vpdpbusd multiplies u8 by s8, 4 k per 32-bit lane. With u8 A,
//     A is the unsigned operand (a 4-byte broadcast) and B the signed one. With
//     s8 A the roles swap: B is stored biased to u8 (b + 128) and A broadcast as
//     the signed operand, so each sum carries 128 * (row sum of A), which the
//     epilogue removes using the row sums dispatch computed once per call.
//   Other tiers: vpmaddwd on s16, 2 k per lane: B is stored widened to s16 and
//     each broadcast pair of A is widened in register. Exact for every input
//     (vpmaddubsw would saturate at 255 x -128 x 2).
// A is packed per call into tiles of MR rows, step by step (one contiguous
// stream per tile), and K is padded to the step with zeros in both packs, so
// no byte past a row of A is read.
// The f32 epilogue is the oracle's: float(c) * row_scale * col_scale, in that
// order, so results are bit-identical to kernels/ref/gemm_s8.hpp.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../ukernel.hpp"
#include "linear_interleaved.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

template <class V>
struct gemm_s8_shape {
  static constexpr size_t lanes = V::lanes;
  static constexpr size_t nv = 2;                      ///< accumulator vectors per row
  static constexpr size_t nr = nv * lanes;             ///< output columns per panel
  static constexpr int mr = lanes == 16 ? 8 : 6;       ///< rows per tile (16 or 12 accumulators)
  static constexpr size_t step = V::vnni ? 4 : 2;      ///< k per 32-bit lane and instruction
  static constexpr size_t elem = V::vnni ? 1 : 2;      ///< bytes per packed B element
};

/// Packs B rows [n0, n0 + nr) (rows past n are zero) into the panel layout:
/// for each k step s and vector v, `lanes` 32-bit lanes, lane r holding the
/// step's k values of B row n0 + v * lanes + r (biased to u8 when Biased, or
/// widened to s16 on non-VNNI tiers).
template <class V, bool Biased>
inline void pack_b_panel(const gemm_s8_args& a, size_t n0, unsigned char* dst) {
  using S = gemm_s8_shape<V>;
  const size_t steps = (a.k + S::step - 1) / S::step, full = a.k / S::step;
  const int8_t* rows[S::nr];
  for (size_t col = 0; col < S::nr; ++col) rows[col] = n0 + col < a.n ? a.b + (n0 + col) * a.ldb : nullptr;
  auto word = [](const int8_t* p, size_t count) {
    int8_t bytes[4] = {};
    if (p) std::memcpy(bytes, p, count);
    uint32_t w;
    if constexpr (V::vnni) {
      std::memcpy(&w, bytes, 4);
      if constexpr (Biased) w ^= 0x80808080u;  // b + 128 in every byte
    } else {
      const uint32_t lo = static_cast<uint16_t>(static_cast<int16_t>(bytes[0]));
      const uint32_t hi = static_cast<uint16_t>(static_cast<int16_t>(bytes[1]));
      w = lo | hi << 16;
    }
    return w;
  };
  // Step by step, so the panel is written contiguously (nr words a step).
  auto* out = reinterpret_cast<uint32_t*>(dst);
  for (size_t s = 0; s < steps; ++s, out += S::nr) {
    const size_t count = s < full ? S::step : a.k - full * S::step;
    for (size_t col = 0; col < S::nr; ++col) out[col] = word(rows[col] ? rows[col] + s * S::step : nullptr, count);
  }
}

/// One 32-bit lane's worth of A (step bytes from p), broadcast, ready for the
/// tier's dot product: the 4 raw bytes (VNNI) or 2 bytes widened to s16 pairs.
template <class V, bool AUnsigned>
inline typename V::ivec broadcast_a(const unsigned char* p) {
  if constexpr (V::vnni) {
    return V::broadcast4(p);
  } else {
    int16_t pair;
    std::memcpy(&pair, p, 2);
    if constexpr (V::lanes == 16) {
      const __m256i b = _mm256_set1_epi16(pair);
      return AUnsigned ? _mm512_cvtepu8_epi16(b) : _mm512_cvtepi8_epi16(b);
    } else {
      const __m128i b = _mm_set1_epi16(pair);
      return AUnsigned ? _mm256_cvtepu8_epi16(b) : _mm256_cvtepi8_epi16(b);
    }
  }
}

/// acc += u8 x s8 dot (vpdpbusd) in inline assembly: GCC 12 register-allocates
/// the intrinsic in a long unrolled tile with a copy (and stack spills) per
/// instruction, which halves the tile's speed; the "+v" operand keeps each
/// accumulator in its register.
template <class V>
inline typename V::ivec vpdpbusd(typename V::ivec acc, typename V::ivec u, typename V::ivec s) {
#if defined(__GNUC__) && !defined(__clang__)
  if constexpr (V::lanes == 16)
    asm("vpdpbusd %[s], %[u], %[acc]" : [acc] "+v"(acc) : [u] "v"(u), [s] "v"(s));
  else
    asm("%{vex%} vpdpbusd %[s], %[u], %[acc]" : [acc] "+x"(acc) : [u] "x"(u), [s] "x"(s));
  return acc;
#else
  return V::dot_u8s8(acc, u, s);
#endif
}

/// acc + the dot product of one step of A (broadcast) with one vector of B.
template <class V, bool AUnsigned>
inline typename V::ivec dot_step(typename V::ivec acc, typename V::ivec a, typename V::ivec b) {
  if constexpr (!V::vnni) return V::dot_s16(acc, a, b);
  else if constexpr (AUnsigned) return vpdpbusd<V>(acc, a, b);  // A u8, B s8
  else return vpdpbusd<V>(acc, b, a);                           // B + 128 as u8, A s8
}

/// R rows of A from row m0 against one packed panel; writes the valid columns.
/// Steps [s_begin, s_end) of the K loop for the R rows packed at `ap` (see
/// pack_a_tile): starts from the partial sums in `partial` (R x nr int32)
/// unless `first`, and either stores the new partial sums there or, when
/// `last`, runs the epilogue into c / y.
template <class V, bool AUnsigned, int R>
inline void gemm_s8_tile(const gemm_s8_args& a, const unsigned char* ap, const unsigned char* panel,
                         const float* col_scales, size_t m0, size_t n0, size_t cols, size_t s_begin, size_t s_end,
                         bool first, bool last, int32_t* partial) {
  using S = gemm_s8_shape<V>;
  using ivec = typename V::ivec;
  ivec acc[R][S::nv];
  for (int i = 0; i < R; ++i)
    for (size_t v = 0; v < S::nv; ++v) acc[i][v] = first ? V::set1(0) : V::load(partial + i * S::nr + v * S::lanes);
  const unsigned char* bp = panel + s_begin * S::nv * S::lanes * 4;
  ap += s_begin * S::mr * S::step;
  for (size_t s = s_begin; s < s_end; ++s, bp += S::nv * S::lanes * 4, ap += S::mr * S::step) {
    ivec b[S::nv];
#pragma GCC unroll 2
    for (size_t v = 0; v < S::nv; ++v) b[v] = V::load(bp + v * S::lanes * 4);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const ivec x = broadcast_a<V, AUnsigned>(ap + i * S::step);
#pragma GCC unroll 2
      for (size_t v = 0; v < S::nv; ++v) acc[i][v] = dot_step<V, AUnsigned>(acc[i][v], x, b[v]);
    }
  }
  if (!last) {
    for (int i = 0; i < R; ++i)
      for (size_t v = 0; v < S::nv; ++v) V::storei(partial + i * S::nr + v * S::lanes, acc[i][v]);
    return;
  }
  alignas(64) int32_t ci[S::nr];
  alignas(64) float yf[S::nr];
  for (int i = 0; i < R; ++i) {
    const size_t m = m0 + i;
    for (size_t v = 0; v < S::nv; ++v) {
      ivec c = acc[i][v];
      if constexpr (V::vnni && !AUnsigned) c = V::sub(c, V::set1(128 * a.a_row_sums[m]));
      V::storei(ci + v * S::lanes, c);
      if (a.y) {
        auto f = V::to_float(c);
        if (a.row_scales) f = V::mul(f, V::set1f(a.row_scales[m]));
        if (a.col_scales) f = V::mul(f, V::loadf(col_scales + v * S::lanes));
        V::store(yf + v * S::lanes, f);
      }
    }
    if (a.c) std::memcpy(a.c + m * a.ldc + n0, ci, cols * sizeof(int32_t));
    if (a.y) std::memcpy(a.y + m * a.ldy + n0, yf, cols * sizeof(float));
  }
}

/// Packs rows [m0, m0 + mr) of A (rows past m and k past K zero) for the
/// tile loop: for each step s, the mr rows' step bytes side by side, so a
/// tile reads A as one contiguous stream instead of mr rows lda apart.
template <class V>
inline void pack_a_tile(const gemm_s8_args& a, size_t m0, unsigned char* dst) {
  using S = gemm_s8_shape<V>;
  const size_t steps = (a.k + S::step - 1) / S::step, full = a.k / S::step;
  std::memset(dst, 0, steps * S::mr * S::step);
  for (size_t i = 0; i < S::mr && m0 + i < a.m; ++i) {
    const unsigned char* row = static_cast<const unsigned char*>(a.a) + (m0 + i) * a.lda;
    unsigned char* out = dst + i * S::step;
    for (size_t s = 0; s < full; ++s) std::memcpy(out + s * S::mr * S::step, row + s * S::step, S::step);
    if (full < steps) std::memcpy(out + full * S::mr * S::step, row + full * S::step, a.k - full * S::step);
  }
}

/// Bytes of K per cache block (2048 k-values on the VNNI tiers: 64 KiB of B
/// per 32-column panel, L2-resident while every row tile passes over it).
/// Measured on a 2-core AVX-512 Xeon at M=512, N=K=4096: 256 -> 0.46 of the
/// vpdpbusd peak, 1024 -> 0.53, 2048 -> 0.57, unblocked -> 0.55.
inline constexpr size_t gemm_s8_block_bytes = 2048;

/// The gemm_s8 kernel: columns [n_begin, n_end) (n_begin a multiple of NR).
/// Packs all of A once per call (dispatch gives each thread one wide column
/// range, so this is once per thread), then per panel of NR columns: pack B,
/// and for each K block, every row tile.
template <class V, bool AUnsigned>
void gemm_s8_blocked(const gemm_s8_args& a, size_t n_begin, size_t n_end) {
  using S = gemm_s8_shape<V>;
  const size_t steps = (a.k + S::step - 1) / S::step;
  const size_t block_steps = gemm_s8_block_bytes / (S::step * S::elem) * S::elem;  // 64 (VNNI) or 128 k-steps
  const size_t tiles = (a.m + S::mr - 1) / S::mr, tile_bytes = steps * S::mr * S::step;
  thread_local std::vector<unsigned char> panel_buffer, a_buffer;
  thread_local std::vector<int32_t> partial_buffer;
  panel_buffer.resize(steps * S::nr * 4 + 64);
  a_buffer.resize(tiles * tile_bytes + 64);
  unsigned char* panel = panel_buffer.data();
  panel += (64 - reinterpret_cast<uintptr_t>(panel) % 64) % 64;
  unsigned char* a_packed = a_buffer.data();
  a_packed += (64 - reinterpret_cast<uintptr_t>(a_packed) % 64) % 64;
  for (size_t t = 0; t < tiles; ++t) pack_a_tile<V>(a, t * S::mr, a_packed + t * tile_bytes);
  if (steps > block_steps) partial_buffer.resize(tiles * S::mr * S::nr);
  alignas(64) float col_scales[S::nr];
  for (size_t n0 = n_begin; n0 < n_end; n0 += S::nr) {
    const size_t cols = std::min(S::nr, n_end - n0);
    pack_b_panel<V, V::vnni && !AUnsigned>(a, n0, panel);
    for (size_t j = 0; j < S::nr; ++j) col_scales[j] = a.col_scales && j < cols ? a.col_scales[n0 + j] : 1.0f;
    for (size_t s0 = 0; s0 < std::max<size_t>(steps, 1); s0 += block_steps) {
      const size_t s1 = std::min(steps, s0 + block_steps);
      const bool first = s0 == 0, last = s1 >= steps;
      for (size_t t = 0; t < tiles; ++t) {
        const size_t m0 = t * S::mr;
        int32_t* partial = partial_buffer.empty() ? nullptr : partial_buffer.data() + t * S::mr * S::nr;
        with_row_count<S::mr>(static_cast<int>(std::min<size_t>(S::mr, a.m - m0)), [&](auto r) {
          gemm_s8_tile<V, AUnsigned, decltype(r)::value>(a, a_packed + t * tile_bytes, panel, col_scales, m0, n0,
                                                         cols, s0, s1, first, last, partial);
        });
      }
    }
  }
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
