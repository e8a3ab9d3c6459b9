// Integer QKᵀ for q8_0 keys on the VNNI tiers (avx2_vnni, avx512_vnni), and
// integer P . V when the values are q8_0 too (q8_value_tile, below).
//
// The query rows are rounded to q8_0 once per call, exactly as the q8_0
// activation quantizer and the oracle round them (so a test can hold the
// kernel to the oracle on the same rounded rows); a decode step calls once
// per chunk of keys with the same rows, so the rounded rows are kept and
// reused while the f32 rows are unchanged. The cache keeps q8_0 keys in
// groups of 16 tokens (kv_layout.hpp): per 32-value block, eight vectors,
// vector j holding dword j of every key's block (lane i = key i), biased to
// unsigned by x ^ 0x80, and the keys' block scales in one vector. One
// vpdpbusd of such a vector with four query bytes broadcast from memory adds
// four products to every key of the tile at once, so eight of them give each
// key's block dot product in its own lane: no horizontal sum, and no
// shuffle, the keys being read as they lie. The bias adds 128 * sum(query
// block), which the accumulator starts at minus. Per block the exact integer
// dot product is scaled by d_q * d_k into the f32 score.
//
// Requires head_dim to be a multiple of 32 (a q8_0 cache guarantees it) and
// a VNNI policy (vec256<true> or vec512<true>).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "attention.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// One 32-value block of a query row rounded to q8_0: its quants, its scale
/// (the f16 d widened) and -128 times the sum of its quants.
struct q8_query_block {
  int8_t qs[qk8_0];
  float scale;
  int32_t bias;
};

/// Scores of q8_0 keys against the query rows rounded to q8_0 (see above).
template <class V>
class q8_key_scores {
 public:
  static constexpr bool integer = true;
  using ivec = typename V::ivec;
  using fvec = typename V::fvec;

  /// prefetch_cursor::step() calls per tile for one group of four rows.
  static size_t prefetch_steps(size_t d) { return d / qk8_0; }

  q8_key_scores(const float* const* q_rows, size_t rows, size_t d, attention_buffers& buffers)
      : rows_(rows), blocks_(d / qk8_0) {
    static_assert(V::vnni, "the integer scores need vpdpbusd");
    buffers.tile.resize(kv_group_bytes(d));  // a sub-tile that starts inside a group, regrouped
    scratch_ = buffers.tile.data();
    // The rounded query rows. A decode step calls once per chunk of keys with
    // the same rows: comparing them with the rows last rounded costs far less
    // than rounding again. A prefill's rows are each rounded once: they are
    // neither compared nor kept.
    const size_t blocks = rows * blocks_;
    const bool decode = rows <= attention_decode_rows;
    bool same = decode && buffers.query.size() == blocks * sizeof(q8_query_block) &&
                buffers.query_source.size() == rows * d;
    for (size_t r = 0; same && r < rows; ++r)
      same = std::memcmp(q_rows[r], buffers.query_source.data() + r * d, d * sizeof(float)) == 0;
    query_ = reinterpret_cast<q8_query_block*>(buffers.query.data());
    if (same) return;
    buffers.query.resize(blocks * sizeof(q8_query_block));
    buffers.query_source.resize(decode ? rows * d : 0);
    query_ = reinterpret_cast<q8_query_block*>(buffers.query.data());
    for (size_t r = 0; r < rows; ++r) {
      if (r + 4 < rows)  // a prefill's rows come from DRAM: ask for them four rows ahead
        for (size_t i = 0; i < d; i += 64 / sizeof(float))
          _mm_prefetch(reinterpret_cast<const char*>(q_rows[r + 4] + i), _MM_HINT_T0);
      round_row(q_rows[r], blocks_, query_ + r * blocks_);
      if (decode) std::memcpy(buffers.query_source.data() + r * d, q_rows[r], d * sizeof(float));
    }
  }

  /// float_key_scores::tile's contract, for q8_0 keys in the cache's groups.
  void tile(const unsigned char* kp, size_t stride, size_t slot, size_t n, size_t r_begin, float* scores,
            prefetch_cursor& pf) const {
    constexpr size_t TK = V::lanes;
    const kv_group_at at = q8_run<V>(kv_side::key, kp, stride, slot, n, blocks_ * qk8_0, scratch_);
    for (size_t r0 = r_begin; r0 < rows_; r0 += 4) {
      // Four rows (the last one repeated past the end: same values, same stores).
      const q8_query_block* q[4];
      for (size_t j = 0; j < 4; ++j) q[j] = query_ + std::min(r0 + j, rows_ - 1) * blocks_;
      fvec s[4];
      #pragma GCC unroll 4
      for (size_t j = 0; j < 4; ++j) s[j] = V::zero();
      for (size_t b = 0; b < blocks_; ++b) {
        pf.step();
        // Two accumulators per row; the first starts at minus the bias.
        ivec a[4], c[4];
        #pragma GCC unroll 4
        for (size_t j = 0; j < 4; ++j) {
          a[j] = V::set1(q[j][b].bias);
          c[j] = V::set1(0);
        }
        const unsigned char* kt = at.group + kv_group_block(blocks_, b) + at.lane * 4;
        #pragma GCC unroll 4
        for (size_t w = 0; w < 8; w += 2) {
          const ivec k0 = V::load(kt + w * kv_key_vector_bytes), k1 = V::load(kt + (w + 1) * kv_key_vector_bytes);
          #pragma GCC unroll 4
          for (size_t j = 0; j < 4; ++j) {
            a[j] = V::dot_u8s8_at(a[j], k0, q[j][b].qs + 4 * w);
            c[j] = V::dot_u8s8_at(c[j], k1, q[j][b].qs + 4 * w + 4);
          }
        }
        const fvec dk = V::load_half(at.group + kv_group_scale(b, at.lane));
        #pragma GCC unroll 4
        for (size_t j = 0; j < 4; ++j)
          s[j] = V::fmadd(V::to_float(V::add(a[j], c[j])), V::mul(dk, V::set1f(q[j][b].scale)), s[j]);
      }
      for (size_t j = 4; j-- > 0;) V::store(scores + std::min(r0 + j, rows_ - 1) * TK, s[j]);
    }
  }

 private:
  /// A query row's blocks -> q8_0, exactly as the activation quantizer (and
  /// the oracle) round them, with each block's scale and bias. Four blocks
  /// share one shuffle tree for their maxima and one for their quant sums (a
  /// tree per block was about half of the rounding's time, which was a tenth
  /// of a 512-token prefill's).
  static void round_row(const float* x, size_t blocks, q8_query_block* out) {
    using ops = attention_vec<V>;
    using lanes = typename ops::q8_lanes;
    constexpr size_t per = qk8_0 / V::lanes;  // vectors per block
    for (size_t b0 = 0; b0 < blocks; b0 += 4) {
      const size_t nb = std::min<size_t>(4, blocks - b0);  // past nb, the last block again
      fvec top[4];
      #pragma GCC unroll 4
      for (size_t k = 0; k < 4; ++k) {
        const float* xb = x + (b0 + std::min(k, nb - 1)) * qk8_0;
        top[k] = V::zero();
        #pragma GCC unroll 4
        for (size_t i = 0; i < per; ++i) {
          const fvec v = V::loadf(xb + i * V::lanes);
          top[k] = V::maxf(top[k], V::maxf(v, V::sub(V::zero(), v)));
        }
      }
      const __m128 d = _mm_div_ps(ops::max_each(top[0], top[1], top[2], top[3]), _mm_set1_ps(127.0f));
      alignas(16) float id[4], scale[4], sum[4];
      _mm_store_ps(id, _mm_and_ps(_mm_div_ps(_mm_set1_ps(1.0f), d), _mm_cmpneq_ps(d, _mm_setzero_ps())));
      _mm_store_ps(scale, _mm_cvtph_ps(_mm_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT)));  // fp32_to_fp16's rounding
      fvec quants[4];
      #pragma GCC unroll 4
      for (size_t k = 0; k < 4; ++k) {
        q8_query_block& o = out[b0 + std::min(k, nb - 1)];
        if (k < nb) lanes::template round32<false>(x + (b0 + k) * qk8_0, id[k], o.qs);
        ivec q = V::set1(0);
        #pragma GCC unroll 4
        for (size_t i = 0; i < per; ++i) q = V::add(q, V::widen_s8(o.qs + i * V::lanes));
        quants[k] = V::to_float(q);
      }
      _mm_store_ps(sum, ops::sum_each(quants[0], quants[1], quants[2], quants[3]));  // |sum| <= 4064: exact
      for (size_t k = 0; k < nb; ++k) {
        out[b0 + k].scale = scale[k];
        out[b0 + k].bias = -128 * static_cast<int32_t>(sum[k]);
      }
    }
  }

  size_t rows_, blocks_;
  unsigned char* scratch_;
  q8_query_block* query_;
};

/// Integer P . V for q8_0 values on the VNNI tiers. The cache keeps q8_0
/// values in groups of 16 tokens (kv_layout.hpp) where each dword holds one
/// column's bytes of four keys, columns in order, and the keys' block scales
/// lie in one vector. Per group of four rows and per 32-value block, the
/// weights w = p * d_v (p the softmax weight, d_v the key's block scale) are
/// rounded to u8 against their maximum over the tile (all its sub-tiles), u
/// = round(255 w / max w); one vpdpbusd of a broadcast of four keys' u with
/// one vector of the group adds those keys' exact integer products to
/// sixteen (eight) columns; at the end of the tile the integer sums, times
/// max w / 255, join the f32 accumulator.
/// The u8 rounding is the one approximation beyond the cache's own: at most
/// half a step of 1/255 of the tile's largest weight per weight (see the
/// paged-attention tests for the bound it adds). head_dim a multiple of 32.
template <class V, size_t S>
class q8_value_tile : public q8_value_groups<V, S> {
  using base = q8_value_groups<V, S>;
  using base::blocks_, base::scales_, base::quad, base::TK, base::per_block;

 public:
  using ivec = typename V::ivec;
  using fvec = typename V::fvec;
  using base::base;

  /// out[j] = out[j] * shrink[j] + sum over the tile's n keys of p[j * p_row
  /// + i] * value i, for the rb real rows of a group of four (shrink null:
  /// all ones).
  void accumulate(float* const* out, size_t rb, const float* shrink, const float* p, size_t p_row, size_t n,
                  prefetch_cursor& pf) const {
    using ops = attention_vec<V>;
    const size_t subs = (n + TK - 1) / TK;
    alignas(64) unsigned char u[4][S * TK];
    alignas(16) float step[4], inverse[4];
    for (size_t b = 0; b < blocks_; ++b) {
      fvec w[4][S], top[4];
      #pragma GCC unroll 4
      for (size_t j = 0; j < 4; ++j) {
        top[j] = V::zero();
        for (size_t s = 0; s < subs; ++s) {
          w[j][s] = V::mul(V::loadf(p + j * p_row + s * TK), scales_[b * S + s]);
          top[j] = V::maxf(top[j], w[j][s]);
        }
      }
      // Per row: u = round(w * 255 / max w); a row with no weight keeps u = 0.
      const __m128 most = ops::max_each(top[0], top[1], top[2], top[3]);
      const __m128 some = _mm_cmpgt_ps(most, _mm_setzero_ps());
      _mm_store_ps(inverse, _mm_and_ps(_mm_div_ps(_mm_set1_ps(255.0f), most), some));
      _mm_store_ps(step, _mm_mul_ps(most, _mm_set1_ps(1.0f / 255.0f)));
      #pragma GCC unroll 4
      for (size_t j = 0; j < 4; ++j)
        for (size_t s = 0; s < subs; ++s) ops::weights_to_u8(V::mul(w[j][s], V::set1f(inverse[j])), u[j] + s * TK);
      for (size_t c = 0; c < per_block; c += 2) {
        ivec acc[4][2];
        #pragma GCC unroll 4
        for (size_t j = 0; j < 4; ++j) acc[j][0] = acc[j][1] = V::set1(0);
        for (size_t kq = 0; kq < (n + 3) / 4; ++kq) {  // quads past n have zero weights
          pf.step();
          const unsigned char* v = quad(b, kq) + c * sizeof(ivec);
          const ivec v0 = V::load(v), v1 = V::load(v + sizeof(ivec));
          #pragma GCC unroll 4
          for (size_t j = 0; j < 4; ++j) {
            const ivec weights = V::broadcast4(u[j] + 4 * kq);
            acc[j][0] = V::dot_u8s8(acc[j][0], weights, v0);
            acc[j][1] = V::dot_u8s8(acc[j][1], weights, v1);
          }
        }
        // Columns [c TK, (c + 2) TK) of the block, in order.
        const size_t lo_col = b * qk8_0 + c * TK, hi_col = lo_col + TK;
        for (size_t j = 0; j < rb; ++j) {
          const fvec lo = V::to_float(acc[j][0]), hi = V::to_float(acc[j][1]);
          fvec o_lo = V::loadf(out[j] + lo_col), o_hi = V::loadf(out[j] + hi_col);
          if (shrink) {
            o_lo = V::mul(o_lo, V::set1f(shrink[j]));
            o_hi = V::mul(o_hi, V::set1f(shrink[j]));
          }
          V::store(out[j] + lo_col, V::fmadd(lo, V::set1f(step[j]), o_lo));
          V::store(out[j] + hi_col, V::fmadd(hi, V::set1f(step[j]), o_hi));
        }
      }
    }
  }

};

/// attention_fn for q8_0 keys with integer scores; values f32, f16 (read in
/// place), q4_0 (dequantized per tile) or q8_0 (integer P . V). head_dim a
/// multiple of 32.
template <class V, format VF>
void attention_online_q8(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                         const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l, float* acc) {
  if (rows > attention_decode_rows)
    attention_tiles<V, q8_key_scores<V>, VF, attention_prefill_subtiles>(kv, kv_head, q_rows, rows, limits, t0, t1,
                                                                         scale, m, l, acc);
  else
    attention_tiles<V, q8_key_scores<V>, VF>(kv, kv_head, q_rows, rows, limits, t0, t1, scale, m, l, acc);
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
