// Register-blocked int8 GEMM (C = A . B^T, A s8 or u8, B s8, s32 sums) for the
// x86 tiers, written once against the vec256 / vec512 policies.
//
// Each call packs A once (per-thread buffer), then for every panel of NR = 2
// vectors of output columns packs the panel's B rows laid out for the tier's
// dot product and, one K block at a time, sweeps A in tiles of MR rows with
// MR x 2 accumulator vectors in registers (partial sums carried between
// blocks in a small buffer):
//   VNNI tiers: vpdpbusd multiplies u8 by s8, 4 k per 32-bit lane. With u8 A,
//     A is the unsigned operand (a 4-byte broadcast) and B the signed one. With
//     s8 A the roles swap: B is stored biased to u8 (b + 128) and A broadcast as
//     the signed operand, so each sum carries 128 * (row sum of A), which the
//     epilogue removes using the row sums dispatch computed once per call.
//   Other tiers: vpmaddwd on s16, 2 k per lane: B is stored widened to s16 and
//     each broadcast pair of A is widened in register. Exact for every input
//     (vpmaddubsw would saturate at 255 x -128 x 2).
// A is packed into tiles of MR rows, step by step, K block by K block (one
// contiguous stream per block), and K is padded to the step with zeros in both packs, so
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
#include "row_count.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

template <class V>
struct gemm_s8_shape {
  static constexpr size_t lanes = V::lanes;
  static constexpr size_t nv = 2;                      ///< accumulator vectors per row
  static constexpr size_t nr = nv * lanes;             ///< output columns per panel
  static constexpr int mr = lanes == 16 ? 12 : 6;      ///< rows per tile (24 or 12 accumulators)
  static constexpr size_t step = V::vnni ? 4 : 2;      ///< k per 32-bit lane and instruction
};

/// `live` 32-bit words, one from each of `live` rows `stride` bytes apart
/// starting at p, into the low lanes of a vector (the rest zero).
template <class V>
inline typename V::ivec gather_words(const int8_t* p, size_t stride, size_t live) {
  if (live == 0) return V::set1(0);
  if constexpr (V::lanes == 16) {
    const __m512i index = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32(static_cast<int>(stride)));
    const __mmask16 mask = static_cast<__mmask16>((1u << live) - 1);
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, index, p, 1);
  } else {
    const __m256i index = _mm256_mullo_epi32(_mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm256_set1_epi32(static_cast<int>(stride)));
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(live)),
                                            _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
    return _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), reinterpret_cast<const int*>(p), index, mask, 1);
  }
}

/// Transposes 16 rows of 16 32-bit words in place: afterwards r[s] holds
/// word s of rows 0..15. Four stages of in-lane unpacks and 128-bit lane
/// shuffles (64 instructions for 1 KiB).
/// (A template on the vector policy so only the 512-bit tiers instantiate it.)
template <class V>
inline void transpose16x16_words(typename V::ivec r[16]) {
  typename V::ivec t[16], u[16];
  for (int g = 0; g < 8; ++g) {  // pairs of rows: words interleaved within 128-bit lanes
    t[2 * g] = _mm512_unpacklo_epi32(r[2 * g], r[2 * g + 1]);
    t[2 * g + 1] = _mm512_unpackhi_epi32(r[2 * g], r[2 * g + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // u[4g + j], lane L: rows 4g..4g+3 at word 4L + j
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int j = 0; j < 4; ++j) {  // gather lane L of the four row groups into word 4L + j
    const __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44), v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xee);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xee);
    r[j] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    r[4 + j] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
    r[8 + j] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
  }
}

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
  // Step by step, so the panel is written contiguously (nr words a step);
  // whole steps of real rows take the straight path.
  const size_t real = std::min(S::nr, a.n - n0);
  auto* out = reinterpret_cast<uint32_t*>(dst);
  size_t s = 0;
  if constexpr (V::vnni && V::lanes == 16) {
    // 16 steps at a time: each row's next 64 bytes in a register, then a
    // 16 x 16 transpose of 32-bit words per vector of columns.
    for (; s + 16 <= full; s += 16, out += 16 * S::nr) {
      for (size_t v = 0; v < S::nv; ++v) {
        __m512i r[16];
        for (size_t i = 0; i < 16; ++i) {
          const size_t col = v * 16 + i;
          r[i] = col < real ? _mm512_loadu_si512(rows[col] + s * S::step) : _mm512_setzero_si512();
        }
        transpose16x16_words<V>(r);
        for (size_t j = 0; j < 16; ++j) {
          __m512i w = r[j];
          if constexpr (Biased) w = _mm512_xor_si512(w, _mm512_set1_epi8(static_cast<char>(0x80)));
          _mm512_storeu_si512(out + j * S::nr + v * 16, w);
        }
      }
    }
  }
  if constexpr (V::vnni) {
    // One gather per step and vector: lane r loads the step's 4 bytes of row
    // n0 + v * lanes + r (rows past n masked off to zero).
    if (a.ldb * S::lanes < (size_t{1} << 31)) {
      for (; s < full; ++s, out += S::nr) {
        for (size_t v = 0; v < S::nv; ++v) {
          const size_t first = v * S::lanes;
          const size_t live = real > first ? std::min(S::lanes, real - first) : 0;
          auto w = gather_words<V>(live ? rows[first] + s * S::step : nullptr, a.ldb, live);
          if constexpr (Biased) w = V::xor_(w, V::splat8(0x80));
          V::storei(reinterpret_cast<int32_t*>(out + first), w);
        }
      }
    }
  }
  for (; s < full; ++s, out += S::nr) {
    for (size_t col = 0; col < real; ++col) {
      const int8_t* p = rows[col] + s * S::step;
      if constexpr (V::vnni) {
        uint32_t w;
        std::memcpy(&w, p, 4);
        out[col] = Biased ? w ^ 0x80808080u : w;  // b + 128 in every byte
      } else {
        out[col] = static_cast<uint16_t>(static_cast<int16_t>(p[0])) |
                   static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(p[1]))) << 16;
      }
    }
    for (size_t col = real; col < S::nr; ++col) out[col] = word(nullptr, 0);
  }
  if (full < steps)
    for (size_t col = 0; col < S::nr; ++col)
      out[col] = word(rows[col] ? rows[col] + full * S::step : nullptr, a.k - full * S::step);
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

/// acc + the dot product of one step of A (broadcast) with one vector of B.
template <class V, bool AUnsigned>
inline typename V::ivec dot_step(typename V::ivec acc, typename V::ivec a, typename V::ivec b) {
  if constexpr (!V::vnni) return V::dot_s16(acc, a, b);
  else if constexpr (AUnsigned) return V::dot_u8s8(acc, a, b);  // A u8, B s8
  else return V::dot_u8s8(acc, b, a);                           // B + 128 as u8, A s8
}

/// R rows of A from row m0 against one packed panel, steps [s_begin, s_end) of the K loop for the R rows whose block is packed
/// at `ap` (see pack_a): starts from the partial sums in `partial` (R x nr int32)
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
  for (size_t s = s_begin; s < s_end; ++s, bp += S::nv * S::lanes * 4, ap += S::mr * S::step) {
    ivec b[S::nv];
#pragma GCC unroll 2
    for (size_t v = 0; v < S::nv; ++v) b[v] = V::load(bp + v * S::lanes * 4);
#pragma GCC unroll 16
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
  // A whole panel is stored straight from the registers; a partial one
  // through a buffer, so nothing past column n is written.
  const bool whole = cols == S::nr;
  alignas(64) int32_t ci[S::nr];
  alignas(64) float yf[S::nr];
  for (int i = 0; i < R; ++i) {
    const size_t m = m0 + i;
    int32_t* c_out = whole && a.c ? a.c + m * a.ldc + n0 : ci;
    float* y_out = whole && a.y ? a.y + m * a.ldy + n0 : yf;
    for (size_t v = 0; v < S::nv; ++v) {
      ivec c = acc[i][v];
      if constexpr (V::vnni && !AUnsigned) c = V::sub(c, V::set1(128 * a.a_row_sums[m]));
      if (a.c) V::storei(c_out + v * S::lanes, c);
      if (a.y) {
        auto f = V::to_float(c);
        if (a.row_scales) f = V::mul(f, V::set1f(a.row_scales[m]));
        if (a.col_scales) f = V::mul(f, V::loadf(col_scales + v * S::lanes));
        V::store(y_out + v * S::lanes, f);
      }
    }
    if (!whole) {
      if (a.c) std::memcpy(a.c + m * a.ldc + n0, ci, cols * sizeof(int32_t));
      if (a.y) std::memcpy(a.y + m * a.ldy + n0, yf, cols * sizeof(float));
    }
  }
}

/// Packs A for the tile loop: for K block kb and row tile t (rows t * mr ..,
/// rows past m and k past K zero), the block's steps one after another, each
/// the mr rows' step bytes side by side. Blocks are outermost, so one K block
/// of every tile is a single contiguous stream, in the order the tiles run.
template <class V>
inline void pack_a(const gemm_s8_args& a, size_t block_steps, unsigned char* dst) {
  using S = gemm_s8_shape<V>;
  const size_t steps = (a.k + S::step - 1) / S::step, full = a.k / S::step;
  const size_t tiles = (a.m + S::mr - 1) / S::mr;
  const auto* base = static_cast<const unsigned char*>(a.a);
  unsigned char* out = dst;
  for (size_t s0 = 0; s0 < steps; s0 += block_steps) {
    const size_t s1 = std::min(steps, s0 + block_steps), s_full = std::min(s1, full);
    for (size_t t = 0; t < tiles; ++t) {
      const size_t rows = std::min<size_t>(S::mr, a.m - t * S::mr);
      unsigned char* tile = out;
      for (size_t s = s0; s < s_full; ++s, out += S::mr * S::step) {
        for (size_t i = 0; i < rows; ++i) std::memcpy(out + i * S::step, base + (t * S::mr + i) * a.lda + s * S::step, S::step);
        if (rows < S::mr) std::memset(out + rows * S::step, 0, (S::mr - rows) * S::step);
      }
      if (s_full < s1) {  // the zero-padded tail step
        std::memset(out, 0, S::mr * S::step);
        for (size_t i = 0; i < rows; ++i)
          std::memcpy(out + i * S::step, base + (t * S::mr + i) * a.lda + full * S::step, a.k - full * S::step);
        out += S::mr * S::step;
      }
      out = tile + block_steps * S::mr * S::step;  // every tile's share of a block is block_steps long
    }
  }
}

/// Values of K per cache block (64 KiB of B per 32-column panel on the VNNI
/// tiers, L2-resident while every row tile passes over it). Measured on a
/// 2-core AVX-512 Xeon at M=512, N=K=4096: 256 -> 0.46 of the vpdpbusd peak,
/// 1024 -> 0.53, 2048 -> 0.57, unblocked -> 0.55.
inline constexpr size_t gemm_s8_block_k = 2048;

/// The gemm_s8 kernel: columns [n_begin, n_end) (n_begin a multiple of NR).
/// Packs all of A once per call (dispatch gives each thread one wide column
/// range, so this is once per thread), then per panel of NR columns: pack B,
/// and for each K block, every row tile.
template <class V, bool AUnsigned>
void gemm_s8_blocked(const gemm_s8_args& a, size_t n_begin, size_t n_end) {
  using S = gemm_s8_shape<V>;
  const size_t steps = (a.k + S::step - 1) / S::step;
  const size_t block_steps = gemm_s8_block_k / S::step;
  const size_t tiles = (a.m + S::mr - 1) / S::mr, blocks = std::max<size_t>((steps + block_steps - 1) / block_steps, 1);
  const size_t chunk = block_steps * S::mr * S::step;
  thread_local std::vector<unsigned char> panel_buffer, a_buffer;
  thread_local std::vector<int32_t> partial_buffer;
  panel_buffer.resize(steps * S::nr * 4 + 64);
  a_buffer.resize(blocks * tiles * chunk + 64);
  unsigned char* panel = panel_buffer.data();
  panel += (64 - reinterpret_cast<uintptr_t>(panel) % 64) % 64;
  unsigned char* a_packed = a_buffer.data();
  a_packed += (64 - reinterpret_cast<uintptr_t>(a_packed) % 64) % 64;
  pack_a<V>(a, block_steps, a_packed);
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
          gemm_s8_tile<V, AUnsigned, decltype(r)::value>(a, a_packed + (s0 / block_steps * tiles + t) * chunk, panel,
                                                         col_scales, m0, n0, cols, s0, s1, first, last, partial);
        });
      }
    }
  }
}

/// A vector of `bytes` (<= lanes * 4) int8 values from p, zero beyond.
template <class V>
inline typename V::ivec load_bytes(const void* p, size_t bytes) {
  if constexpr (V::lanes == 16) {
    const __mmask64 mask = bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
    return _mm512_maskz_loadu_epi8(mask, p);
  } else {
    alignas(32) unsigned char buffer[32] = {};
    std::memcpy(buffer, p, bytes);
    return V::load(buffer);
  }
}

/// acc += the products of one vector of A bytes with one vector of B bytes,
/// lane by lane (A u8 or s8; B s8, or B + 128 as u8 when A is s8 on VNNI).
template <class V, bool AUnsigned>
inline typename V::ivec dot_bytes(typename V::ivec acc, typename V::ivec a, typename V::ivec b) {
  if constexpr (V::vnni) {
    if constexpr (AUnsigned) return V::dot_u8s8(acc, a, b);
    else return V::dot_u8s8(acc, V::xor_(b, V::splat8(0x80)), a);
  } else {
    // Widen both halves to s16 and use vpmaddwd: exact for every input.
    if constexpr (V::lanes == 16) {
      const __m256i alo = _mm512_castsi512_si256(a), ahi = _mm512_extracti64x4_epi64(a, 1);
      const __m256i blo = _mm512_castsi512_si256(b), bhi = _mm512_extracti64x4_epi64(b, 1);
      const __m512i a0 = AUnsigned ? _mm512_cvtepu8_epi16(alo) : _mm512_cvtepi8_epi16(alo);
      const __m512i a1 = AUnsigned ? _mm512_cvtepu8_epi16(ahi) : _mm512_cvtepi8_epi16(ahi);
      acc = V::dot_s16(acc, a0, _mm512_cvtepi8_epi16(blo));
      return V::dot_s16(acc, a1, _mm512_cvtepi8_epi16(bhi));
    } else {
      const __m128i alo = _mm256_castsi256_si128(a), ahi = _mm256_extracti128_si256(a, 1);
      const __m128i blo = _mm256_castsi256_si128(b), bhi = _mm256_extracti128_si256(b, 1);
      const __m256i a0 = AUnsigned ? _mm256_cvtepu8_epi16(alo) : _mm256_cvtepi8_epi16(alo);
      const __m256i a1 = AUnsigned ? _mm256_cvtepu8_epi16(ahi) : _mm256_cvtepi8_epi16(ahi);
      acc = V::dot_s16(acc, a0, _mm256_cvtepi8_epi16(blo));
      return V::dot_s16(acc, a1, _mm256_cvtepi8_epi16(bhi));
    }
  }
}

/// Sum of the int32 lanes.
template <class V>
inline int32_t lane_sum(typename V::ivec v) {
  alignas(64) int32_t lanes[V::lanes];
  V::storei(lanes, v);
  int32_t s = 0;
  for (int i = 0; i < V::lanes; ++i) s += lanes[i];
  return s;
}

/// R rows of A against B rows [n0, n0 + 4) straight from memory (no packing),
/// 4 * R accumulators, a vector of K at a time; the tail through masked loads.
template <class V, bool AUnsigned, int R>
inline void gemm_s8_rows_tile(const gemm_s8_args& a, size_t m0, size_t n0, size_t nb) {
  using ivec = typename V::ivec;
  constexpr size_t NB = 4, W = V::lanes * 4;  // B rows per pass, bytes per vector
  const unsigned char* arow[R];
  for (int i = 0; i < R; ++i) arow[i] = static_cast<const unsigned char*>(a.a) + (m0 + i) * a.lda;
  const int8_t* brow[NB];
  for (size_t j = 0; j < NB; ++j) brow[j] = a.b + (n0 + std::min(j, nb - 1)) * a.ldb;
  ivec acc[R][NB];
  for (int i = 0; i < R; ++i)
    for (size_t j = 0; j < NB; ++j) acc[i][j] = V::set1(0);
  size_t k = 0;
  for (; k + W <= a.k; k += W) {
    ivec b[NB];
    for (size_t j = 0; j < NB; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(brow[j] + k + 1024), _MM_HINT_T1);
      b[j] = V::load(brow[j] + k);
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const ivec x = V::load(arow[i] + k);
#pragma GCC unroll 4
      for (size_t j = 0; j < NB; ++j) acc[i][j] = dot_bytes<V, AUnsigned>(acc[i][j], x, b[j]);
    }
  }
  if (k < a.k) {
    // Zero A bytes past K cancel whatever B's (biased) zero padding holds.
    ivec b[NB];
    for (size_t j = 0; j < NB; ++j) b[j] = load_bytes<V>(brow[j] + k, a.k - k);
    for (int i = 0; i < R; ++i) {
      const ivec x = load_bytes<V>(arow[i] + k, a.k - k);
      for (size_t j = 0; j < NB; ++j) acc[i][j] = dot_bytes<V, AUnsigned>(acc[i][j], x, b[j]);
    }
  }
  for (int i = 0; i < R; ++i) {
    const size_t m = m0 + i;
    for (size_t j = 0; j < nb; ++j) {
      int32_t c = lane_sum<V>(acc[i][j]);
      if constexpr (V::vnni && !AUnsigned) c -= 128 * a.a_row_sums[m];
      if (a.c) a.c[m * a.ldc + n0 + j] = c;
      if (a.y) {
        float v = static_cast<float>(c);
        if (a.row_scales) v *= a.row_scales[m];
        if (a.col_scales) v *= a.col_scales[n0 + j];
        a.y[m * a.ldy + n0 + j] = v;
      }
    }
  }
}

/// The gemm_s8 kernel for few rows of A (the GEMV path): no packing, B read
/// once per RB rows of A. Columns [n_begin, n_end).
template <class V, bool AUnsigned>
void gemm_s8_rows(const gemm_s8_args& a, size_t n_begin, size_t n_end) {
  constexpr int RB = V::lanes == 16 ? 4 : 2;  // 16 (zmm) or 8 (ymm) accumulators
  for (size_t n0 = n_begin; n0 < n_end; n0 += 4) {
    const size_t nb = std::min<size_t>(4, n_end - n0);
    for (size_t m0 = 0; m0 < a.m; m0 += RB)
      with_row_count<RB>(static_cast<int>(std::min<size_t>(RB, a.m - m0)),
                         [&](auto r) { gemm_s8_rows_tile<V, AUnsigned, decltype(r)::value>(a, m0, n0, nb); });
  }
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
