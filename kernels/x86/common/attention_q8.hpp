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
// Without VNNI (the avx2 tier, vec256<false>), the same kernels with
// vpdpbusd's four-byte dot products done by the sign trick instead: the key
// bytes unbiased to s8 (x ^ 0x80), vpmaddubsw of one side's magnitudes with
// the other side given their signs (vpsignb), vpmaddwd by ones, an add:
// exact while the magnitudes are at most 128 and the signed side's bytes
// are in [-127, 127] (no pair of products saturates), with no bias to take
// off. The general path's score tiles take |k| against the query with k's
// signs; the decode tiles (q8_decode_tile) and the prefill's row lanes
// (attention_q8_row_lanes) take |q| against the keys with q's signs, which
// needs the keys in [-127, 127], as the cache's q8_0 rounding leaves them
// (|x| / d <= 127 for d = amax / 127).
// P . V rounds the weights to 7 bits (0..127) where vpdpbusd takes 8, so
// that vpmaddubsw cannot saturate either (see q8_value_tile). Every path of
// the kernel rounds alike, whichever rows the dispatcher's tasks give it.
//
// The avx512 tier (vec512<false>: AVX-512 without VNNI, Skylake-SP/X) takes
// these kernels for decode only: its tiles do the sign trick by a mask
// (a masked vpsubb, since AVX-512 has no vpsignb): the general path's with
// vpmovb2m of the keys' signs, the decode tile with the query dwords' sign
// masks kept with the rounded rows (q8_query_block::neg). Its prefill stays on
// the float row lanes (attention_row_lanes over the q8_0 keys and values):
// the integer row lanes without VNNI are 256-bit asm, and on a Xeon the
// 512-bit float prefill did 107 GOPS at 2048 tokens against their 72 (one
// thread). Its decode took 0.57-0.86 of the float decode's time there
// from L2 and 0.48-0.83 from DRAM (lowbit-attn-min, q8_0/q8_0, d 128, six
// rounds each).
//
// Requires head_dim to be a multiple of 32 (a q8_0 cache guarantees it).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "attention.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// One 32-value block of a query row rounded to q8_0: its quants, its scale
/// (the f16 d widened) and -128 times the sum of its quants (0 without VNNI:
/// the sign trick takes the keys unbiased); without VNNI also the quants'
/// magnitudes |qs| (q8_key_scores::magnitudes), which the decode tiles' sign
/// trick takes as vpmaddubsw's unsigned side, and on 512-bit vectors the
/// signs of each dword w of quants as that dword broadcast to 64 bytes would
/// have them (bit i: quant 4 w + i % 4 negative), the mask of the masked
/// vpsubb that stands in for vpsignb there (q8_key_scores::sign_masks).
struct q8_query_block {
  int8_t qs[qk8_0];
  float scale;
  int32_t bias;
  uint8_t mag[qk8_0];
  uint64_t neg[qk8_0 / 4];
};

/// Scores of q8_0 keys against the query rows rounded to q8_0 (see above).
template <class V>
class q8_key_scores {
 public:
  static constexpr bool integer = true;
  using ivec = typename V::ivec;
  using fvec = typename V::fvec;
  /// Whether the rounded rows carry |qs| (q8_query_block::mag): the decode
  /// tiles without VNNI read them; and their dwords' sign masks
  /// (q8_query_block::neg): the 512-bit one.
  static constexpr bool magnitudes = !V::vnni, sign_masks = !V::vnni && V::lanes == 16;

  /// prefetch_cursor::step() calls per tile for one group of rows (any count).
  static size_t prefetch_steps(size_t d) { return d / qk8_0 * (spread_asks<V> ? 2 : 1); }

  /// `rows` query rows, `group` of them per KV head (tile() is called on
  /// one head's rows_of()).
  q8_key_scores(const float* const* q_rows, size_t rows, size_t group, size_t d, attention_buffers& buffers)
      : rows_(rows), blocks_(d / qk8_0) {
    buffers.tile.resize(kv_group_bytes(d));  // a sub-tile that starts inside a group, regrouped
    scratch_ = buffers.tile.data();
    // The rounded query rows. A decode step calls once per chunk of keys with
    // the same rows: comparing them with the rows last rounded costs far less
    // than rounding again. A prefill's rows are each rounded once: they are
    // neither compared nor kept.
    const size_t blocks = rows * blocks_;
    const bool decode = group <= attention_decode_rows;
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

  /// The rounded rows, blocks_ blocks a row (q8_decode_tile reads them).
  const q8_query_block* rounded_rows() const { return query_; }

  /// The same scores for rows [r0, r0 + n) alone.
  q8_key_scores rows_of(size_t r0, size_t n) const {
    q8_key_scores part = *this;
    part.query_ += r0 * blocks_;
    part.rows_ = n;
    return part;
  }

  /// float_key_scores::tile's contract, for q8_0 keys in the cache's groups:
  /// the rows in groups of four, the last at its own count.
  void tile(const unsigned char* kp, size_t stride, size_t slot, size_t n, size_t r_begin, float* scores,
            prefetch_cursor& pf_home) const {
    prefetch_pass own(pf_home);  // pf in registers through the loops
    prefetch_cursor& pf = own.pf;
    const kv_group_at at = q8_run<V>(kv_side::key, kp, stride, slot, n, blocks_ * qk8_0, scratch_);
    for (size_t r0 = r_begin; r0 < rows_; r0 += 4)
      with_group_rows(rows_ - r0, [&]<size_t R>() __attribute__((always_inline)) { group<R>(at, r0, scores, pf); });
  }

 private:
  /// tile() for the R rows from r0.
  template <size_t R>
  [[gnu::always_inline]] void group(kv_group_at at, size_t r0, float* scores, prefetch_cursor& pf) const {
    constexpr size_t TK = V::lanes;
    const q8_query_block* q[R];
    for (size_t j = 0; j < R; ++j) q[j] = query_ + (r0 + j) * blocks_;
    fvec s[R];
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j) s[j] = V::zero();
    for (size_t b = 0; b < blocks_; ++b) {
      pf.step();
      // Two accumulators per row; the first starts at minus the bias.
      ivec a[R], c[R];
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j) {
        a[j] = V::set1(q[j][b].bias);
        c[j] = V::set1(0);
      }
      const unsigned char* kt = at.group + kv_group_block(blocks_, b) + at.lane * 4;
      #pragma GCC unroll 4
      for (size_t w = 0; w < 8; w += 2) {
        if (spread_asks<V> && w == 4) pf.step();
        const ivec k0 = V::load(kt + w * kv_key_vector_bytes), k1 = V::load(kt + (w + 1) * kv_key_vector_bytes);
        if constexpr (V::vnni) {
          #pragma GCC unroll 4
          for (size_t j = 0; j < R; ++j) {
            a[j] = V::dot_u8s8_at(a[j], k0, q[j][b].qs + 4 * w);
            c[j] = V::dot_u8s8_at(c[j], k1, q[j][b].qs + 4 * w + 4);
          }
        } else {
          // The sign trick on the unbiased keys (|k| shared by the rows).
          const ivec s0 = V::xor_(k0, V::splat8(0x80)), s1 = V::xor_(k1, V::splat8(0x80));
          #pragma GCC unroll 4
          for (size_t j = 0; j < R; ++j) {
            a[j] = V::dot_s8s8(a[j], s0, V::broadcast4(q[j][b].qs + 4 * w));
            c[j] = V::dot_s8s8(c[j], s1, V::broadcast4(q[j][b].qs + 4 * w + 4));
          }
        }
      }
      const fvec dk = V::load_half(at.group + kv_group_scale(b, at.lane));
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j)
        s[j] = V::fmadd(V::to_float(V::add(a[j], c[j])), V::mul(dk, V::set1f(q[j][b].scale)), s[j]);
    }
    for (size_t j = R; j-- > 0;) V::store(scores + (r0 + j) * TK, s[j]);
  }

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
        if constexpr (magnitudes) {  // a block is one 256-bit vector on either width
          const __m256i quants = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o.qs));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.mag), _mm256_abs_epi8(quants));
          if constexpr (sign_masks) {
            // Bit i of `signs`: quant i negative; dword w's four bits, once in each of the sixteen dwords.
            const auto signs = static_cast<uint32_t>(_mm256_movemask_epi8(quants));
            for (size_t w = 0; w < qk8_0 / 4; ++w) o.neg[w] = (signs >> (4 * w) & 0xfu) * 0x1111111111111111ull;
          }
        }
        ivec q = V::set1(0);
        #pragma GCC unroll 4
        for (size_t i = 0; i < per; ++i) q = V::add(q, V::widen_s8(o.qs + i * V::lanes));
        quants[k] = V::to_float(q);
      }
      _mm_store_ps(sum, ops::sum_each(quants[0], quants[1], quants[2], quants[3]));  // |sum| <= 4064: exact
      for (size_t k = 0; k < nb; ++k) {
        out[b0 + k].scale = scale[k];
        out[b0 + k].bias = V::vnni ? -128 * static_cast<int32_t>(sum[k]) : 0;  // the sign trick needs none
      }
    }
  }

  size_t rows_, blocks_;
  unsigned char* scratch_;
  q8_query_block* query_;
};

/// The code the integer P . V gives a row's largest softmax weight: 255 on
/// the VNNI tiers (vpdpbusd's unsigned bytes), 127 by the sign trick without
/// VNNI, where vpmaddubsw's pairs of products must not saturate.
template <class V>
inline constexpr float u8_weight_levels = V::vnni ? 255.0f : 127.0f;

/// The u8 rounding's factors for four rows, from each row's largest weight
/// (most): inverse = levels / most (0 for a row with no weight, which then
/// keeps u = 0) and step = most / levels, the value of one code.
inline void u8_rounding(__m128 most, float levels, float* inverse, float* step) {
  _mm_store_ps(inverse, _mm_and_ps(_mm_div_ps(_mm_set1_ps(levels), most), _mm_cmpgt_ps(most, _mm_setzero_ps())));
  _mm_store_ps(step, _mm_mul_ps(most, _mm_set1_ps(1.0f / levels)));
}

/// Integer P . V for q8_0 values on the VNNI tiers. The cache keeps q8_0
/// values in groups of 16 tokens (kv_layout.hpp) where each dword holds one
/// column's bytes of four keys, columns in order, and the keys' block scales
/// lie in one vector. Per group of rows (up to four) and per 32-value block, the
/// weights w = p * d_v (p the softmax weight, d_v the key's block scale) are
/// rounded to u8 against their maximum over the tile (all its sub-tiles), u
/// = round(255 w / max w); one vpdpbusd of a broadcast of four keys' u with
/// one vector of the group adds those keys' exact integer products to
/// sixteen (eight) columns; at the end of the tile the integer sums, times
/// max w / 255, join the f32 accumulator.
/// The u8 rounding is the one approximation beyond the cache's own: at most
/// half a step of 1/255 of the tile's largest weight per weight (see the
/// paged-attention tests for the bound it adds). head_dim a multiple of 32.
/// Without VNNI the weights are rounded to 0..127 instead (u = round(127 w /
/// max w), a step of 1/127), so that vpmaddubsw's pair of products, at most
/// 2 * 127 * 128, cannot saturate its int16: dot_u8s8's emulation is exact
/// for unsigned operands below 128.
template <class V, size_t S>
class q8_value_tile : public q8_value_groups<V, S> {
  using base = q8_value_groups<V, S>;
  using base::blocks_, base::scales_, base::quad, base::TK, base::per_block, base::quads;

 public:
  using ivec = typename V::ivec;
  using fvec = typename V::fvec;
  using base::base;

  /// prefetch_cursor::step() calls per sub-tile for one group of rows: on
  /// 512-bit vectors (spread_asks) one per sub-tile and block of the
  /// products and four per block (one per row, four whatever R) while the
  /// weights are rounded, shared by the S sub-tiles; else one per key quad.
  static size_t prefetch_steps(size_t d) {
    static_assert(4 % S == 0, "the rounding's four steps a block are shared evenly by the sub-tiles");
    constexpr size_t rounding = 4 / S;  // four a block (one per row of four), per sub-tile
    return spread_asks<V> ? d / qk8_0 * (per_block / 2 + rounding) : base::prefetch_steps(d);
  }

  /// out[j] = out[j] * shrink[j] + sum over the tile's n keys of p[j * p_row
  /// + i] * value i, for the R rows of a group (shrink null: all ones).
  template <size_t R>
  void accumulate(float* const* out, const float* shrink, const float* p, size_t p_row, size_t n,
                  prefetch_cursor& pf_home) const {
    prefetch_pass own(pf_home);  // pf in registers through the loops
    prefetch_cursor& pf = own.pf;
    using ops = attention_vec<V>;
    const size_t subs = (n + TK - 1) / TK;
    alignas(64) unsigned char u[R][S * TK];
    alignas(16) float step[4], inverse[4];
    constexpr float levels = u8_weight_levels<V>;
    for (size_t b = 0; b < blocks_; ++b) {
      fvec w[R][S], top[4];  // top past R: zeros (no weight)
      #pragma GCC unroll 4
      for (size_t j = 0; j < 4; ++j) {
        top[j] = V::zero();
        if (j >= R) continue;
        for (size_t s = 0; s < subs; ++s) {
          w[j][s] = V::mul(V::loadf(p + j * p_row + s * TK), scales_[b * S + s]);
          top[j] = V::maxf(top[j], w[j][s]);
        }
      }
      // Per row: u = round(w * levels / max w); a row with no weight keeps u = 0.
      u8_rounding(ops::max_each(top[0], top[1], top[2], top[3]), levels, inverse, step);
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j) {
        if constexpr (spread_asks<V>) pf.step();
        const fvec scale = V::set1f(inverse[j]);
        if constexpr (S % 4 == 0) {
          // Four sub-tiles a store; past the tile's, zeros (never read).
          for (size_t s = 0; s < subs; s += 4) {
            const auto at = [&](size_t k) { return s + k < subs ? V::mul(w[j][s + k], scale) : V::zero(); };
            ops::weights_to_u8x4(at(0), at(1), at(2), at(3), u[j] + s * TK);
          }
        } else {
          for (size_t s = 0; s < subs; ++s) ops::weights_to_u8(V::mul(w[j][s], scale), u[j] + s * TK);
        }
      }
      if constexpr (spread_asks<V>)  // four steps a block whatever R (the count prefetch_steps plans)
        for (size_t j = R; j < 4; ++j) pf.step();
      for (size_t c = 0; c < per_block; c += 2) {
        ivec acc[R][2];
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j) acc[j][0] = acc[j][1] = V::set1(0);
        // Whole sub-tiles (quads past n have zero weights, and finite
        // values in the group's memory), the quads at constant offsets from
        // one pointer a sub-tile rather than each quad's address computed
        // per step: 0.98 of the time from L2 (avx512_vnni decode on a Xeon
        // of family 6, model 207; docs/attention.md, twenty-fourth section).
        for (size_t s = 0; s < subs; ++s) {
          const unsigned char* g = quad(b, s * quads) + c * sizeof(ivec);
          #pragma GCC unroll 4
          for (size_t q = 0; q < quads; ++q) {
            if (!spread_asks<V> || q == 0) pf.step();
            const unsigned char* v = g + q * kv_value_quad_bytes;
            const ivec v0 = V::load(v), v1 = V::load(v + sizeof(ivec));
            #pragma GCC unroll 4
            for (size_t j = 0; j < R; ++j) {
              const ivec weights = V::broadcast4(u[j] + s * TK + 4 * q);
              acc[j][0] = V::dot_u8s8(acc[j][0], weights, v0);
              acc[j][1] = V::dot_u8s8(acc[j][1], weights, v1);
            }
          }
        }
        // Columns [c TK, (c + 2) TK) of the block, in order. Constant
        // indices keep the sums in registers.
        const size_t lo_col = b * qk8_0 + c * TK, hi_col = lo_col + TK;
        fvec o[R][2];
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j) {
          o[j][0] = V::loadf(out[j] + lo_col);
          o[j][1] = V::loadf(out[j] + hi_col);
          if (shrink) {
            o[j][0] = V::mul(o[j][0], V::set1f(shrink[j]));
            o[j][1] = V::mul(o[j][1], V::set1f(shrink[j]));
          }
          o[j][0] = V::fmadd(V::to_float(acc[j][0]), V::set1f(step[j]), o[j][0]);
          o[j][1] = V::fmadd(V::to_float(acc[j][1]), V::set1f(step[j]), o[j][1]);
        }
        #pragma GCC unroll 4
        for (size_t k = 0; k < R; ++k) {
          V::store(out[R - 1 - k] + lo_col, o[R - 1 - k][0]);
          V::store(out[R - 1 - k] + hi_col, o[R - 1 - k][1]);
        }
      }
    }
  }

};

/// The next tile's K and V lines as q8_decode_tile asks for them: two lines
/// of each stream an ask (the tile calls it at fixed points spread over its
/// time), from the next tile's first K and V rows, none where those are
/// null; then the last line of each run where it does not start a line.
class next_tile_asks {
 public:
  next_tile_asks(const char* k, const char* v) : k_(k), v_(v), k_first_(k), v_first_(v) {}
  [[gnu::always_inline]] void operator()() {
    if (k_first_) prefetch_line_pairs(k_, v_);
  }
  /// Row j's share (of `rows`) of the asks the softmax makes: the lines the
  /// blocks' asks leave of a stream's 17 nb, (3 nb + 1) / 2 asks in all.
  [[gnu::always_inline]] void softmax_share(size_t j, size_t rows, size_t nb) {
    const size_t asks = (3 * nb + 1) / 2;
    for (size_t i = j * asks / rows; i < (j + 1) * asks / rows; ++i) (*this)();
  }
  /// After the tile: each stream's run of `run_bytes` bytes (the next
  /// tile's rows) to its last line.
  [[gnu::always_inline]] void last_lines(size_t run_bytes) const {
    if (!k_first_) return;
    _mm_prefetch(k_first_ + run_bytes - 1, _MM_HINT_T1);
    _mm_prefetch(v_first_ + run_bytes - 1, _MM_HINT_T1);
  }

 private:
  const char *k_, *v_;
  const char* k_first_;
  const char* v_first_;
};

/// q8_decode_tile's scores after a block of QKᵀ: for each of R rows and two
/// vectors of keys, s = a d_q d_k + s (q8_key_scores' products, in its order),
/// the rows' blocks q[j * nb + b], the keys' block scales dk0 and dk1.
template <class V, size_t R>
[[gnu::always_inline]] inline void add_block_scores(typename V::fvec (&s)[R][2], const typename V::ivec (&a)[R][2],
                                                    typename V::fvec dk0, typename V::fvec dk1,
                                                    const q8_query_block* q, size_t nb, size_t b) {
  #pragma GCC unroll 4
  for (size_t j = 0; j < R; ++j) {
    const auto dq = V::set1f(q[j * nb + b].scale);
    s[j][0] = V::fmadd(V::to_float(a[j][0]), V::mul(dk0, dq), s[j][0]);
    s[j][1] = V::fmadd(V::to_float(a[j][1]), V::mul(dk1, dq), s[j][1]);
  }
}

/// q8_decode_tile's factors for its rows' sums (the general path's): where
/// a row's running maximum moved from prev to next, shrink holds 2^(prev -
/// next) in lanes 0-3 (zeros past them) and the result is true; else ones.
template <class V>
[[gnu::always_inline]] inline bool tile_shrink(__m128 prev, __m128 next, float* shrink) {
  const bool rescale = _mm_movemask_ps(_mm_cmplt_ps(prev, next)) != 0;
  if (rescale) V::store(shrink, exp2_nonpositive<V, true>(attention_vec<V>::from4(_mm_sub_ps(prev, next))));
  else V::store(shrink, V::set1f(1.0f));
  return rescale;
}

/// P . V's epilogue in q8_decode_tile, for one row and two vectors of its
/// columns at o: the sums so far, times shrink where the tile rescales,
/// plus the tile's integer sums s0, s1 times the block's step.
template <class V>
[[gnu::always_inline]] inline void add_tile_sums(float* o, typename V::ivec s0, typename V::ivec s1, float step,
                                                 bool rescale, float shrink) {
  auto o0 = V::loadf(o), o1 = V::loadf(o + V::lanes);
  if (rescale) {
    o0 = V::mul(o0, V::set1f(shrink));
    o1 = V::mul(o1, V::set1f(shrink));
  }
  V::store(o, V::fmadd(V::to_float(s0), V::set1f(step), o0));
  V::store(o + V::lanes, V::fmadd(V::to_float(s1), V::set1f(step), o1));
}

/// The integer decode's tile in its common case, written for it alone:
/// 512-bit vectors (vpdpbusd on avx512_vnni and amx; on the avx512 tier the
/// sign trick of q8_key_scores and 7-bit weights, as its general path), a
/// whole tile of 32 keys that starts a group of the cache's
/// layout (two whole groups, neither regrouped), and every query row of the
/// KV head seeing every key of it (a decode step), up to four rows a call
/// (attention_tiles calls once per group of four rows, the last group at
/// its own count). attention_tiles hands such tiles here and every other to
/// its general path; the results are the same bits (the same float
/// operations in the same order; the integer sums are exact in any order),
/// which PagedAttention.TheIntegerDecodeTileGivesEachRowWhatTheGeneralPathDoes
/// checks. What it does without: the scores' store and reload between QKᵀ
/// and the softmax (the score vectors and, through P . V, the weight vectors
/// stay in registers), the sub-tile calls and their prefetch_pass copies,
/// the regrouping tests, the masks for keys a row does not see, the block
/// scales' store and reload, and the prefetch cursor's countdown: the next
/// tile's lines (k_ask, v_ask: its first K and V rows; null: none asked
/// for) are asked for two of each stream at a time at fixed points spread
/// over the tile in proportion to each phase's time, at constant offsets.
/// On a Xeon of family 6, model 207 it took 0.71 of the general path's time
/// from L2 (lowbit-attn-min, four rows; docs/attention.md, twenty-seventh
/// section), most of it from two changes below: P . V's weights broadcast
/// by loads (broadcast4_loaded) and four blocks' weights rounded before
/// their products; on the avx512 tier (the sign trick) 0.82 from L2 and
/// 0.96 cold (docs/attention.md, thirty-fifth section), and 0.948 of that
/// from L2 since its sign trick takes the query's magnitudes (a09b7a0,
/// thirty-eighth section).
///
/// q: the rows' rounded blocks (q8_key_scores' form), kg and vg: the tile's
/// first key and value groups (the second follows each), m, l in log2
/// units, acc: the rows' sums, d apart.
template <class V>
struct q8_decode_tile {
  static_assert(V::lanes == 16, "512-bit vectors: sixteen keys a vector");
  using ivec = typename V::ivec;
  using fvec = typename V::fvec;
  // The decode's tile on 512-bit vectors: decode_subtiles sub-tiles of V::lanes keys.
  static constexpr size_t S = decode_subtiles<V>, TK = V::lanes, TT = S * TK;
  static_assert(S == 2, "the tile's loops are written for two sub-tiles (two groups of the cache)");

  /// R rows (1 to 4) of a KV head's group; the padding lanes of the
  /// four-row maxima and sums as attention_tiles pads them.
  template <size_t R>
  [[gnu::noinline]] static void run(const q8_query_block* q, size_t d, const unsigned char* kg, const unsigned char* vg,
                                    float score_scale, float* m, float* l, float* acc, const char* k_ask,
                                    const char* v_ask) {
    static_assert(R >= 1 && R <= 4, "a group of at most four rows");
    using ops = attention_vec<V>;
    constexpr float minus_inf = -std::numeric_limits<float>::infinity();
    constexpr __mmask8 real = (1u << R) - 1;  // the rows' lanes of m and l
    const size_t nb = d / qk8_0, gb = kv_group_bytes(d);
    const size_t run_bytes = 2 * gb;  // one stream's bytes of the next tile (its 32 rows)
    next_tile_asks ask(k_ask, v_ask);
    // QKᵀ: per block, 2 R vpdpbusd chains (R rows, two sub-tiles), each
    // from minus its row's bias; s = a d_q d_k + s, as q8_key_scores.
    fvec s[R][S];
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j) s[j][0] = s[j][1] = V::zero();
    for (size_t b = 0; b < nb; ++b) {
      const unsigned char* k0 = kg + kv_group_block(nb, b);
      const unsigned char* k1 = k0 + gb;
      ivec a[R][S];
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j) a[j][0] = a[j][1] = V::set1(q[j * nb + b].bias);
      #pragma GCC unroll 8
      for (size_t w = 0; w < 8; ++w) {
        if (w % 4 == 0) ask();
        const ivec x0 = V::load(k0 + w * kv_key_vector_bytes), x1 = V::load(k1 + w * kv_key_vector_bytes);
        if constexpr (V::vnni) {
          #pragma GCC unroll 4
          for (size_t j = 0; j < R; ++j) {
            a[j][0] = V::dot_u8s8_at(a[j][0], x0, q[j * nb + b].qs + 4 * w);
            a[j][1] = V::dot_u8s8_at(a[j][1], x1, q[j * nb + b].qs + 4 * w);
          }
        } else {
          // The sign trick on the unbiased keys with the query as the
          // magnitudes' side, as the 256-bit tile's: vpmaddubsw(|q|, k with
          // q's signs), |q| and the signs' mask (one kmovq) from the rounded
          // rows. With |k| and k's signs (a vpabsb and a vpmovb2m per key
          // vector, shared by the rows, and a masked vpsubb per row) it was
          // two more instructions per key vector, on port 0 with the
          // products. The same products, so the same bits.
          static_assert(q8_key_scores<V>::sign_masks);
          const ivec s0 = V::xor_(x0, V::splat8(0x80)), s1 = V::xor_(x1, V::splat8(0x80));
          #pragma GCC unroll 4
          for (size_t j = 0; j < R; ++j) {
            const q8_query_block& qb = q[j * nb + b];
            const __mmask64 negative = _cvtu64_mask64(qb.neg[w]);
            const ivec mw = V::broadcast4(qb.mag + 4 * w);
            a[j][0] = V::dot_u8s8(a[j][0], mw, V::negate_where(s0, negative));
            a[j][1] = V::dot_u8s8(a[j][1], mw, V::negate_where(s1, negative));
          }
        }
      }
      const fvec dk0 = V::load_half(kg + kv_group_scale(b, 0)), dk1 = V::load_half(kg + gb + kv_group_scale(b, 0));
      add_block_scores<V, R>(s, a, dk0, dk1, q, nb, b);
    }
    // The online softmax, as attention_tiles' (every row sees every key;
    // past R, maxima of -inf against an old maximum of 0, sums of 0).
    fvec top[4];
    #pragma GCC unroll 4
    for (size_t j = 0; j < 4; ++j) {
      if (j >= R) {
        top[j] = V::set1f(minus_inf);
        continue;
      }
      s[j][0] = V::mul(s[j][0], V::set1f(score_scale));
      s[j][1] = V::mul(s[j][1], V::set1f(score_scale));
      top[j] = V::maxf(s[j][0], s[j][1]);
    }
    const __m128 prev = _mm_maskz_loadu_ps(real, m);
    const __m128 next = _mm_max_ps(prev, ops::max_each(top[0], top[1], top[2], top[3]));
    alignas(16) float new_m[4];
    _mm_store_ps(new_m, next);
    fvec p[R][S], row_sum[4];
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j) {
      ask.softmax_share(j, R, nb);
      p[j][0] = exp2_nonpositive<V, true>(V::sub(s[j][0], V::set1f(new_m[j])));
      p[j][1] = exp2_nonpositive<V, true>(V::sub(s[j][1], V::set1f(new_m[j])));
      row_sum[j] = V::addf(V::addf(V::zero(), p[j][0]), p[j][1]);
    }
    for (size_t j = R; j < 4; ++j) row_sum[j] = V::zero();
    const __m128 total = ops::sum_each(row_sum[0], row_sum[1], row_sum[2], row_sum[3]);
    alignas(64) float shrink[TK];
    const bool rescale = tile_shrink<V>(prev, next, shrink);
    _mm_mask_storeu_ps(l, real, _mm_add_ps(_mm_mul_ps(_mm_maskz_loadu_ps(real, l), _mm_load_ps(shrink)), total));
    _mm_mask_storeu_ps(m, real, next);
    // P . V, four blocks at a time: first their weights p d_v rounded to
    // u8 against each row's largest in the block (q8_value_tile's
    // rounding), the four blocks' sixteen maxima in one vector and one
    // division, then their products, four key quads a sub-tile. Rounded
    // block by block, each block's products waited on its own chain of
    // maxima, division and rounding.
    alignas(64) unsigned char u[4][R][TT];  // [block of the four][row][key]
    alignas(64) float step[16], inverse[16];  // lane 4 k + j: block k, row j
    constexpr float levels = u8_weight_levels<V>;
    for (size_t b0 = 0; b0 < nb; b0 += 4) {
      const size_t nq = std::min<size_t>(4, nb - b0);  // past nq, the last block again
      fvec dv[4][S], top[4];
      #pragma GCC unroll 4
      for (size_t k = 0; k < 4; ++k) {
        const unsigned char* scales = vg + kv_group_scale(b0 + std::min(k, nq - 1), 0);
        dv[k][0] = V::load_half(scales);
        dv[k][1] = V::load_half(scales + gb);
        if (k < nq) ask();
        fvec most[4] = {V::zero(), V::zero(), V::zero(), V::zero()};  // past R: no weight
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j)
          most[j] = V::maxf(V::maxf(V::zero(), V::mul(p[j][0], dv[k][0])), V::mul(p[j][1], dv[k][1]));
        top[k] = ops::max_in_lanes(most[0], most[1], most[2], most[3]);
      }
      const fvec largest = ops::max_across_lanes(top[0], top[1], top[2], top[3]);
      V::store(inverse, ops::quotient_if_positive(V::set1f(levels), largest));
      V::store(step, V::mul(largest, V::set1f(1.0f / levels)));
      #pragma GCC unroll 4
      for (size_t k = 0; k < 4; ++k) {
        if (k >= nq) break;
        ask();
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j) {
          const fvec scale = V::set1f(inverse[4 * k + j]);
          ops::weights_to_u8(V::mul(V::mul(p[j][0], dv[k][0]), scale), u[k][j]);
          ops::weights_to_u8(V::mul(V::mul(p[j][1], dv[k][1]), scale), u[k][j] + TK);
        }
      }
      for (size_t k = 0; k < nq; ++k) {
        const size_t b = b0 + k;
        ivec sums[R][2];
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j) sums[j][0] = sums[j][1] = V::set1(0);
        #pragma GCC unroll 2
        for (size_t sub = 0; sub < S; ++sub) {
          const unsigned char* g = vg + sub * gb + kv_group_block(nb, b);
          #pragma GCC unroll 4
          for (size_t qd = 0; qd < 4; ++qd) {
            if (sub * 4 + qd == 0 || sub * 4 + qd == 3 || sub * 4 + qd == 6) ask();
            const unsigned char* v = g + qd * kv_value_quad_bytes;
            const ivec v0 = V::load(v), v1 = V::load(v + sizeof(ivec));
            #pragma GCC unroll 4
            for (size_t j = 0; j < R; ++j) {
              // Loaded (not shuffled out of the register just stored): see broadcast4_loaded.
              const ivec weights = broadcast4_loaded(u[k][j] + sub * TK + 4 * qd);
              sums[j][0] = V::dot_u8s8(sums[j][0], weights, v0);
              sums[j][1] = V::dot_u8s8(sums[j][1], weights, v1);
            }
          }
        }
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j)
          add_tile_sums<V>(acc + j * d + b * qk8_0, sums[j][0], sums[j][1], step[4 * k + j], rescale, shrink[j]);
      }
    }
    ask.last_lines(run_bytes);
  }
};

/// q8_decode_tile on 256-bit vectors (avx2_vnni, and avx2 by the sign
/// trick, as q8_key_scores and q8_value_tile do it there): the same case (a whole
/// tile of 32 keys starting a group, every row seeing all of it, up to four
/// rows a call), the same float operations in the same order as
/// attention_tiles' general path over decode_subtiles<V> = 4 sub-tiles of
/// eight keys, so the same bits. Sixteen registers hold neither a tile's
/// scores nor its weights for four rows (sixteen vectors each), so they go
/// through small arrays on the stack; what this path saves is the rest of
/// the general path's overhead: the sub-tile calls and their prefetch_pass
/// copies, the regrouping tests, the masks for keys a row does not see, the
/// prefetch cursor's countdown (fixed asks, as on 512-bit vectors), and the
/// wait of each block's products on its own maxima, division and rounding
/// (four blocks' weights are rounded before their products).
template <bool Vnni>
struct q8_decode_tile<vec256<Vnni>> {
  using V = vec256<Vnni>;
  using ivec = typename V::ivec;
  using fvec = typename V::fvec;
  static constexpr size_t S = decode_subtiles<V>, TK = V::lanes, TT = S * TK;
  static_assert(S == 4 && 2 * TK == kv_group_tokens, "four sub-tiles of eight keys: two halves of each of two groups");

  template <size_t R>
  [[gnu::noinline]] static void run(const q8_query_block* q, size_t d, const unsigned char* kg, const unsigned char* vg,
                                    float score_scale, float* m, float* l, float* acc, const char* k_ask,
                                    const char* v_ask) {
    static_assert(R >= 1 && R <= 4, "a group of at most four rows");
    using ops = attention_vec<V>;
    constexpr float minus_inf = -std::numeric_limits<float>::infinity();
    const size_t nb = d / qk8_0, gb = kv_group_bytes(d);
    const size_t run_bytes = 2 * gb;  // one stream's bytes of the next tile (its 32 rows)
    next_tile_asks ask(k_ask, v_ask);
    // QKᵀ, a group (two sub-tiles) at a time: per block, 2 R vpdpbusd
    // chains from minus each row's bias, then s = a d_q d_k + s
    // (q8_key_scores::group's products and sums).
    alignas(32) float sc[R][TT];
    for (size_t g = 0; g < 2; ++g) {
      const unsigned char* const group = kg + g * gb;
      fvec s[R][2];
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j) s[j][0] = s[j][1] = V::zero();
      for (size_t b = 0; b < nb; ++b) {
        ask();
        const unsigned char* const kb = group + kv_group_block(nb, b);
        ivec a[R][2];
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j) {
          a[j][0] = a[j][1] = V::set1(q[j * nb + b].bias);
        }
        #pragma GCC unroll 8
        for (size_t w = 0; w < 8; ++w) {
          ivec x0 = V::load(kb + w * kv_key_vector_bytes), x1 = V::load(kb + w * kv_key_vector_bytes + 32);
          if constexpr (!Vnni) {  // the sign trick on the unbiased keys, as q8_key_scores
            x0 = V::xor_(x0, V::splat8(0x80));
            x1 = V::xor_(x1, V::splat8(0x80));
          }
          #pragma GCC unroll 4
          for (size_t j = 0; j < R; ++j) {
            const ivec qw = V::broadcast4(q[j * nb + b].qs + 4 * w);
            if constexpr (Vnni) {
              a[j][0] = V::dot_u8s8(a[j][0], x0, qw);
              a[j][1] = V::dot_u8s8(a[j][1], x1, qw);
            } else {
              // The sign trick with the query as the magnitudes' side (as
              // the row-lanes prefill's): vpmaddubsw(|q|, k with q's signs),
              // |q| from the rounded rows, where |k| per key vector was one
              // more instruction on the two ports that take all four
              // (vpabsb, vpsignb, vpmaddubsw, vpmaddwd): 0.976 of the time
              // from L2 and 0.980 cold (docs/attention.md, thirty-sixth
              // section). The same products, so the same bits.
              static_assert(q8_key_scores<V>::magnitudes);
              const ivec mw = V::broadcast4(q[j * nb + b].mag + 4 * w);
              a[j][0] = V::dot_u8s8(a[j][0], mw, V::sign8(x0, qw));
              a[j][1] = V::dot_u8s8(a[j][1], mw, V::sign8(x1, qw));
            }
          }
        }
        const fvec dk0 = V::load_half(group + kv_group_scale(b, 0)), dk1 = V::load_half(group + kv_group_scale(b, TK));
        add_block_scores<V, R>(s, a, dk0, dk1, q, nb, b);
      }
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j) {
        V::store(sc[j] + 2 * g * TK, V::mul(s[j][0], V::set1f(score_scale)));
        V::store(sc[j] + (2 * g + 1) * TK, V::mul(s[j][1], V::set1f(score_scale)));
      }
    }
    // The online softmax, as attention_tiles' (every row sees every key;
    // past R, maxima of -inf against an old maximum of 0, sums of 0).
    fvec top[4];
    #pragma GCC unroll 4
    for (size_t j = 0; j < 4; ++j) {
      if (j >= R) {
        top[j] = V::set1f(minus_inf);
        continue;
      }
      top[j] = V::loadf(sc[j]);
      for (size_t sub = 1; sub < S; ++sub) top[j] = V::maxf(top[j], V::loadf(sc[j] + sub * TK));
    }
    alignas(16) float old_m[4] = {0.0f, 0.0f, 0.0f, 0.0f}, old_l[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (size_t j = 0; j < R; ++j) {
      old_m[j] = m[j];
      old_l[j] = l[j];
    }
    const __m128 prev = _mm_load_ps(old_m);
    const __m128 next = _mm_max_ps(prev, ops::max_each(top[0], top[1], top[2], top[3]));
    alignas(16) float new_m[4];
    _mm_store_ps(new_m, next);
    alignas(32) float p[R][TT];
    fvec row_sum[4];
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j) {
      ask.softmax_share(j, R, nb);
      row_sum[j] = V::zero();
      #pragma GCC unroll 4
      for (size_t sub = 0; sub < S; ++sub) {
        const fvec e = exp2_nonpositive<V, true>(V::sub(V::loadf(sc[j] + sub * TK), V::set1f(new_m[j])));
        V::store(p[j] + sub * TK, e);
        row_sum[j] = V::addf(row_sum[j], e);
      }
    }
    for (size_t j = R; j < 4; ++j) row_sum[j] = V::zero();
    const __m128 total = ops::sum_each(row_sum[0], row_sum[1], row_sum[2], row_sum[3]);
    alignas(32) float shrink[TK];
    const bool rescale = tile_shrink<V>(prev, next, shrink);
    alignas(16) float sums[4];
    _mm_store_ps(sums, _mm_add_ps(_mm_mul_ps(_mm_load_ps(old_l), _mm_load_ps(shrink)), total));
    for (size_t j = 0; j < R; ++j) {
      l[j] = sums[j];
      m[j] = new_m[j];
    }
    // P . V, four blocks at a time: their weights p d_v rounded to u8
    // against each row's largest in the block (q8_value_tile's rounding),
    // then their products, two column vectors a pass.
    alignas(32) unsigned char u[4][R][TT];  // [block of the four][row][key]
    alignas(16) float step[4][4];           // [block of the four][row]
    constexpr float levels = u8_weight_levels<V>;
    for (size_t b0 = 0; b0 < nb; b0 += 4) {
      const size_t nq = std::min<size_t>(4, nb - b0);
      for (size_t k = 0; k < nq; ++k) {
        const size_t b = b0 + k;
        ask();
        fvec dv[S], most[4];
        #pragma GCC unroll 4
        for (size_t sub = 0; sub < S; ++sub) dv[sub] = V::load_half(vg + sub / 2 * gb + kv_group_scale(b, sub % 2 * TK));
        #pragma GCC unroll 4
        for (size_t j = 0; j < 4; ++j) {
          most[j] = V::zero();  // past R: no weight
          if (j >= R) continue;
          #pragma GCC unroll 4
          for (size_t sub = 0; sub < S; ++sub) most[j] = V::maxf(most[j], V::mul(V::loadf(p[j] + sub * TK), dv[sub]));
        }
        alignas(16) float inverse[4];
        u8_rounding(ops::max_each(most[0], most[1], most[2], most[3]), levels, inverse, step[k]);
        ask();
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j) {
          const fvec scale = V::set1f(inverse[j]);
          const auto w = [&](size_t sub) { return V::mul(V::mul(V::loadf(p[j] + sub * TK), dv[sub]), scale); };
          ops::weights_to_u8x4(w(0), w(1), w(2), w(3), u[k][j]);
        }
      }
      for (size_t k = 0; k < nq; ++k) {
        const size_t b = b0 + k;
        #pragma GCC unroll 2
        for (size_t c = 0; c < qk8_0 / TK; c += 2) {
          ivec sums_c[R][2];
          #pragma GCC unroll 4
          for (size_t j = 0; j < R; ++j) sums_c[j][0] = sums_c[j][1] = V::set1(0);
          #pragma GCC unroll 4
          for (size_t sub = 0; sub < S; ++sub) {
            if ((c == 0 && (sub == 0 || sub == 2)) || (c == 2 && sub == 0)) ask();
            const unsigned char* const g = vg + sub / 2 * gb + kv_group_block(nb, b) + sub % 2 * 2 * kv_value_quad_bytes + c * 32;
            #pragma GCC unroll 2
            for (size_t qd = 0; qd < 2; ++qd) {
              const ivec v0 = V::load(g + qd * kv_value_quad_bytes), v1 = V::load(g + qd * kv_value_quad_bytes + 32);
              #pragma GCC unroll 4
              for (size_t j = 0; j < R; ++j) {
                const ivec weights = V::broadcast4(u[k][j] + sub * TK + 4 * qd);
                sums_c[j][0] = V::dot_u8s8(sums_c[j][0], weights, v0);
                sums_c[j][1] = V::dot_u8s8(sums_c[j][1], weights, v1);
              }
            }
          }
          #pragma GCC unroll 4
          for (size_t j = 0; j < R; ++j)
            add_tile_sums<V>(acc + j * d + b * qk8_0 + c * TK, sums_c[j][0], sums_c[j][1], step[k][j], rescale, shrink[j]);
        }
      }
    }
    ask.last_lines(run_bytes);
  }
};

// attention_q8_row_lanes' two integer products on avx2 without VNNI, as
// inline asm with the eight sums as register operands. Written as
// intrinsics, GCC kept two to three of the QKᵀ loop's eight key sums on the
// stack (a store and a reload per step), and in P . V summed each key quad's
// eight products as a tree before adding them to the sums, with most of
// them spilled; these blocks take 0.90-0.965 of the time of that version
// (Zen 3, q8_0/q8_0 prefill of 512 tokens on one thread; 0.83-0.89 on two;
// docs/attention.md, twelfth section).
// The instructions are those of vec256<false>::dot_s8s8 and dot_u8s8.
// Both end a step alike: the temporary's int16 pairs summed by vpmaddwd by
// ones, then added into the sum SUM.
#define LOWBIT_SUM_PAIRS(SUM)                              \
  "vpmaddwd %[ones], %[t], %[t]\n\t"                       \
  "vpaddd %[t], %[" SUM "], %[" SUM "]\n\t"

/// QKᵀ, one query dword for eight keys: |q| once (q: the row block's dword
/// w, a vector of rows), then per key i its four bytes broadcast from
/// kb + i * 4, given q's signs (vpsignb), vpmaddubsw(|q|, that), vpmaddwd by
/// ones and an add into a[i]. Exact for keys in [-127, 127] (the top of this
/// file).
#define LOWBIT_QK_STEP(I)                                  \
  "vpbroadcastd " #I "*4(%[kb]), %[t]\n\t"                \
  "vpsignb %[q], %[t], %[t]\n\t"                          \
  "vpmaddubsw %[t], %[aq], %[t]\n\t" LOWBIT_SUM_PAIRS("a" #I)
inline void row_lanes_qk_dword_avx2(__m256i (&a)[8], const unsigned char* kb, const int32_t* q_dword) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i q, aq, t;
  asm("vmovdqa (%[qw]), %[q]\n\t"
      "vpabsb %[q], %[aq]\n\t" LOWBIT_QK_STEP(0) LOWBIT_QK_STEP(1) LOWBIT_QK_STEP(2) LOWBIT_QK_STEP(3)
          LOWBIT_QK_STEP(4) LOWBIT_QK_STEP(5) LOWBIT_QK_STEP(6) LOWBIT_QK_STEP(7)
      : [a0] "+x"(a[0]), [a1] "+x"(a[1]), [a2] "+x"(a[2]), [a3] "+x"(a[3]), [a4] "+x"(a[4]), [a5] "+x"(a[5]),
        [a6] "+x"(a[6]), [a7] "+x"(a[7]), [q] "=&x"(q), [aq] "=&x"(aq), [t] "=&x"(t)
      : [kb] "r"(kb), [qw] "r"(q_dword), [ones] "x"(ones), "m"(*reinterpret_cast<const unsigned char(*)[32]>(kb)),
        "m"(*reinterpret_cast<const int32_t(*)[8]>(q_dword)));
}
#undef LOWBIT_QK_STEP

/// P . V, a group of four key quads for eight value columns: per quad q the
/// row block's u8 weights (a vector of rows at ub + q * 8), then per column
/// c its four value bytes broadcast from vb + q * kv_value_quad_bytes + c * 4,
/// vpmaddubsw(weights, values), vpmaddwd by ones and an add into a[c]. The
/// weights are 7-bit, so no pair of products saturates.
#define LOWBIT_PV_STEP(Q, C)                                \
  "vpbroadcastd " #Q "*128+" #C "*4(%[vb]), %[t]\n\t"     \
  "vpmaddubsw %[t], %[u], %[t]\n\t" LOWBIT_SUM_PAIRS("a" #C)
#define LOWBIT_PV_QUAD(Q)                                                                                    \
  "vmovdqa " #Q "*32(%[ub]), %[u]\n\t" LOWBIT_PV_STEP(Q, 0) LOWBIT_PV_STEP(Q, 1) LOWBIT_PV_STEP(Q, 2)      \
      LOWBIT_PV_STEP(Q, 3) LOWBIT_PV_STEP(Q, 4) LOWBIT_PV_STEP(Q, 5) LOWBIT_PV_STEP(Q, 6) LOWBIT_PV_STEP(Q, 7)
inline void row_lanes_pv_group_avx2(__m256i (&a)[8], const unsigned char* vb, const int32_t* ub) {
  static_assert(kv_value_quad_bytes == 128, "the asm's stride between a group's quads");
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i u, t;
  asm(LOWBIT_PV_QUAD(0) LOWBIT_PV_QUAD(1) LOWBIT_PV_QUAD(2) LOWBIT_PV_QUAD(3)
      : [a0] "+x"(a[0]), [a1] "+x"(a[1]), [a2] "+x"(a[2]), [a3] "+x"(a[3]), [a4] "+x"(a[4]), [a5] "+x"(a[5]),
        [a6] "+x"(a[6]), [a7] "+x"(a[7]), [u] "=&x"(u), [t] "=&x"(t)
      : [vb] "r"(vb), [ub] "r"(ub), [ones] "x"(ones),
        "m"(*reinterpret_cast<const unsigned char(*)[3 * kv_value_quad_bytes + 32]>(vb)),
        "m"(*reinterpret_cast<const int32_t(*)[4 * 8]>(ub)));
}
#undef LOWBIT_PV_QUAD
#undef LOWBIT_PV_STEP
#undef LOWBIT_SUM_PAIRS

/// attention_q8_row_lanes' integer products on vpdpbusd alone (no tile unit).
struct vnni_products {
  static constexpr bool tiles = false;
  static void begin() {}
  static void end() {}
  /// The softmax weights' 2^y: accurate to the u8 rounding's needs.
  template <class V>
  static typename V::fvec weight(typename V::fvec y) {
    return exp2_nonpositive<V, true>(y);
  }
};

/// Integer prefill for q8_0 keys and values (more than attention_decode_rows
/// rows per KV head), on the VNNI tiers and, by the sign trick, on avx2: the
/// query rows go V::lanes at a time (sixteen on avx512_vnni, eight on
/// avx2_vnni and avx2) in the lanes of one
/// vector (a row block), as in attention_row_lanes, so that nothing is
/// reduced across lanes and every step is a stream of independent vectors:
/// - QKᵀ: per key and 32-value block, eight vpdpbusd of the key's four bytes
///   (broadcast from its group, the unsigned operand) against the row
///   block's transposed query bytes, then the block's integer sums times d_q
///   d_k into the key's score vector (lane r = row r): the products and sums
///   of q8_key_scores, in its order, but for the score scale (scale log2 e),
///   which the row block's d_q carry (rounded to f16 first, as the
///   activation quantizer stores them), so that the scores come out in log2
///   units with no multiply of their own.
/// - the online softmax lane by lane, in log2 units as attention_tiles.
/// - P . V: per 32-value block the weights w = p d_v, rounded to u8 against
///   each row's largest in the tile as q8_value_tile rounds them (but with
///   w * 255 / largest rounded once, in an FMA: attention_vec::u8_quad), four
///   keys' bytes of a row packed into its lane; on 256-bit vectors one
///   vpdpbusd of that vector with a column's four value bytes (broadcast
///   from the group) adds four keys to a row block's rows of the column, the
///   sums kept transposed (a vector of rows per column) for the whole call;
///   on 512-bit ones one vpdpbusd of a row's four codes (broadcast) with
///   sixteen columns' four value bytes adds four keys to the row's sixteen
///   columns, the sums kept row by row. Both are written to acc (or the
///   output rows) at the call's end.
/// Results match attention_tiles' but for the order of the softmax sums.
///
/// Without VNNI (vec256<false>): QKᵀ by the sign trick, |q| against each
/// key with q's signs (the keys unbiased once per tile), and the weights
/// rounded to 7 bits (127 / largest) for vpmaddubsw; four passes of 8
/// columns in P . V, both products as the inline asm blocks above (their
/// sums in registers). Against the tiles it replaced there (attention_tiles
/// with prefill's tiles): 0.78-0.93 of the time (Zen 3, 512 and 2048
/// tokens, one thread and two; fastest and tenth percentile of 16-24
/// repetitions, builds alternating).
///
/// P supplies the two products. vnni_products (above): the vpdpbusd loops
/// above. A tile unit's policy (P::tiles: amx_products, kernels/x86/amx)
/// instead computes both in f32 over bf16 operands: the query rows are
/// rounded to bf16 (not to q8_0) and kept transposed as pairs; each tile of
/// keys is staged once for all row blocks, its keys q d_k row by row (kt)
/// and its values q d_v column by column (vt), in bf16. Its QKᵀ writes the
/// f32 scores laid out as the vpdpbusd loop leaves them (a vector of rows
/// per key), so that the softmax is the same code; its P . V takes the
/// weights as bf16 pairs (no rounding to u8 per block) and adds into the row
/// block's f32 sums itself.
template <class V, class P>
void attention_q8_row_lanes(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                            const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l, float* acc) {
  static_assert(V::vnni || (V::lanes == 8 && !P::tiles), "without VNNI, the sign trick of vec256<false>");
  static_assert(!P::tiles || V::lanes == 16, "a tile unit's row blocks are sixteen rows of 512-bit vectors");
  using ops = attention_vec<V>;
  using ivec = typename V::ivec;
  using fvec = typename V::fvec;
  constexpr size_t R = V::lanes, G = kv_group_tokens, TT = attention_prefill_subtiles * G;
  // Keys per QKᵀ pass, their integer sums in registers: sixteen of 32
  // registers on 512-bit vectors, eight of 16 on 256-bit ones. (P . V's
  // passes over value columns are sized below.)
  constexpr size_t KC = R;
  // P . V's sums row by row (bs.ot [R][d]) on 512-bit vectors with VNNI;
  // else a vector of rows per column (bs.ot [d][R]).
  constexpr bool rows_major = V::vnni && R == 16 && !P::tiles;
  constexpr float minus_inf = -std::numeric_limits<float>::infinity();
  const size_t d = kv.head_dim, nb = d / qk8_0, gb = kv_group_bytes(d);
  const auto [last, horizon] = keys_seen(limits, rows, t0, t1);
  if (last == t0) return;
  attention_buffers& buffers = attention_scratch();
  // Per row block, vectors of R lanes: the query's dwords, [nb][8] (q8_0
  // quads) or with a tile unit [nb][16] (bf16 pairs), its block scales and
  // biases [nb] (int32 where integer, written and read only with VNNI; none
  // with a tile unit), m, l, and the P . V sums [d] (rows_major: R rows of
  // d instead, the same room). Then, for the tile in hand: scores (then
  // weights) [TT], two blocks' p d_v [2][TT] (the block in hand's and the
  // next's), the packed u8 weights [TT / 4] (or bf16 pairs [TT / 2]), the
  // keys' and values' block scales in f32 [nb][TT] each, and room to
  // regroup runs that start inside a group; with a tile unit, the tile's
  // keys row by row [TT][d] and values column by column [d][TT], both bf16.
  const size_t query_dwords = (P::tiles ? 16 : 8) * nb, query_scales = P::tiles ? 0 : 2 * nb;
  const size_t blocks = (rows + R - 1) / R, per_block = (query_dwords + query_scales + 2 + d) * R;
  // The weights' rows: a quad of u8 weights per key quad, or a pair of
  // bf16 weights per key pair (P::tiles).
  constexpr size_t weight_rows = P::tiles ? TT / 2 : TT / 4;
  const size_t staged = P::tiles ? 2 * 2 * TT * d : 0;  // kt and vt, bf16
  unsigned char* base = vector_aligned<fvec>(
      buffers.value_tile,
      (blocks * per_block + (3 * TT + weight_rows + 2 * nb * TT / R) * R) * sizeof(float) + staged + 2 * 4 * gb);
  float* const state = reinterpret_cast<float*>(base);
  float* const sc = state + blocks * per_block;
  float* const wb = sc + TT * R;
  int32_t* const pb = reinterpret_cast<int32_t*>(wb + 2 * TT * R);
  float* const dk = reinterpret_cast<float*>(pb + weight_rows * R);
  float* const dv = dk + nb * TT;
  unsigned char* const kt = reinterpret_cast<unsigned char*>(dv + nb * TT);
  unsigned char* const vt = kt + (P::tiles ? 2 * TT * d : 0);
  unsigned char* const kscratch = kt + staged;
  unsigned char* const vscratch = kscratch + 4 * gb;
  struct block_state {
    int32_t* qt;
    float* qs;
    int32_t* bias;
    float *m, *l, *ot;
  };
  const auto row_block = [&](size_t k) {
    float* st = state + k * per_block;
    float* const scales = st + query_dwords * R;  // none with a tile unit: qs and bias null
    float* const ml = scales + query_scales * R;
    return block_state{reinterpret_cast<int32_t*>(st), P::tiles ? nullptr : scales,
                       P::tiles ? nullptr : reinterpret_cast<int32_t*>(scales + nb * R), ml, ml + R, ml + 2 * R};
  };
  const float score_scale = scale * log2_e;
  constexpr float rescale_slack = 8.0f;  // log2 units: weights up to 256
  // A row block's query rows, rounded to q8_0 (in the room of its P . V
  // sums, which the first tile's P . V then writes, with a tile unit as
  // well) and transposed into the block's lanes, each row exactly as the
  // activation quantizer rounds it: d = amax / 127, q = x / d rounded half
  // away from zero, the scale d kept as f16; or, with a tile unit, to bf16
  // (to nearest even) as pairs of columns. Each block's rows are rounded
  // when the first tile comes to it (every row that sees a key sees that
  // tile's first), the next block's rows prefetched meanwhile: read all at
  // once, a 512-token prefill's rows (8 MiB) waited on DRAM.
  for (size_t k = 0; k < blocks; ++k) {
    const block_state bs = row_block(k);
    std::fill(bs.m, bs.m + R, minus_inf);
    std::fill(bs.l, bs.l + R, 0.0f);
  }
  const auto round_rows = [&](size_t k, const block_state& bs) {
    const size_t real_rows = std::min(R, rows - k * R);
    if constexpr (P::tiles) {
      // Each row to bf16 (to nearest even) in the P . V sums' room, where a
      // pair of columns is a dword, (x[2p], x[2p + 1]); padding rows zero.
      // Then 16 x 16 dword transposes: lane r of pair p = row r's pair p.
      uint32_t* const half = reinterpret_cast<uint32_t*>(bs.ot);
      const fvec by = V::set1f(score_scale);
      for (size_t r = 0; r < R; ++r)
        for (size_t c = 0; c < d; c += 2 * R) {
          ivec pairs = V::set1(0);
          if (r < real_rows) {
            // Times the score scale (log2 units), so that the tile unit's
            // scores need no product: the same relative rounding.
            const float* x = q_rows[k * R + r] + c;
            pairs = reinterpret_cast<ivec>(_mm512_cvtne2ps_pbh(V::mul(V::loadf(x + R), by), V::mul(V::loadf(x), by)));
          }
          V::storei(reinterpret_cast<int32_t*>(half + r * d / 2 + c / 2), pairs);
        }
      for (size_t p0 = 0; p0 < d / 2; p0 += R) {
        const float* cols[R];
        for (size_t r = 0; r < R; ++r) cols[r] = reinterpret_cast<const float*>(half + r * d / 2 + p0);
        ops::transpose(cols, reinterpret_cast<float*>(bs.qt + p0 * R));
      }
      return;  // the sums' room keeps the rows' pairs: the first tile's P . V writes over them
    }
    const float* src[R];  // padding lanes repeat the last row, then are zeroed
    for (size_t r = 0; r < R; ++r) src[r] = q_rows[std::min(k * R + r, rows - 1)];
    using lanes = typename ops::q8_lanes;
    // The rows are rounded where they lie and transposed as bytes, a
    // quarter of the data, not as floats first (a 16 x 16 float transpose
    // is 64 shuffles on the one port that takes 512-bit shuffles): the same
    // bytes, scales and biases in 0.984-0.994 of the time of a 512-token
    // prefill on the three integer tiers (docs/attention.md, thirty-fourth
    // section). Per block: each row's largest |x| (its VB vectors, then
    // max_of_each across the rows: maxima, exact in any order), d and 1 / d
    // lane by lane; then each row's values times its 1 / d, rounded, and
    // packed to bytes PB blocks at a time (pack_lanes) in the P . V sums'
    // room; then an R x R dword transpose per pack puts each dword of four
    // columns where QKᵀ reads it. Padding rows pack zeros.
    constexpr size_t VB = qk8_0 / R, PB = 4 / VB;  // vectors a block of a row; blocks a pack
    alignas(64) float inverse[8][R];                // 1 / d per block (eight a pass) and row
    int32_t* const packed = reinterpret_cast<int32_t*>(bs.ot);
    const size_t row_dwords = (nb + PB - 1) / PB * R;  // whole packs: R dwords each
    for (size_t b0 = 0; b0 < nb; b0 += 8) {
      const size_t b1 = std::min(nb, b0 + 8);
      for (size_t b = b0; b < b1; ++b) {
        fvec most[R];
        #pragma GCC unroll 16
        for (size_t r = 0; r < R; ++r) {
          fvec m = lanes::abs(V::loadf(src[r] + b * qk8_0));
          #pragma GCC unroll 4
          for (size_t j = 1; j < VB; ++j) m = V::maxf(m, lanes::abs(V::loadf(src[r] + b * qk8_0 + j * R)));
          most[r] = m;
        }
        const fvec dd = V::divf(ops::max_of_each(most), V::set1f(127.0f));
        V::store(inverse[b - b0], ops::quotient_if_nonzero(V::set1f(1.0f), dd));
        V::store(bs.qs + b * R, V::keep_first(V::mul(ops::f16_rounded(dd), V::set1f(score_scale)), real_rows));
      }
      for (size_t r = 0; r < real_rows; ++r)
        for (size_t b = b0; b < b1; b += PB) {
          ivec v[4] = {V::set1(0), V::set1(0), V::set1(0), V::set1(0)};
          #pragma GCC unroll 4
          for (size_t j = 0; j < 4; ++j)
            if (b + j / VB < b1)
              v[j] = lanes::round_away(
                  V::mul(V::loadf(src[r] + b * qk8_0 + j * R), V::set1f(inverse[b + j / VB - b0][r])));
          V::storei(packed + r * row_dwords + b / PB * R, ops::pack_lanes(v[0], v[1], v[2], v[3]));
        }
    }
    for (size_t r = real_rows; r < R; ++r) std::fill_n(packed + r * row_dwords, row_dwords, 0);
    // Dword p of a pack holds columns 4 (p / 4) .. + 3 of its vector j = p %
    // 4 (pack_lanes), the vector j % VB of block j / VB: that block's dword
    // (j % VB) R / 4 + p / 4.
    alignas(64) float chunk[R * R];
    for (size_t b = 0; b < nb; b += PB) {
      const float* cols[R];
      for (size_t r = 0; r < R; ++r) cols[r] = reinterpret_cast<const float*>(packed + r * row_dwords + b / PB * R);
      ops::transpose(cols, chunk);
      #pragma GCC unroll 16
      for (size_t p = 0; p < R; ++p) {
        const size_t block = b + p % 4 / VB, w = p % 4 % VB * (R / 4) + p / 4;
        if (block < nb) V::store(reinterpret_cast<float*>(bs.qt + (block * 8 + w) * R), V::loadf(chunk + p * R));
      }
    }
    // With VNNI, each block's bias: -128 times the sum of its bytes (vpdpbusd
    // with ones). The sign trick reads the keys unbiased: no bias kept.
    if constexpr (V::vnni) {
      const ivec ones = V::splat8(1);
      for (size_t b = 0; b < nb; ++b) {
        ivec sum = V::set1(0);
        #pragma GCC unroll 8
        for (size_t w = 0; w < 8; ++w) sum = V::dot_u8s8(sum, ones, V::load(bs.qt + (b * 8 + w) * R));
        V::storei(bs.bias + b * R, V::mullo(sum, V::set1(-128)));
      }
    }
    // No zeros for the sums: the first tile's P . V writes every one of
    // them (below) where later tiles add.
  };
  // The next row block's query rows, a few lines per QKᵀ step of the first tile.
  const size_t q_lines = d * sizeof(float) / 64;
  size_t q_next = 0, q_end = 0, q_line = 0, q_per_step = 0;
  const auto query_step = [&] {
    for (size_t i = 0; i < q_per_step && q_next < q_end; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(q_rows[q_next] + q_line * 64 / sizeof(float)), _MM_HINT_T0);
      if (++q_line == q_lines) {
        q_line = 0;
        ++q_next;
      }
    }
  };
  const size_t pf_ahead = prefetch_ahead(kv, TT);
  prefetch_kv(kv, kv_head, t0, std::min(last, t0 + pf_ahead) - t0);
  prefetch_cursor pf;
  // The output rows' lines a few at a time, once per block of P . V of a row block and tile.
  out_row_prefetch out_pf(V::vnni ? kv.out_rows : nullptr, rows, d, ((last - t0 + TT - 1) / TT) * blocks * nb);
  alignas(64) float vis[R];
  const unsigned char* kg[TT / G];
  const unsigned char* vg[TT / G];
  P::begin();
  for (size_t t = t0; t < last;) {
    const kv_position at = locate(kv, kv_head, t);
    const size_t n = std::min({TT, at.in_block, last - t});
    const size_t slot = t % kv.block_tokens;
    // One step per KC keys, block and dword of the first row block's QKᵀ.
    pf.aim(kv, kv_head, t + pf_ahead, TT, horizon, TT / KC * nb * 8);
    for (size_t g = 0; g * G < n; ++g) {
      const size_t count = std::min(G, n - g * G);
      kg[g] = q8_run<V>(kv_side::key, at.k + g * G * kv.k_row_bytes, kv.k_row_bytes, slot + g * G, count, d,
                        kscratch + g * gb).group;
      vg[g] = q8_run<V>(kv_side::value, at.v + g * G * kv.v_row_bytes, kv.v_row_bytes, slot + g * G, count, d,
                        vscratch + g * gb).group;
      for (size_t b = 0; b < nb; ++b)
        for (size_t i = 0; i < G; i += R) {
          V::store(dk + b * TT + g * G + i, V::load_half(kg[g] + kv_group_scale(b, i)));
          V::store(dv + b * TT + g * G + i, V::load_half(vg[g] + kv_group_scale(b, i)));
        }
    }
    if constexpr (P::tiles) P::stage(kg, vg, (n + G - 1) / G, n, nb, d, dk, dv, kt, vt);
    if constexpr (!V::vnni) {
      // The sign trick reads the keys unbiased (x ^ 0x80): once per tile
      // here, into the room for regrouped runs (in place where a run was
      // regrouped there), not once per row block and key. Only the quants:
      // the copy's scales are stale, and the keys' were read into dk above.
      for (size_t g = 0; g * G < n; ++g) {
        unsigned char* const out = kscratch + g * gb;
        const size_t from = kv_group_block(nb, 0), to = kv_group_block(nb, nb);
        for (size_t o = from; o < to; o += sizeof(ivec))
          V::storei(reinterpret_cast<int32_t*>(out + o), V::xor_(V::load(kg[g] + o), V::splat8(0x80)));
        kg[g] = out;
      }
    }
    for (size_t k = 0; k < blocks; ++k) {
      // Keys of the tile each row sees; nr, the most any row of the block sees.
      size_t nr = 0, fewest = n;
      for (size_t r = 0; r < R; ++r) {
        const size_t row = k * R + r;
        const size_t v = row < rows && limits[row] > t ? std::min(n, limits[row] - t) : 0;
        vis[r] = static_cast<float>(v);
        nr = std::max(nr, v);
        if (row < rows) fewest = std::min(fewest, v);
      }
      if (nr == 0) {
        // A block blind to the first tile sees no key at all (every row
        // that sees one sees t0): its sums are zeros, never written by P . V.
        if (t == t0) {
          float* const ot = row_block(k).ot;
          std::fill(ot, ot + d * R, 0.0f);
        }
        continue;
      }
      const block_state bs = row_block(k);
      if (t == t0) {
        round_rows(k, bs);
        q_next = std::min(rows, (k + 1) * R);
        q_end = std::min(rows, (k + 2) * R);
        q_line = 0;
        const size_t steps = (nr + KC - 1) / KC * nb;
        q_per_step = ((q_end - q_next) * q_lines + steps - 1) / steps;
      }
      // QKᵀ for keys [0, nr) (rounded up to KC; scores past nr are masked).
      if constexpr (P::tiles) {
        // The tile unit's f32 scores of KC keys at a time, straight into sc.
        static_assert(KC == G, "one tile product per group of keys");
        for (size_t i0 = 0; i0 < nr; i0 += KC) {
          P::scores(kt + i0 * d * 2, d * 2, bs.qt, nb, sc + i0 * R);
          for (size_t b = 0; b < nb; ++b) {
            query_step();
            for (size_t w = 0; w < 8; ++w) pf.step();
          }
        }
      } else {
        // The KC keys' integer sums stay in registers for a block; their f32
        // scores accumulate in sc across the blocks.
        for (size_t i0 = 0; i0 < nr; i0 += KC) {
          const unsigned char* group = kg[i0 / G] + i0 % G * 4;
          float* const si = sc + i0 * R;
          for (size_t b = 0; b < nb; ++b) {
            const fvec qs = V::loadf(bs.qs + b * R);
            ivec bias = V::set1(0);
            if constexpr (V::vnni) bias = V::load(bs.bias + b * R);
            const unsigned char* kb = group + kv_group_block(nb, b);
            const float* dkb = dk + b * TT + i0;
            query_step();
            // The KC keys' chains side by side, so that consecutive vpdpbusd
            // are independent (more chains than vpdpbusd's latency times its
            // issue rate); the first starts at minus the bias (at zero without
            // VNNI, whose sign trick reads the keys unbiased).
            ivec a[KC];
            #pragma GCC unroll 16
            for (size_t i = 0; i < KC; ++i) a[i] = bias;
            if constexpr (!V::vnni) {
              // The sign trick with the query as the magnitudes' side:
              // vpmaddubsw(|q|, k with q's signs), |q| once for the KC keys
              // (the asm above; exact for keys in [-127, 127]).
              static_assert(KC == 8, "the asm's eight keys");
              #pragma GCC unroll 8
              for (size_t w = 0; w < 8; ++w) {
                pf.step();
                row_lanes_qk_dword_avx2(a, kb + w * kv_key_vector_bytes, bs.qt + (b * 8 + w) * R);
              }
            } else {
              #pragma GCC unroll 8
              for (size_t w = 0; w < 8; ++w) {
                pf.step();
                const ivec qv = V::load(bs.qt + (b * 8 + w) * R);
                #pragma GCC unroll 16
                for (size_t i = 0; i < KC; ++i)
                  a[i] = V::dot_u8s8(a[i], V::broadcast4(kb + w * kv_key_vector_bytes + i * 4), qv);
              }
            }
            // s = a d_q d_k + s, from s = 0 (d_q times the score scale).
            #pragma GCC unroll 16
            for (size_t i = 0; i < KC; ++i) {
              const fvec s = b == 0 ? V::zero() : V::loadf(si + i * R);
              V::store(si + i * R, V::fmadd(V::to_float(a[i]), V::mul(qs, V::set1f(dkb[i])), s));
            }
          }
        }
      }
      // Online softmax, lane by lane, over whole key quads (P . V's unit);
      // keys a row does not see, and those past nr, weigh 0. Four maxima and
      // four sums a pass, so no pass is one long chain of dependent adds.
      const size_t quads = (nr + 3) / 4, nk = 4 * quads;
      const bool masked = fewest < nk;  // padding lanes need no mask: they score zeros and are never read
      const fvec visible = V::loadf(vis);
      const fvec old_m = V::loadf(bs.m);
      fvec top[4];
      #pragma GCC unroll 4
      for (size_t j = 0; j < 4; ++j) top[j] = V::set1f(minus_inf);
      for (size_t i = 0; i < nk; i += 4) {
        #pragma GCC unroll 4
        for (size_t j = 0; j < 4; ++j) {
          fvec x = V::loadf(sc + (i + j) * R);
          if (masked) x = ops::select_gt(visible, V::set1f(static_cast<float>(i + j)), x, V::set1f(minus_inf));
          // Not stored back: the weights' pass masks the same lanes. (The
          // tile unit's scores come scaled: round_rows scales the query.)
          top[j] = V::maxf(top[j], x);
        }
      }
      // The reference the weights are taken against: the running maximum,
      // moved only when a score passes it by more than rescale_slack (so a
      // weight is at most 2^rescale_slack). A maximum that creeps up tile
      // after tile then costs no rescaling of the sums; the weights' u8 or
      // bf16 rounding is relative to their own size, and m, l and the sums
      // stay consistent with one another whatever the reference.
      const fvec top_m = V::maxf(V::maxf(top[0], top[1]), V::maxf(top[2], top[3]));
      const fvec new_m = ops::select_gt(top_m, V::addf(old_m, V::set1f(rescale_slack)), top_m, old_m);
      // A row that has seen no key yet keeps max -inf; its weights and factor
      // are taken against 0 instead (0 weights, a factor on zeros).
      const fvec ref = ops::select_gt(new_m, V::set1f(minus_inf), new_m, V::zero());
      fvec sum[4];
      #pragma GCC unroll 4
      for (size_t j = 0; j < 4; ++j) sum[j] = V::zero();
      for (size_t i = 0; i < nk; i += 4) {
        #pragma GCC unroll 4
        for (size_t j = 0; j < 4; ++j) {
          fvec p = P::template weight<V>(V::sub(V::loadf(sc + (i + j) * R), ref));
          if (masked) p = ops::select_gt(visible, V::set1f(static_cast<float>(i + j)), p, V::zero());
          sum[j] = V::addf(sum[j], p);
          V::store(sc + (i + j) * R, p);
        }
      }
      const fvec shrink = exp2_nonpositive<V, true>(V::sub(old_m, ref));
      V::store(bs.l, V::addf(V::mul(V::loadf(bs.l), shrink), V::addf(V::addf(sum[0], sum[1]), V::addf(sum[2], sum[3]))));
      V::store(bs.m, new_m);
      const bool rescale = ops::any_lt(old_m, new_m);
      alignas(64) float shrink_of[R];  // rows_major: each row's shrink, where it rescales
      if constexpr (rows_major)
        if (rescale) V::store(shrink_of, shrink);
      if constexpr (P::tiles) {
        // P . V on the tile unit in bf16: each key pair's weights as one
        // row of pairs (lane r: row r's two weights, through pair_order),
        // zero past the keys up to the 32-key halves the products span; the
        // sums go straight into the row block's (rescaled) f32 accumulators.
        const size_t halves = (nk + 31) / 32;
        for (size_t kp = 0; kp < nk / 2; ++kp) {
          // Two vectors of sixteen f32 converted together to bf16 -> pairs,
          // lane r = (the first's r, the second's r): word 2r from word r,
          // word 2r + 1 from word 16 + r.
          const ivec pair_order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                                   22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
          const __m512bh both = _mm512_cvtne2ps_pbh(V::loadf(sc + (2 * kp + 1) * R), V::loadf(sc + 2 * kp * R));
          V::storei(pb + kp * R, _mm512_permutexvar_epi16(pair_order, reinterpret_cast<ivec>(both)));
        }
        std::fill(pb + nk / 2 * R, pb + halves * 16 * R, 0);
        // The block's first tile starts its sums (values() writes them, not
        // reads): nothing there to rescale.
        if (rescale && t != t0)
          for (size_t c = 0; c < d; ++c) V::store(bs.ot + c * R, V::mul(V::loadf(bs.ot + c * R), shrink));
        P::values(vt, pb, bs.ot, nb, halves, t == t0);
        for (size_t b = 0; b < nb; ++b) out_pf.step();  // the pace the u8 path keeps, a step a block
        continue;
      }
      // P . V reads whole groups of four quads: the quads past the weights'
      // weigh 0.
      const size_t quad_groups = (quads + 3) / 4;
      std::fill(pb + quads * R, pb + 4 * quad_groups * R, 0);
      // u = round(w * levels / max w) per row (levels 255, or 127 without
      // VNNI, where vpmaddubsw's pairs must not saturate); a row with no
      // weight keeps u = 0. Block b's weights w = p d_v, their maxima and
      // its division are taken before block b - 1's rounding and products
      // (into the other half of wb), so that the division's latency hides
      // behind them.
      fvec inverses[2], steps[2];
      const auto weigh = [&](size_t b) __attribute__((always_inline)) {
        float* const wo = wb + b % 2 * TT * R;
        fvec most4[4];
        #pragma GCC unroll 4
        for (size_t j = 0; j < 4; ++j) most4[j] = V::zero();
        for (size_t i = 0; i < nk; i += 4) {
          #pragma GCC unroll 4
          for (size_t j = 0; j < 4; ++j) {
            const fvec w = V::mul(V::loadf(sc + (i + j) * R), V::set1f(dv[b * TT + i + j]));
            V::store(wo + (i + j) * R, w);
            most4[j] = V::maxf(most4[j], w);
          }
        }
        const fvec most = V::maxf(V::maxf(most4[0], most4[1]), V::maxf(most4[2], most4[3]));
        constexpr float levels = u8_weight_levels<V>;
        inverses[b % 2] = ops::quotient_if_positive(V::set1f(levels), most);
        steps[b % 2] = V::mul(most, V::set1f(1.0f / levels));
      };
      weigh(0);
      for (size_t b = 0; b < nb; ++b) {
        out_pf.step();
        if (b + 1 < nb) weigh(b + 1);
        const fvec inverse = inverses[b % 2], step = steps[b % 2];
        for (size_t q = 0; q < quads; ++q) {
          const float* wq = wb + b % 2 * TT * R + 4 * q * R;
          V::storei(pb + q * R, ops::u8_quad(V::loadf(wq), V::loadf(wq + R), V::loadf(wq + 2 * R), V::loadf(wq + 3 * R), inverse));
        }
        // Columns [h, h + Cn) of the block, their Cn sums in registers.
        const auto columns = [&]<size_t Cn>(size_t h) {
          ivec a[Cn];
          #pragma GCC unroll 16
          for (size_t c = 0; c < Cn; ++c) a[c] = V::set1(0);
          // A group's four quads with constant offsets from its base: no
          // address arithmetic per quad beside the vpdpbusd.
          for (size_t g = 0; g < quad_groups; ++g) {
            const unsigned char* vb = vg[g] + kv_group_block(nb, b) + h * 4;
            // Opaque to the optimiser: otherwise GCC hoists vb's runtime
            // offset plus each of the 64 constants out of the loop as 64
            // registers (spilled), one reload per vpdpbusd.
            asm("" : "+r"(vb));
            const int32_t* ub = pb + 4 * g * R;
            if constexpr (!V::vnni) {
              static_assert(Cn == 8, "the asm's eight columns");
              row_lanes_pv_group_avx2(a, vb, ub);
            } else {
              #pragma GCC unroll 4
              for (size_t q = 0; q < 4; ++q) {
                const ivec u = V::load(ub + q * R);
                #pragma GCC unroll 16
                for (size_t c = 0; c < Cn; ++c) a[c] = V::dot_u8s8_at(a[c], u, vb + q * kv_value_quad_bytes + c * 4);
              }
            }
          }
          float* ot = bs.ot + (b * qk8_0 + h) * R;
          if (t == t0) {
            // The block's first tile: its sums start here (the zeros the
            // later tiles' form would load and rescale, 0 times a finite
            // shrink, are the zeros given).
            #pragma GCC unroll 16
            for (size_t c = 0; c < Cn; ++c) V::store(ot + c * R, V::fmadd(V::to_float(a[c]), step, V::zero()));
          } else {
            #pragma GCC unroll 16
            for (size_t c = 0; c < Cn; ++c) {
              fvec o = V::loadf(ot + c * R);
              if (rescale) o = V::mul(o, shrink);
              V::store(ot + c * R, V::fmadd(V::to_float(a[c]), step, o));
            }
          }
        };
        if constexpr (rows_major) {
          // Rows in registers, columns in lanes: eight rows a pass, each
          // row's weight dword (four keys' codes) broadcast from pb into a
          // register and multiplied into the block's two value vectors (its
          // 32 columns, four keys each, loaded once for the eight rows), so
          // that every vpdpbusd takes registers, where the column passes'
          // took each value dword as an embedded broadcast (about 0.88 of
          // the register rate: docs/attention.md, 2026-12-03, third); the
          // sums go to the row's own columns of bs.ot, which the finish
          // then stores without transposes. 0.973 of a 512-token prefill's
          // time, 0.990 at 2048 tokens (thirty-sixth section).
          alignas(64) float step_of[R];
          V::store(step_of, step);
          for (size_t h = 0; h < R; h += 8) {
            ivec a[8][2];
            #pragma GCC unroll 8
            for (size_t r = 0; r < 8; ++r) a[r][0] = a[r][1] = V::set1(0);
            for (size_t g = 0; g < quad_groups; ++g) {
              const unsigned char* vb = vg[g] + kv_group_block(nb, b);
              asm("" : "+r"(vb));  // opaque, as in the column passes: no hoisted offsets per quad
              const int32_t* ub = pb + 4 * g * R + h;
              #pragma GCC unroll 4
              for (size_t q = 0; q < 4; ++q) {
                const ivec v0 = V::load(vb + q * kv_value_quad_bytes), v1 = V::load(vb + q * kv_value_quad_bytes + 64);
                #pragma GCC unroll 8
                for (size_t r = 0; r < 8; ++r) {
                  const ivec w = V::broadcast4(ub + q * R + r);
                  a[r][0] = V::dot_u8s8(a[r][0], w, v0);
                  a[r][1] = V::dot_u8s8(a[r][1], w, v1);
                }
              }
            }
            #pragma GCC unroll 8
            for (size_t r = 0; r < 8; ++r) {
              float* const o = bs.ot + (h + r) * d + b * qk8_0;
              const fvec st = V::set1f(step_of[h + r]);
              #pragma GCC unroll 2
              for (size_t c = 0; c < 2; ++c) {
                fvec x = V::zero();
                if (t != t0) {
                  x = V::loadf(o + c * R);
                  if (rescale) x = V::mul(x, V::set1f(shrink_of[h + r]));
                }
                V::store(o + c * R, V::fmadd(V::to_float(a[r][c]), st, x));
              }
            }
          }
        } else if constexpr (!V::vnni) {
          // On 256-bit vectors the column passes (16 registers: the sums,
          // the weights and a broadcast). Without VNNI each product takes a
          // temporary and the ones of vpmaddwd beside the sums: four passes
          // of 8.
          for (size_t h = 0; h < qk8_0; h += 8) columns.template operator()<8>(h);
        } else {
          // With VNNI passes of 12, 12 and 8 columns, where four passes of
          // 8 had fewer independent vpdpbusd chains and reloaded the weights
          // twice as often (0.975-0.99 of their time).
          columns.template operator()<12>(0);
          columns.template operator()<12>(12);
          columns.template operator()<8>(24);
        }
      }
    }
    pf.rest();
    t += n;
  }
  P::end();
  // Each row's sums into acc, m and l (natural units). The state starts
  // empty (attention_fn's contract), so a row that saw keys has its sums
  // written, not merged; a row that saw none is left as it was. Or, when the
  // caller lets the kernel finish the rows (attn_kv::finished), each row's
  // result, acc / l, straight into its output row: the division and product
  // the caller would do (1 / l, then times it), so the same bits, without
  // acc's round trip through memory. Sums kept row by row (rows_major) go
  // to their rows as they are; sums kept a vector of rows per column
  // go to the rows by transpose_stores: the 4 x 4 transposes inside the
  // 128-bit lanes, then each lane stored where its row's four columns go,
  // half the shuffles of a whole transpose (store-only uops instead):
  // 0.980-0.990 of a 512-token prefill's time on avx512_vnni, avx2_vnni and
  // avx2, amx unchanged (docs/attention.md, thirty-fifth section). Each
  // row's 1 / l multiplies its lane before the transpose: the same products.
  const bool finish = kv.finished && kv.out_rows;
  for (size_t k = 0; k < blocks; ++k) {
    const block_state bs = row_block(k);
    const size_t real = std::min(R, rows - k * R);
    fvec by = V::zero();  // each row's 1 / l, where the kernel finishes the rows
    if (finish) {
      by = ops::quotient_if_positive(V::set1f(1.0f), V::loadf(bs.l));
    } else {
      for (size_t r = 0; r < real; ++r)
        if (bs.l[r] > 0.0f) {
          m[k * R + r] = bs.m[r] * ln_2;
          l[k * R + r] = bs.l[r];
        }
    }
    float* out[R];
    for (size_t r = 0; r < R; ++r)
      out[r] = r >= real ? nullptr
               : finish  ? kv.out_rows[k * R + r]
               : bs.l[r] > 0.0f ? acc + (k * R + r) * d
                                : nullptr;
    if constexpr (rows_major) {
      alignas(64) float by_of[R];
      V::store(by_of, by);
      for (size_t r = 0; r < R; ++r)
        if (out[r])
          for (size_t c = 0; c < d; c += R) {
            fvec x = V::loadf(bs.ot + r * d + c);
            if (finish) x = V::mul(x, V::set1f(by_of[r]));
            V::store(out[r] + c, x);
          }
      continue;
    }
    for (size_t c0 = 0; c0 < d; c0 += R) {
      fvec cols[R];
      #pragma GCC unroll 16
      for (size_t i = 0; i < R; ++i) {
        cols[i] = V::loadf(bs.ot + (c0 + i) * R);
        if (finish) cols[i] = V::mul(cols[i], by);
      }
      ops::transpose_stores(cols, out);
      #pragma GCC unroll 16
      for (size_t r = 0; r < R; ++r)
        if (out[r]) out[r] += R;
    }
  }
  if (finish) *kv.finished = true;
}

/// attention_fn for q8_0 keys with integer scores; values f32, f16 (read in
/// place), q4_0 (dequantized per tile) or q8_0 (integer P . V). head_dim a
/// multiple of 32.
/// Prefill over q8_0 values goes to attention_q8_row_lanes on the VNNI
/// tiers and avx2 (the sign trick without VNNI), over other values to
/// prefill's tiles; on 512-bit vectors without VNNI (the avx512 tier) every
/// prefill goes to the float row lanes (see the file's overview).
template <class V, format VF, class P = vnni_products>
void attention_online_q8(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                         const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l, float* acc) {
  if (kv.rows_per_head(rows) > attention_decode_rows) {  // prefill: one KV head at a time
    if constexpr (!V::vnni && V::lanes != 8)
      attention_per_head(kv, kv_head, q_rows, rows, limits, t0, t1, scale, m, l, acc,
                         attention_row_lanes<V, format::q8_0, VF>);
    else if constexpr (VF == format::q8_0)
      attention_per_head(kv, kv_head, q_rows, rows, limits, t0, t1, scale, m, l, acc, attention_q8_row_lanes<V, P>);
    else
      attention_per_head(kv, kv_head, q_rows, rows, limits, t0, t1, scale, m, l, acc,
                         attention_tiles<V, q8_key_scores<V>, VF, attention_prefill_subtiles>);
  } else
    attention_tiles<V, q8_key_scores<V>, VF, decode_subtiles<V>>(kv, kv_head, q_rows, rows, limits, t0, t1, scale, m, l, acc);
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
