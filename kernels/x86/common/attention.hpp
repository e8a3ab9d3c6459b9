// Online-softmax attention (attention_fn) for the x86 tiers, written once
// against the vec256 / vec512 policies.
//
// Keys are taken a tile at a time (V::lanes tokens, never across a cache
// block) and serve every query row of the call, which for GQA is all the query
// heads sharing the KV head. f32 and f16 rows are read in place (f16 converted
// as loaded); q8_0 and q4_0 rows are dequantized once per tile. Query rows go
// four at a time: per key, four dot products folded and transposed into one
// vector of scores; per row and tile, one vector exp, the running max / sum
// update, and acc = acc * correction + sum p_t v_t with eight accumulator
// vectors in registers. No score matrix is ever stored beyond one tile.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "../../ukernel.hpp"
#include "dequant.hpp"
#include "lowbit/formats.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// exp(x) lane by lane for x <= 0 (softmax arguments): x = n ln2 + r with
/// |r| <= ln2 / 2 (two-constant split), a degree-6 polynomial for e^r (the
/// classic Cephes coefficients) and 2^n from the exponent bits. Relative error
/// about 2e-7; arguments below -87 give about 1e-38 instead of less.
template <class V>
inline typename V::fvec exp_nonpositive(typename V::fvec x) {
  const auto xc = V::maxf(x, V::set1f(-87.0f));
  const auto n = V::round_nearest(V::mul(xc, V::set1f(1.44269504088896341f)));
  auto r = V::fmadd(n, V::set1f(-0.693359375f), xc);
  r = V::fmadd(n, V::set1f(2.12194440e-4f), r);
  auto p = V::set1f(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1f(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1f(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1f(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1f(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1f(5.0000001201e-1f));
  const auto e = V::addf(V::fmadd(p, V::mul(r, r), r), V::set1f(1.0f));
  return V::mul(e, V::pow2i(n));
}

/// A q8_0 or q4_0 KV row of d values, dequantized into `out`.
template <class V, format F>
inline void dequantize_kv_row(const unsigned char* row, float* out, size_t d) {
  static_assert(F == format::q8_0 || F == format::q4_0, "only quantized K/V rows are converted ahead");
  if constexpr (F == format::q8_0) dequant_q8_0_row<V>(row, out, d);
  else dequant_q4_0_row<V>(row, out, d);
}

/// V::lanes values of a KV row from column `col`: f16 rows are converted as
/// they are read; everything else is f32 (in place, or converted ahead).
template <class V, format F>
inline typename V::fvec kv_vec(const unsigned char* row, size_t col) {
  if constexpr (F == format::f16) return V::load_half(row + 2 * col);
  else return V::loadf(reinterpret_cast<const float*>(row) + col);
}
template <format F>
inline float kv_scalar(const unsigned char* row, size_t col) {
  if constexpr (F == format::f16) {
    f16_bits h;
    std::memcpy(&h, row + 2 * col, 2);
    return fp16_to_fp32(h);
  } else {
    return reinterpret_cast<const float*>(row)[col];
  }
}

template <class V, format KF, format VF>
void attention_online(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                      const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l, float* acc) {
  constexpr size_t TK = V::lanes;
  // f32 and f16 rows are read where they are; q8_0 / q4_0 rows are converted
  // to f32 once per tile (for every query row of the call) and read as f32.
  constexpr bool k_in_place = KF == format::f32 || KF == format::f16;
  constexpr bool v_in_place = VF == format::f32 || VF == format::f16;
  constexpr format KS = k_in_place ? KF : format::f32;
  constexpr format VS = v_in_place ? VF : format::f32;
  const size_t d = kv.head_dim;
  size_t last = t0;  // tokens any row sees
  for (size_t r = 0; r < rows; ++r) last = std::max(last, std::min(t1, limits[r]));
  thread_local std::vector<float> scratch;
  // V's buffer starts 64 bytes past a 4 KiB multiple from K's (no 4K aliasing).
  const size_t tile_floats = (TK * d + 1023) / 1024 * 1024 + 16;
  scratch.resize(2 * tile_floats);
  float* kbuf = scratch.data();
  float* vbuf = kbuf + tile_floats;
  const unsigned char* krow[TK];
  const unsigned char* vrow[TK];
  alignas(64) float p[4][TK];
  alignas(16) float dots[TK][4];
  for (size_t t = t0; t < last;) {
    const size_t b = t / kv.block_tokens, slot = t % kv.block_tokens;
    const size_t n = std::min({TK, kv.block_tokens - slot, last - t});
    const unsigned char* kp = kv.k_blocks[b] + kv_head * kv.k_head_bytes + slot * kv.k_row_bytes;
    const unsigned char* vp = kv.v_blocks[b] + kv_head * kv.v_head_bytes + slot * kv.v_row_bytes;
    for (size_t i = 0; i < n; ++i) {
      krow[i] = kp + i * kv.k_row_bytes;
      vrow[i] = vp + i * kv.v_row_bytes;
      if constexpr (!k_in_place) {
        dequantize_kv_row<V, KF>(krow[i], kbuf + i * d, d);
        krow[i] = reinterpret_cast<const unsigned char*>(kbuf + i * d);
      }
      if constexpr (!v_in_place) {
        dequantize_kv_row<V, VF>(vrow[i], vbuf + i * d, d);
        vrow[i] = reinterpret_cast<const unsigned char*>(vbuf + i * d);
      }
    }
    // The next tile's rows, fetched a token at a time during the first row
    // group's scores: spread out, so the prefetches never pile up.
    const unsigned char* next_k = nullptr;
    const unsigned char* next_v = nullptr;
    size_t next_n = 0;
    if (t + n < last) {
      const size_t nb = (t + n) / kv.block_tokens, ns = (t + n) % kv.block_tokens;
      next_n = std::min({TK, kv.block_tokens - ns, last - t - n});
      next_k = kv.k_blocks[nb] + kv_head * kv.k_head_bytes + ns * kv.k_row_bytes;
      next_v = kv.v_blocks[nb] + kv_head * kv.v_head_bytes + ns * kv.v_row_bytes;
    }
    // Four query rows at a time.
    for (size_t r0 = 0; r0 < rows; r0 += 4) {
      const size_t rb = std::min<size_t>(4, rows - r0);
      const float* q[4];
      size_t visible[4];
      bool any = false;
      for (size_t j = 0; j < 4; ++j) {
        const size_t r = r0 + std::min(j, rb - 1);
        q[j] = q_rows[r];
        visible[j] = j < rb && limits[r] > t ? std::min(n, limits[r] - t) : 0;
        any = any || visible[j] > 0;
      }
      if (!any) continue;
      // Scores: per key, the four rows' dot products as vectors, folded to
      // four partial sums each and transposed into one vector of four dots.
      for (size_t i = 0; i < n; ++i) {
        if (r0 == 0 && i < next_n) {
          for (size_t off = 0; off < kv.k_row_bytes; off += 64)
            _mm_prefetch(reinterpret_cast<const char*>(next_k + i * kv.k_row_bytes + off), _MM_HINT_T1);
          for (size_t off = 0; off < kv.v_row_bytes; off += 64)
            _mm_prefetch(reinterpret_cast<const char*>(next_v + i * kv.v_row_bytes + off), _MM_HINT_T1);
        }
        typename V::fvec a[4];
        for (size_t j = 0; j < 4; ++j) a[j] = V::zero();
        size_t col = 0;
        for (; col + V::lanes <= d; col += V::lanes) {
          const auto k = kv_vec<V, KS>(krow[i], col);
          for (size_t j = 0; j < 4; ++j) a[j] = V::fmadd(V::loadf(q[j] + col), k, a[j]);
        }
        __m128 x0 = V::fold128(a[0]), x1 = V::fold128(a[1]), x2 = V::fold128(a[2]), x3 = V::fold128(a[3]);
        _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
        _mm_store_ps(dots[i], _mm_add_ps(_mm_add_ps(x0, x1), _mm_add_ps(x2, x3)));
        for (; col < d; ++col) {
          const float k = kv_scalar<KS>(krow[i], col);
          for (size_t j = 0; j < 4; ++j) dots[i][j] += q[j][col] * k;
        }
      }
      float shrink[4] = {1.0f, 1.0f, 1.0f, 1.0f};
      for (size_t j = 0; j < 4; ++j) {
        if (!visible[j]) {  // this row sees none of the tile (or is padding): p = 0 leaves it as it is
          V::store(p[j], V::zero());
          continue;
        }
        const size_t r = r0 + j;
        for (size_t i = 0; i < TK; ++i) p[j][i] = i < visible[j] ? dots[i][j] : 0.0f;
        // Lanes past `visible` hold 0: a maximum that large is still a valid
        // softmax shift (any shift >= the true maximum is exact math).
        const auto sc = V::mul(V::loadf(p[j]), V::set1f(scale));
        const float tile_max = std::max(V::hmax(sc), visible[j] < TK ? 0.0f : -std::numeric_limits<float>::infinity());
        const float new_m = std::max(m[r], tile_max);
        shrink[j] = std::exp(m[r] - new_m);  // 0 on the row's first tile
        const auto pv = V::keep_first(exp_nonpositive<V>(V::sub(sc, V::set1f(new_m))), visible[j]);
        V::store(p[j], pv);
        l[r] = l[r] * shrink[j] + V::hsum(pv);
        m[r] = new_m;
      }
      // acc = acc * shrink + P . V for the four rows, two vectors of columns
      // at a time: eight independent FMA chains over the tile's keys.
      float* out[4];
      for (size_t j = 0; j < 4; ++j) out[j] = acc + (r0 + std::min(j, rb - 1)) * d;
      size_t col = 0;
      for (; col + 2 * V::lanes <= d; col += 2 * V::lanes) {
        typename V::fvec x0[4], x1[4];
        for (size_t j = 0; j < 4; ++j) {
          x0[j] = V::mul(V::loadf(out[j] + col), V::set1f(shrink[j]));
          x1[j] = V::mul(V::loadf(out[j] + col + V::lanes), V::set1f(shrink[j]));
        }
        for (size_t i = 0; i < n; ++i) {
          const auto v0 = kv_vec<V, VS>(vrow[i], col), v1 = kv_vec<V, VS>(vrow[i], col + V::lanes);
          for (size_t j = 0; j < 4; ++j) {
            x0[j] = V::fmadd(V::set1f(p[j][i]), v0, x0[j]);
            x1[j] = V::fmadd(V::set1f(p[j][i]), v1, x1[j]);
          }
        }
        // Padding rows alias row rb - 1 and leave its old values: storing in
        // descending order writes the real row last. (Constant indices keep
        // the accumulators in registers.)
        V::store(out[3] + col, x0[3]);
        V::store(out[3] + col + V::lanes, x1[3]);
        V::store(out[2] + col, x0[2]);
        V::store(out[2] + col + V::lanes, x1[2]);
        V::store(out[1] + col, x0[1]);
        V::store(out[1] + col + V::lanes, x1[1]);
        V::store(out[0] + col, x0[0]);
        V::store(out[0] + col + V::lanes, x1[0]);
      }
      for (; col < d; ++col)
        for (size_t j = 0; j < rb; ++j) {
          float x = out[j][col] * shrink[j];
          for (size_t i = 0; i < n; ++i) x += p[j][i] * kv_scalar<VS>(vrow[i], col);
          out[j][col] = x;
        }
    }
    t += n;
  }
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
