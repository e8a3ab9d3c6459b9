// Online-softmax attention (attention_fn) for the x86 tiers, written once
// against the vec256 / vec512 policies.
//
// Keys are taken a tile at a time (V::lanes tokens, never across a cache
// block): the tile's K and V rows are converted to f32 once (f32 rows are
// read in place) and used by every query row of the call, which for GQA is
// all the query heads sharing the KV head. Per row and tile: the scores (a
// vector dot per key), one vector exp over the tile, the running max / sum
// update, and acc = acc * correction + sum p_t v_t with the accumulator held a
// vector at a time. No score matrix is ever stored beyond one tile.
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

/// One KV row in format F as f32: f32 rows are returned in place, others are
/// converted into `scratch` (d floats).
template <class V, format F>
inline const float* kv_row_f32(const unsigned char* row, float* scratch, size_t d) {
  if constexpr (F == format::f32) {
    return reinterpret_cast<const float*>(row);
  } else if constexpr (F == format::f16) {
    size_t i = 0;
    for (; i + V::lanes <= d; i += V::lanes) V::store(scratch + i, V::load_half(row + 2 * i));
    for (; i < d; ++i) {
      f16_bits h;
      std::memcpy(&h, row + 2 * i, 2);
      scratch[i] = fp16_to_fp32(h);
    }
    return scratch;
  } else if constexpr (F == format::q8_0) {
    dequant_q8_0_row<V>(row, scratch, d);
    return scratch;
  } else {
    static_assert(F == format::q4_0, "K/V rows are f32, f16, q8_0 or q4_0");
    dequant_q4_0_row<V>(row, scratch, d);
    return scratch;
  }
}

/// sum a[i] * b[i] for i < d.
template <class V>
inline float dot_f32(const float* a, const float* b, size_t d) {
  auto s0 = V::zero(), s1 = V::zero();
  size_t i = 0;
  for (; i + 2 * V::lanes <= d; i += 2 * V::lanes) {
    s0 = V::fmadd(V::load_f(a + i), V::load_f(b + i), s0);
    s1 = V::fmadd(V::load_f(a + i + V::lanes), V::load_f(b + i + V::lanes), s1);
  }
  for (; i + V::lanes <= d; i += V::lanes) s0 = V::fmadd(V::load_f(a + i), V::load_f(b + i), s0);
  float s = V::hsum(V::addf(s0, s1));
  for (; i < d; ++i) s += a[i] * b[i];
  return s;
}

template <class V, format KF, format VF>
void attention_online(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                      const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l, float* acc) {
  constexpr size_t TK = V::lanes;
  const size_t d = kv.head_dim;
  size_t last = t0;  // tokens any row sees
  for (size_t r = 0; r < rows; ++r) last = std::max(last, std::min(t1, limits[r]));
  thread_local std::vector<float> scratch;
  scratch.resize(2 * TK * d);
  float* kbuf = scratch.data();
  float* vbuf = kbuf + TK * d;
  const float* krow[TK];
  const float* vrow[TK];
  alignas(64) float s[TK];
  for (size_t t = t0; t < last;) {
    const size_t b = t / kv.block_tokens, slot = t % kv.block_tokens;
    const size_t n = std::min({TK, kv.block_tokens - slot, last - t});
    const unsigned char* kp = kv.k_blocks[b] + kv_head * kv.k_head_bytes + slot * kv.k_row_bytes;
    const unsigned char* vp = kv.v_blocks[b] + kv_head * kv.v_head_bytes + slot * kv.v_row_bytes;
    for (size_t i = 0; i < n; ++i) {
      krow[i] = kv_row_f32<V, KF>(kp + i * kv.k_row_bytes, kbuf + i * d, d);
      vrow[i] = kv_row_f32<V, VF>(vp + i * kv.v_row_bytes, vbuf + i * d, d);
    }
    for (size_t r = 0; r < rows; ++r) {
      if (limits[r] <= t) continue;
      const size_t visible = std::min(n, limits[r] - t);
      const float* q = q_rows[r];
      float tile_max = -std::numeric_limits<float>::infinity();
      for (size_t i = 0; i < visible; ++i) {
        s[i] = dot_f32<V>(q, krow[i], d) * scale;
        tile_max = std::max(tile_max, s[i]);
      }
      for (size_t i = visible; i < TK; ++i) s[i] = tile_max;  // masked below
      const float new_m = std::max(m[r], tile_max);
      const float shrink = std::exp(m[r] - new_m);  // 0 on the row's first tile
      const auto p = V::keep_first(exp_nonpositive<V>(V::sub(V::load_f(s), V::set1f(new_m))), visible);
      V::store(s, p);
      l[r] = l[r] * shrink + V::hsum(p);
      m[r] = new_m;
      float* a = acc + r * d;
      const auto c = V::set1f(shrink);
      size_t j = 0;
      for (; j + V::lanes <= d; j += V::lanes) {
        auto x = V::mul(V::load_f(a + j), c);
        for (size_t i = 0; i < visible; ++i) x = V::fmadd(V::set1f(s[i]), V::load_f(vrow[i] + j), x);
        V::store(a + j, x);
      }
      for (; j < d; ++j) {
        float x = a[j] * shrink;
        for (size_t i = 0; i < visible; ++i) x += s[i] * vrow[i][j];
        a[j] = x;
      }
    }
    t += n;
  }
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
