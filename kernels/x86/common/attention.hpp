// Online-softmax attention (attention_fn) for the x86 tiers, written once
// against the vec256 / vec512 policies. Two paths, chosen by the rows a call
// has per KV head (query positions times the heads sharing it):
//
// Few rows (decode: at most 8), and any rows with integer scores (q8_0 keys
// on the VNNI tiers and avx2; on avx512 decode only), attention_tiles. Keys
// go a tile at a time (sub-tiles of V::lanes tokens, never across a cache
// block; for decode 32 keys a tile, two sub-tiles on 512-bit vectors and
// four on 256-bit ones: decode_subtiles; four for more rows). A scores
// policy turns each sub-tile into one vector of scores per query row (lane
// i = key i):
// float_key_scores here (f32 and f16 keys read in place, per key dot
// products as vectors, folded four keys at a time and transposed into lanes,
// never a horizontal sum per key; q8_0 keys read from the cache's groups,
// kv_layout.hpp, which already hold every key of a tile in lanes) or the
// integer one of attention_q8.hpp. Query rows go in groups of four, a last
// group of 1-3 at its own count (with_group_rows: register tiles templated
// on the rows, so a KV head with fewer query heads does not pay four rows'
// products). Per group: the rows' maxima and sums by one shuffle tree
// each, one vector exp per row, the rescale factors only when a maximum
// moved, and acc = acc * shrink
// + sum_i p_i v_i with sixteen accumulator vectors in registers. Values are
// read in place when f32, or f16 for a single group of rows (for any number
// on 256-bit vectors, kv_converted_per_tile; keys alike); q8_0 values
// straight from their groups (q8_value_groups, in f32; with integer scores,
// q8_value_tile in attention_q8.hpp: weights rounded to u8 per tile,
// vpdpbusd over four keys at a time); otherwise converted once per tile for
// all groups.
//
// More rows (prefill, float scores), attention_row_lanes: the query rows go
// V::lanes at a time in the lanes of one vector, so each key's score for a
// block of rows is one chain of broadcast-key FMAs (no reduction across
// lanes) and the online softmax runs lane by lane. On the VNNI tiers, amx
// and avx2, prefill with q8_0 keys and values does the same in integers
// (attention_q8_row_lanes, attention_q8.hpp).
//
// No score matrix is kept beyond one tile. The K and V rows two tiles ahead
// are prefetched into L2 a line or two per inner step of the tile in hand
// (prefetch_cursor): a burst of lines waits for fill buffers and stalls the
// computation behind it.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <type_traits>
#include <vector>

#include "../../kv_layout.hpp"
#include "../../ukernel.hpp"
#include "attention_vec.hpp"
#include "dequant.hpp"
#include "lowbit/formats.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// c[0] x^(N-1) + ... + c[N-1] lane by lane, by Horner's rule (one FMA per
/// coefficient after the first).
template <class V, size_t N>
inline typename V::fvec horner(typename V::fvec x, const float (&c)[N]) {
  auto p = V::set1f(c[0]);
  #pragma GCC unroll 8
  for (size_t i = 1; i < N; ++i) p = V::fmadd(p, x, V::set1f(c[i]));
  return p;
}

/// log2 e and ln 2 as floats: exp_nonpositive's range reduction, and the
/// integer kernels' log2 units (below).
inline constexpr float log2_e = std::numbers::log2e_v<float>, ln_2 = std::numbers::ln2_v<float>;

/// exp(x) lane by lane for x <= 0 (softmax arguments): x = n ln2 + r with
/// |r| <= ln2 / 2 (two-constant split), a degree-6 polynomial for e^r (the
/// classic Cephes coefficients) and 2^n from the exponent bits. Relative error
/// about 2e-7; exp(0) is exactly 1; arguments below -87 (-inf included) give
/// about 1e-38 instead of less.
template <class V>
inline typename V::fvec exp_nonpositive(typename V::fvec x) {
  const auto xc = V::maxf(x, V::set1f(-87.0f));
  const auto n = V::round_nearest(V::mul(xc, V::set1f(log2_e)));
  auto r = V::fmadd(n, V::set1f(-0.693359375f), xc);
  r = V::fmadd(n, V::set1f(2.12194440e-4f), r);
  static constexpr float c[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
  const auto p = horner<V>(r, c);
  const auto e = V::addf(V::fmadd(p, V::mul(r, r), r), V::set1f(1.0f));
  return V::times_pow2i(e, n);  // e * 2^n, always a normal number here (n >= -126 only with e >= 1)
}

// The integer-score kernels (q8_0 keys on the VNNI tiers and avx2) keep scores in
// log2 units (times log2 e, folded into the score scale) from a call's
// start to its end, so a softmax weight is 2^y rather than e^x: no multiply
// by log2 e per weight and no two-constant split, seven multiply-adds per
// vector instead of eleven, on the pipes vpdpbusd uses on Zen 4 (2-6% of a
// q8_0 prefill there). The running maxima m are converted on the way in and
// out (the attention_fn contract keeps natural units). The float kernels
// keep exp_nonpositive: the same accuracy, and their results stay the ones
// the decoder's end-to-end tests against llama.cpp were set on (the f16
// cache's prefill and decode logits agree within the golden margin; with
// 2^y they differ by 1.57 at one position, a different rounding amplified
// by the model's outlier channel, not a less accurate one). log2_e (above)
// is that factor.

/// exp2_nonpositive's (below) 512-bit form with the polynomial `c` for 2^f on
/// [0, 1) (highest degree first, 2^0 last): the clamp at -125, y - floor(y)
/// by vreduceps, the polynomial, vscalefps by floor(y). For the kernels
/// whose weights take a coarser polynomial than exp2_nonpositive's (amx's
/// bf16 weights).
template <class V, size_t N>
inline typename V::fvec exp2_floor_form(typename V::fvec y, const float (&c)[N]) {
  const auto yc = V::maxf(y, V::set1f(-125.0f));
  return V::times_pow2_floor(horner<V>(V::floor_fraction(yc), c), yc);
}

/// 2^y lane by lane for y <= 0 (softmax arguments in log2 units; y up to
/// 127 works as well, and the row-lanes prefill takes weights up to 2^8).
/// Arguments below -125 (-inf included) give about 1e-38 (still a normal
/// number) instead of less; 2^0 is exactly 1.
/// - On 512-bit vectors: y = n + f with n = floor(y), f in [0, 1) (one
///   vreduceps), a degree-5 polynomial for 2^f fitted here for the least
///   largest relative error on [0, 1) (1.6e-7 evaluated in f32), and
///   vscalefps, which floors y itself: 8 instructions.
/// - Otherwise: n = round(y), |f| <= 1/2 (exact), a degree-6 polynomial for
///   2^f (the Cephes exp2f coefficients), and 2^n added into the exponent
///   bits. Relative error about 2e-7. n comes from t = y + 1.5 * 2^23 (for
///   |y| < 2^22 one correctly rounded add leaves round(y), to nearest even
///   as vroundps, in t's mantissa, and t - 1.5 * 2^23 = n exactly), so that
///   t's bits shifted left by 23 are n's in the exponent field: two adds and
///   a shift where vroundps and vcvtps2dq took three uops, all on the ports
///   the FMAs (and vpdpbusd) use on Intel cores. The same bits.
/// Weights (the integer prefill's softmax weights, which it rounds to 8 bits
/// per block, and their sums): degree-4 polynomials instead, fitted the same
/// way with 2^0 kept exact, largest relative error 3.0e-6 on [0, 1) and
/// 2.9e-6 on [-1/2, 1/2] evaluated in f32 (about a thousandth of the u8
/// rounding's step at the largest weight, and of the order of the f32
/// rounding in the weights' sums over a few thousand keys): one FMA fewer
/// on 512-bit vectors, two otherwise.
template <class V, bool Weights = false>
inline typename V::fvec exp2_nonpositive(typename V::fvec y) {
  if constexpr (requires { V::floor_fraction(y); }) {
    static constexpr float c[] = {1.867130399e-3f, 9.017028846e-3f, 5.579991266e-2f, 2.401644439e-1f,
                                  6.931512952e-1f, 1.0f};
    static constexpr float c4[] = {1.342668850e-2f, 5.224246532e-2f, 2.412802130e-1f, 6.930448413e-1f, 1.0f};
    if constexpr (Weights) return exp2_floor_form<V>(y, c4);
    return exp2_floor_form<V>(y, c);
  } else {
    const auto yc = V::maxf(y, V::set1f(-125.0f));
    constexpr float shift = 0x1.8p23f;
    const auto t = V::addf(yc, V::set1f(shift));
    const auto f = V::sub(yc, V::sub(t, V::set1f(shift)));
    static constexpr float c[] = {1.535336188319500e-4f, 1.339887440266574e-3f, 9.618437357674640e-3f,
                                  5.550332471162809e-2f, 2.402264791363012e-1f, 6.931472028550421e-1f, 1.0f};
    static constexpr float c4[] = {9.582852945e-3f, 5.590642616e-2f, 2.402409911e-1f, 6.931241751e-1f, 1.0f};
    if constexpr (Weights) return V::times_pow2_shifted(horner<V>(f, c4), t);
    return V::times_pow2_shifted(horner<V>(f, c), t);
  }
}

template <format F>
inline float kv_scalar(const unsigned char* row, size_t col);

/// A q8_0, q4_0 or f16 KV row of d values, converted into f32 at `out` (the
/// oracle's float(q) * d, q8_0's scale converted by F16C rather than in
/// software; f16 exactly).
template <class V, format F>
inline void dequantize_kv_row(const unsigned char* row, float* out, size_t d) {
  static_assert(F == format::q8_0 || F == format::q4_0 || F == format::f16,
                "only quantized and f16 K/V rows are converted ahead");
  if constexpr (F == format::f16) {
    size_t c = 0;
    for (; c + V::lanes <= d; c += V::lanes) V::store(out + c, V::load_half(row + 2 * c));
    for (; c < d; ++c) out[c] = kv_scalar<format::f16>(row, c);
  } else if constexpr (F == format::q8_0) {
    const auto* blocks = reinterpret_cast<const block_q8_0*>(row);
    for (size_t b = 0; b < d / qk8_0; ++b) {
      const auto scale = V::set1f(_cvtsh_ss(blocks[b].d));
      for (size_t i = 0; i < qk8_0; i += V::lanes)
        V::store(out + b * qk8_0 + i, V::mul(V::to_float(V::widen_s8(blocks[b].qs + i)), scale));
    }
  } else {
    dequant_q4_0_row<V>(row, out, d);
  }
}

/// Block b of the four lanes of quad `quad` of a q8_0 group (kv_layout.hpp,
/// `blocks` blocks) as plain q8_0 blocks: eight 16-byte chunks, chunk j
/// holding values 4j..4j+3 of each lane in its dword i (keys lie so; values
/// after one byte shuffle per chunk), transposed four dwords at a time.
inline void kv_group_quad_blocks(kv_side side, const unsigned char* group, size_t quad, size_t blocks, size_t b,
                                 block_q8_0 out[4]) {
  const unsigned char* quants = group + kv_group_block(blocks, b);
  __m128i c[8];
  if (side == kv_side::key) {
    // Chunk j: bytes [j * 64 + quad * 16, +16), stored plus 128.
    const __m128i bias = _mm_set1_epi8(static_cast<char>(0x80));
    for (size_t j = 0; j < 8; ++j)
      c[j] = _mm_xor_si128(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(quants + j * kv_key_vector_bytes + quad * 16)), bias);
  } else {
    // Chunk j: columns 4j..4j+3 of the quad's four keys, key-minor; the
    // shuffle makes each key's four bytes one dword.
    const __m128i by_key = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (size_t j = 0; j < 8; ++j)
      c[j] = _mm_shuffle_epi8(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(quants + quad * kv_value_quad_bytes + j * 16)), by_key);
  }
  for (size_t h = 0; h < 2; ++h) {  // values 0..15 from chunks 0..3, 16..31 from 4..7
    const __m128i* x = c + 4 * h;
    const __m128i t0 = _mm_unpacklo_epi32(x[0], x[1]), t1 = _mm_unpacklo_epi32(x[2], x[3]);
    const __m128i t2 = _mm_unpackhi_epi32(x[0], x[1]), t3 = _mm_unpackhi_epi32(x[2], x[3]);
    const __m128i lane[4] = {_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1), _mm_unpacklo_epi64(t2, t3),
                             _mm_unpackhi_epi64(t2, t3)};
    for (size_t i = 0; i < 4; ++i) _mm_storeu_si128(reinterpret_cast<__m128i*>(out[i].qs + 16 * h), lane[i]);
  }
  for (size_t i = 0; i < 4; ++i) std::memcpy(&out[i].d, group + kv_group_scale(b, 4 * quad + i), sizeof(f16_bits));
}

/// n K (or V) rows of one head from token `slot` of its cache block on, in
/// f32, d apart at `out`; `first` is where the first token's plain row would
/// start (row_bytes apart). q8_0 rows are read from their groups
/// (kv_layout.hpp) four lanes and one block at a time.
template <class V, format F>
inline void dequantize_kv_rows(kv_side side, const unsigned char* first, size_t slot, size_t row_bytes, size_t n,
                               float* out, size_t d) {
  if constexpr (F == format::q8_0) {
    const kv_group_at at = kv_group_of(first, slot, row_bytes);
    const size_t blocks = d / qk8_0;
    for (size_t i = 0; i < n;) {
      // The rest of the quad token i lies in.
      const kv_group_at g = kv_group_step(at.group, at.lane, i, row_bytes);
      const size_t from = g.lane % 4, count = std::min(4 - from, n - i);
      for (size_t b = 0; b < blocks; ++b) {
        block_q8_0 quad[4];
        kv_group_quad_blocks(side, g.group, g.lane / 4, blocks, b, quad);
        for (size_t k = 0; k < count; ++k)
          dequantize_kv_row<V, F>(reinterpret_cast<const unsigned char*>(&quad[from + k]),
                                  out + (i + k) * d + b * qk8_0, qk8_0);
      }
      i += count;
    }
  } else {
    for (size_t i = 0; i < n; ++i) dequantize_kv_row<V, F>(first + i * row_bytes, out + i * d, d);
  }
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

/// Whether K or V rows of format `f` are converted into f32 once per tile
/// for `rows` query rows on vectors of `Lanes` floats rather than read in
/// place: q4_0 always; f16 on 512-bit vectors when more than one group of
/// four rows shares the conversion, on 256-bit vectors never. (q8_0 rows
/// are read from their groups, kv_layout.hpp; f32 in place.) On Zen 2 the
/// 256-bit decode with two groups (5-8 query heads per KV head, as Qwen2's
/// 6 and 7) took 1.29-1.32 times as long converting once as converting
/// each group's vectors as it reads them (lowbit-attn-min, d = 64 and 128,
/// from L2 and from DRAM): a tile's 2 x 32 x d stores on its one store pipe
/// cost more than the second group's vcvtph2ps. The 512-bit tiers keep the
/// shared conversion: not measured there.
template <size_t Lanes>
constexpr bool kv_converted_per_tile(format f, size_t rows) {
  return f == format::q4_0 || (f == format::f16 && rows > 4 && Lanes > 8);
}

/// Per-thread buffers of the attention kernels, grown as needed and kept
/// between calls (a decode step calls the kernel once per chunk and head).
struct attention_buffers {
  std::vector<float> scores;          ///< rows x tile: one tile's scores
  std::vector<float> keys, values;    ///< tile x head_dim: rows converted to f32
  std::vector<unsigned char> tile;    ///< a scores policy's per-tile data
  std::vector<unsigned char> value_tile;  ///< q8_value_groups' block scales and regrouped runs
  std::vector<unsigned char> query;   ///< the query rows in a scores policy's own form
  std::vector<float> query_source;    ///< the f32 rows `query` was made from
  std::vector<float> row_lanes;       ///< attention_row_lanes: transposed queries and softmax state
};
inline attention_buffers& attention_scratch() {
  thread_local attention_buffers buffers;
  return buffers;
}

/// Where token t of one KV head lies: its K and V rows, and the tokens of
/// its cache block from t on.
struct kv_position {
  const unsigned char *k, *v;
  size_t in_block;
};
[[gnu::always_inline]] inline kv_position locate(const attn_kv& kv, size_t kv_head, size_t t) {
  const size_t b = t / kv.block_tokens, slot = t % kv.block_tokens;
  return {kv.k_blocks[b] + kv_head * kv.k_head_bytes + slot * kv.k_row_bytes,
          kv.v_blocks[b] + kv_head * kv.v_head_bytes + slot * kv.v_row_bytes, kv.block_tokens - slot};
}

/// The keys a call works on: [t0, last), last the furthest any row sees
/// within t1; horizon the furthest any row sees at all (prefetching runs on
/// past t1 into the keys the next chunk reads).
struct key_range {
  size_t last, horizon;
};
inline key_range keys_seen(const size_t* limits, size_t rows, size_t t0, size_t t1) {
  key_range r{t0, t0};
  for (size_t i = 0; i < rows; ++i) {
    r.last = std::max(r.last, std::min(t1, limits[i]));
    r.horizon = std::max(r.horizon, limits[i]);
  }
  return r;
}

/// Prefetches (into L2) the K and V rows of tokens [u, u + count) of one KV
/// head. Always inlined: GCC deems a function that only prefetches free of
/// side effects and deletes the calls to it.
[[gnu::always_inline]] inline void prefetch_kv(const attn_kv& kv, size_t kv_head, size_t u, size_t count) {
  while (count > 0) {
    const kv_position at = locate(kv, kv_head, u);
    const size_t c = std::min(count, at.in_block);
    const unsigned char *k = at.k, *v = at.v;
    for (size_t off = 0; off < c * kv.k_row_bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(k + off), _MM_HINT_T1);
    for (size_t off = 0; off < c * kv.v_row_bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(v + off), _MM_HINT_T1);
    u += c;
    count -= c;
  }
}

/// Two lines of each stream, from k and from v (into L2), both stepped past them.
[[gnu::always_inline]] inline void prefetch_line_pairs(const char*& k, const char*& v) {
  _mm_prefetch(k, _MM_HINT_T1);
  _mm_prefetch(v, _MM_HINT_T1);
  _mm_prefetch(k + 64, _MM_HINT_T1);
  _mm_prefetch(v + 64, _MM_HINT_T1);
  k += 128;
  v += 128;
}

/// The K and V rows of one future tile, prefetched (into L2) a line or two
/// at a time while the tile in hand is computed: step() is called from the
/// inner loops of the score and P . V passes (once per column vector of a
/// key group, once per key of a group of value columns; for the integer
/// decode on 512-bit vectors also from the softmax and P . V's rounding of
/// its weights, spread_asks below), a K line and a V
/// line together, so both streams run side by side (K first, then V, was 10%
/// slower for f16 decode). A software prefetch waits for a line fill buffer,
/// and the work behind it waits too: a burst of a whole tile's lines, or even
/// of a few lines at a time, stalls the computation; a line or two per inner
/// step keeps the memory busy without stalling it. The asks go steps / asks
/// apart (counted in 1/256 of a step since the twenty-fourth section of
/// docs/attention.md; before, every floor(steps / asks)th step asked, so
/// that with fewer than twice as many steps as asks the first `asks` steps
/// asked and the rest none), so they span the whole tile: f16 decode on
/// 256-bit vectors had 192
/// steps a tile for 64 lines of each stream (tiles of 16 keys then; 384
/// for 128 since 789c5b0), and asking for them in its
/// first 64 steps (the first third of the tile, its scores) left the memory
/// idle through P . V: one step in three took 0.87-0.91 of the time from
/// DRAM (Xeon, contexts 4096 and 16384, one thread and two; bench/ab.py).
/// Asks a partial tile's steps leave over go in rest()'s burst, as before.
struct prefetch_cursor {
  const char *k = nullptr, *k_end = nullptr, *v = nullptr, *v_end = nullptr;
  size_t k_per = 0, v_per = 0;  ///< lines of each stream per step() that asks for lines
  /// A countdown no run of step() calls reaches zero from (2^55 calls).
  static constexpr ptrdiff_t never_tick = PTRDIFF_MAX;
  size_t busy = 0;              ///< step() calls left that ask for lines
  /// step() calls between asks, in 1/256 of a call (so that the asks spread
  /// over all the steps, not just the first `busy` of them); tick counts down
  /// to the next ask in the same units.
  ptrdiff_t every = 256, tick = never_tick;

  /// Aims at tokens [u, u + n) (clipped to u's block and to `last`), to be
  /// spread over `steps` calls of step().
  [[gnu::always_inline]] void aim(const attn_kv& kv, size_t kv_head, size_t u, size_t n, size_t last, size_t steps) {
    if (u >= last) return idle();
    const kv_position at = locate(kv, kv_head, u);
    const size_t c = std::min({n, at.in_block, last - u});
    k = reinterpret_cast<const char*>(at.k);
    v = reinterpret_cast<const char*>(at.v);
    k_end = k + c * kv.k_row_bytes;
    v_end = v + c * kv.v_row_bytes;
    const size_t k_lines = (c * kv.k_row_bytes + 63) / 64, v_lines = (c * kv.v_row_bytes + 63) / 64;
    k_per = (k_lines + steps - 1) / steps;
    v_per = (v_lines + steps - 1) / steps;
    busy = std::max(k_per ? (k_lines + k_per - 1) / k_per : 0, v_per ? (v_lines + v_per - 1) / v_per : 0);
    every = busy ? static_cast<ptrdiff_t>(std::max<size_t>(256, steps * 256 / busy)) : 256;
    tick = busy ? 1 : never_tick;
  }
  /// Once the tile's lines are all asked for (a prefill's later groups of
  /// rows call step() many times more than there are lines), one branch: the
  /// asking loops, entered by every call with nothing left to ask (an earlier
  /// form), took a fifth of the time of integer P . V's inner loop on Zen 4.
  /// Each call is one subtraction and one branch:
  /// when no asks are left, tick is `never_tick` (a separate test of busy per
  /// call, a decode tile's several hundred calls, cost Zen 3's f16 decode
  /// 1-2%). No bounds per line: a stream whose lines run out
  /// before the other's asks for a few past its end (none when K and V rows
  /// are the same size). An ask of one line of each stream (every decode
  /// tile measured: f16 and q8_0, d = 128) goes without the loops: with them
  /// GCC spent 15-20 instructions an ask, in a kernel of about 540 a token
  /// and KV head (f16 decode on avx2) that Zen 2 runs at about four a cycle;
  /// without them 0.96-0.97 of the time there, f16 and q8_0
  /// (docs/attention.md, twenty-second section). An ask of two lines of
  /// each (the 512-bit q8_0 decode tiles: 68 lines of each stream over 40
  /// steps) goes without them too: with them, 1.15-1.2 times the time from
  /// L2 on a Xeon of family 6, model 207 (avx512_vnni, amx; twenty-fourth
  /// section), where GCC spilled registers around the loops.
  [[gnu::always_inline]] void step() {
    if ((tick -= 256) > 0) return;
    tick += every;
    if (--busy == 0) [[unlikely]] tick = never_tick;
    // k_per and v_per are at least 1 while asks are due (aim()), so this is
    // k_per == v_per == 1 in one test.
    if ((k_per | v_per) == 1) [[likely]] {
      _mm_prefetch(k, _MM_HINT_T1);
      _mm_prefetch(v, _MM_HINT_T1);
      k += 64;
      v += 64;
    } else if (k_per == 2 && v_per == 2) {
      prefetch_line_pairs(k, v);
    } else {
      for (size_t i = 0; i < k_per; ++i, k += 64) _mm_prefetch(k, _MM_HINT_T1);
      for (size_t i = 0; i < v_per; ++i, v += 64) _mm_prefetch(v, _MM_HINT_T1);
    }
  }
  /// Nothing to prefetch until the next aim().
  [[gnu::always_inline]] void idle() {
    k = k_end = v = v_end = nullptr;
    busy = 0;
    tick = never_tick;
  }
  /// Whatever the steps left.
  [[gnu::always_inline]] void rest() {
    for (; k < k_end; k += 64) _mm_prefetch(k, _MM_HINT_T1);
    for (; v < v_end; v += 64) _mm_prefetch(v, _MM_HINT_T1);
  }
};

/// Where the decode calls step(): on 512-bit vectors at points spread over a
/// tile's time (attention_tiles' softmax, twice a row: every decode; the
/// integer decode's QKᵀ twice a block, P . V's rounding of its weights once
/// a row and block and its products once a sub-tile and block), on 256-bit
/// vectors only in the score and product loops (every block of the integer
/// QKᵀ, every key quad of its products), as before. The asks keep DRAM busy only while they
/// come: bunched into the product loops (about a third of a 512-bit tile's
/// time, the rounding and the softmax between them), the 512-bit decode read
/// its cache at about three quarters of a plain read's rate on a Xeon whose
/// read in the same order, asks spread evenly, kept up with a plain one. The
/// 256-bit decodes are bound by their arithmetic there, and the extra steps
/// cost them 3-7% (docs/attention.md, twenty-fourth section).
template <class V>
inline constexpr bool spread_asks = V::lanes == 16;

/// step() calls per sub-tile that attention_tiles' softmax makes for one
/// group of rows where spread_asks: its two passes (scores, exponentials)
/// each step S times a row for all four rows, 8 S a tile.
template <class V>
inline constexpr size_t softmax_prefetch_steps = spread_asks<V> ? 2 * 4 : 0;

/// A kernel's own copy of the caller's cursor, written back when it goes out
/// of scope. The caller's cursor is handed by reference to kernels that are
/// not inlined (the score tiles), so its fields live in memory, and step()'s
/// countdown was loaded, decremented and stored on every inner step; the
/// copy stays in registers through the loops.
class prefetch_pass {
 public:
  explicit prefetch_pass(prefetch_cursor& home) : pf(home), home_(home) {}
  prefetch_pass(const prefetch_pass&) = delete;
  prefetch_pass& operator=(const prefetch_pass&) = delete;
  ~prefetch_pass() { home_ = pf; }
  prefetch_cursor pf;

 private:
  prefetch_cursor& home_;
};

/// The caller's output rows (attn_kv::out_rows), prefetched for writing a
/// few lines per group of rows and tile, spread evenly over the call's
/// `visits` such turns, so the caller's stores after the call find them in
/// cache and owned. PREFETCHW, not a read prefetch: on Zen 4 a 512-token
/// integer prefill writes 8 MiB of output rows, and with the rows written
/// into cache instead (a timing-only build) it took 14% less time; these
/// prefetches take 4-10% off at 512 tokens (faster in 25 and 26 of 32
/// paired rounds on one and two threads; 0.95-1.03 of the time at 2048),
/// where the same with prefetcht0 (what __builtin_prefetch(p, 1) is without
/// -mprfchw) gained nothing.
/// Only used with the VNNI tiers' integer prefill: every CPU with AVX-VNNI
/// or AVX512-VNNI has PREFETCHW (an AVX2 CPU need not). The float kernels'
/// prefill (attention_row_lanes, slower per row) gained nothing from it on
/// the avx512 tier (0.97-1.10).
class out_row_prefetch {
 public:
  out_row_prefetch(float* const* rows, size_t n, size_t d, size_t visits)
      : rows_(rows), left_(rows ? n : 0), lines_((d * sizeof(float) + 63) / 64) {
    per_step_ = left_ ? (left_ * lines_ + visits - 1) / visits : 0;
  }
  /// One turn's lines.
  [[gnu::always_inline]] void step() {
    for (size_t i = 0; i < per_step_ && left_; ++i) {
      __asm__ volatile("prefetchw %0" : : "m"(*(reinterpret_cast<const char*>(*rows_) + line_ * 64)));
      if (++line_ == lines_) {
        line_ = 0;
        ++rows_;
        --left_;
      }
    }
  }

 private:
  float* const* rows_;
  size_t left_, lines_, line_ = 0, per_step_;
};

/// How far ahead of the tile in hand decode prefetches each of the K and V
/// streams, in bytes (rounded up to whole tiles). On an AMD EPYC (Zen 4)
/// reading from DRAM, q8_0 decode ran 7% faster aiming two tiles of 32
/// keys ahead (8.5 KiB of rows) than one; f16 decode, whose rows are twice
/// as wide, was fastest one tile (8 KiB) ahead.
inline constexpr size_t attention_prefetch_lead = 8192;

/// Vectors per row that the float kernels' QKᵀ and P . V keep as
/// accumulators at once for a group of R rows: four (4 R accumulators)
/// where the vector policy has 32 registers (512-bit vectors), two on
/// 256-bit ones for three and four rows, where sixteen accumulators alone
/// would fill the 16 registers and the spilled ones' FMAs went through
/// memory; four there for one and two rows, whose eight chains with two
/// vectors each would leave the five-cycle FMAs waiting on each other
/// (Zen 2).
template <size_t Lanes, size_t R = 4>
inline constexpr size_t accumulator_vectors = Lanes == 16 || R <= 2 ? 4 : 2;

/// How many keys ahead the prefetch cursor aims, for tiles of `tile` keys:
/// whole tiles, at least one, and at least attention_prefetch_lead bytes of
/// the wider of the K and V rows.
inline size_t prefetch_ahead(const attn_kv& kv, size_t tile) {
  return std::max<size_t>(1, (attention_prefetch_lead / std::max(kv.k_row_bytes, kv.v_row_bytes) + tile - 1) / tile) *
         tile;
}

/// `bytes` of `buffer` from its first address aligned for Vec (the buffer
/// grown to hold them).
template <class Vec>
unsigned char* vector_aligned(std::vector<unsigned char>& buffer, size_t bytes) {
  buffer.resize(alignof(Vec) + bytes);
  unsigned char* base = buffer.data();
  return base + (alignof(Vec) - reinterpret_cast<uintptr_t>(base) % alignof(Vec)) % alignof(Vec);
}

/// fn.template operator()<R>() for R = rows, at most 4 (more count as 4):
/// the kernels take query rows in groups of four, and a group of fewer
/// (a KV head with 1-3 query heads, or the last group of 5-7) at its own
/// count rather than padded to four (which cost the full four rows'
/// products: SmolLM2's three query heads per KV head, multi-head models'
/// one). Callers mark fn always_inline: left to GCC, the P . V and QKᵀ
/// bodies stayed out of line, and four query heads (the common case) took
/// 1.04-1.05 of the time (Zen 2, f16, d = 128). (row_count.hpp's
/// with_row_count, the GEMM kernels' switch, is not always_inline and
/// calls nothing for counts past its maximum.)
template <class Fn>
[[gnu::always_inline]] inline void with_group_rows(size_t rows, Fn&& fn) {
  switch (rows) {
    case 1: fn.template operator()<1>(); break;
    case 2: fn.template operator()<2>(); break;
    case 3: fn.template operator()<3>(); break;
    default: fn.template operator()<4>(); break;
  }
}

/// acc[j][h] += coef(j, h, e) * (byte e of every dword of v[h], sign-extended,
/// as f32), for R rows j, two vectors h and the four bytes e: 2 R FMA
/// chains over a grouped q8_0 vector's byte lanes (kv_layout.hpp), which hold
/// one key's four values (keys, bias taken off) or one key's columns (values).
template <class V, size_t R, class Coef>
inline void fma_byte_lanes(const typename V::ivec (&v)[2], typename V::fvec (&acc)[R][2], Coef coef) {
  using ops = attention_vec<V>;
  typename V::fvec x[2][4];
  #pragma GCC unroll 2
  for (size_t h = 0; h < 2; ++h) {
    x[h][0] = V::to_float(ops::template byte_of<0>(v[h]));
    x[h][1] = V::to_float(ops::template byte_of<1>(v[h]));
    x[h][2] = V::to_float(ops::template byte_of<2>(v[h]));
    x[h][3] = V::to_float(ops::template byte_of<3>(v[h]));
  }
  #pragma GCC unroll 4
  for (size_t e = 0; e < 4; ++e)
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j)
      #pragma GCC unroll 2
      for (size_t h = 0; h < 2; ++h) acc[j][h] = V::fmadd(V::set1f(coef(j, h, e)), x[h][e], acc[j][h]);
}

/// Where a sub-tile of q8_0 rows starting at token `slot` of its cache block
/// lies: its group and lane, or, when the run does not start on one of the
/// kernel's vectors (a call that starts inside a group), its n rows copied
/// to lane 0 of `scratch` (room for one group).
template <class V>
kv_group_at q8_run(kv_side side, const unsigned char* first, size_t stride, size_t slot, size_t n, size_t d,
                   unsigned char* scratch) {
  const kv_group_at at = kv_group_of(first, slot, stride);
  if (at.lane % V::lanes == 0) return at;
  kv_group_regroup(side, at.group, at.lane, n, d, scratch);
  return {scratch, 0};
}

/// Scores from keys in f32: f32 rows, and f16 rows for one group of four
/// query rows, are read in place; f16 rows for more groups are converted
/// once per tile (for every query row). q8_0 keys are read from the cache's
/// groups as they lie (kv_layout.hpp): per block and per vector of four
/// values of every key, the four values widened to f32 one byte lane at a
/// time (byte_of) against the broadcast query values, the block scale
/// applied to the block's sum.
template <class V, format KF>
class float_key_scores {
 public:
  /// Whether QKᵀ runs in integers (q8_key_scores), and q8_0 values may too.
  static constexpr bool integer = false;
  /// prefetch_cursor::step() calls per sub-tile for one group of rows (any
  /// count): q8_0, four per block (tile_q8); f32 and f16, one per column vector of
  /// each key quad's first pass (tile_from steps in that pass only).
  static size_t prefetch_steps(size_t d) {
    return KF == format::q8_0 ? d / qk8_0 * 4 : V::lanes / 4 * (d / V::lanes);
  }

  /// `rows` query rows, `group` of them per KV head (tile() is called on
  /// one head's rows_of()).
  float_key_scores(const float* const* q_rows, size_t rows, size_t group, size_t d, attention_buffers& buffers)
      : q_(q_rows), rows_(rows), d_(d) {
    if constexpr (KF == format::q8_0) {
      buffers.tile.resize(kv_group_bytes(d));  // a sub-tile that starts inside a group, regrouped
      scratch_ = buffers.tile.data();
    } else if (kv_converted_per_tile<V::lanes>(KF, group)) {
      buffers.keys.resize(V::lanes * d);
      keys_ = buffers.keys.data();
    }
  }

  /// The same scores for rows [r0, r0 + n) alone.
  float_key_scores rows_of(size_t r0, size_t n) const {
    float_key_scores part = *this;
    part.q_ += r0;
    part.rows_ = n;
    return part;
  }

  /// scores[r * V::lanes + i] = q_r . key i for keys i < n (key i's plain
  /// row would be at kp + i * stride; the first is token `slot` of its cache
  /// block) and rows r from `r_begin` (a multiple of four) on; lanes from n
  /// on hold finite values of no meaning, rows before `r_begin` whatever they
  /// held.
  void tile(const unsigned char* kp, size_t stride, size_t slot, size_t n, size_t r_begin, float* scores,
            prefetch_cursor& pf) const {
    if constexpr (KF == format::q8_0) {
      return tile_q8(kp, stride, slot, n, r_begin, scores, pf);
    } else {
      if (!converts()) return tile_from<KF>(kp, stride, n, r_begin, scores, pf);
      if constexpr (KF != format::f32) dequantize_kv_rows<V, KF>(kv_side::key, kp, slot, stride, n, keys_, d_);
      tile_from<format::f32>(reinterpret_cast<const unsigned char*>(keys_), d_ * sizeof(float), n, r_begin, scores, pf);
    }
  }

 private:
  bool converts() const { return kv_converted_per_tile<V::lanes>(KF, rows_); }

  /// tile() for q8_0 keys in the cache's groups, the rows in groups of four
  /// (the last at its own count).
  void tile_q8(const unsigned char* kp, size_t stride, size_t slot, size_t n, size_t r_begin, float* scores,
               prefetch_cursor& pf_home) const {
    prefetch_pass own(pf_home);  // pf in registers through the loops
    prefetch_cursor& pf = own.pf;
    const kv_group_at at = q8_run<V>(kv_side::key, kp, stride, slot, n, d_, scratch_);
    for (size_t r0 = r_begin; r0 < rows_; r0 += 4)
      with_group_rows(rows_ - r0, [&]<size_t R>() __attribute__((always_inline)) { group_q8<R>(at, r0, scores, pf); });
  }

  /// tile_q8 for the R rows from r0.
  template <size_t R>
  [[gnu::always_inline]] void group_q8(kv_group_at at, size_t r0, float* scores, prefetch_cursor& pf) const {
    using ivec = typename V::ivec;
    using fvec = typename V::fvec;
    const size_t blocks = d_ / qk8_0;
    const ivec bias = V::splat8(0x80);
    const float* q[R];
    for (size_t j = 0; j < R; ++j) q[j] = q_[r0 + j];
    fvec s[R];
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j) s[j] = V::zero();
    for (size_t b = 0; b < blocks; ++b) {
      // Two chains per row: even and odd vectors of the block.
      fvec a[R][2];
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j) a[j][0] = a[j][1] = V::zero();
      const unsigned char* kt = at.group + kv_group_block(blocks, b) + at.lane * 4;
      const size_t col = b * qk8_0;
      for (size_t w = 0; w < 8; w += 2) {
        pf.step();
        const ivec k[2] = {V::xor_(V::load(kt + w * kv_key_vector_bytes), bias),
                           V::xor_(V::load(kt + (w + 1) * kv_key_vector_bytes), bias)};
        fma_byte_lanes<V, R>(k, a, [&](size_t j, size_t h, size_t e) { return q[j][col + 4 * (w + h) + e]; });
      }
      const fvec dk = V::load_half(at.group + kv_group_scale(b, at.lane));
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j) s[j] = V::fmadd(V::addf(a[j][0], a[j][1]), dk, s[j]);
    }
    for (size_t j = R; j-- > 0;) V::store(scores + (r0 + j) * V::lanes, s[j]);
  }

  /// tile() from key rows in format KS2 (f32 or f16), read in place: the
  /// rows in groups of four, the last group at its own count.
  template <format KS2>
  void tile_from(const unsigned char* kp, size_t stride, size_t n, size_t r_begin, float* scores,
                 prefetch_cursor& pf_home) const {
    prefetch_pass own(pf_home);  // pf in registers through the loops
    prefetch_cursor& pf = own.pf;
    for (size_t r0 = r_begin; r0 < rows_; r0 += 4)
      with_group_rows(rows_ - r0, [&]<size_t R>() __attribute__((always_inline)) {
        group_from<KS2, R>(kp, stride, n, r0, scores, pf);
      });
  }

  /// tile_from for the R rows from r0.
  template <format KS2, size_t R>
  [[gnu::always_inline]] void group_from(const unsigned char* kp, size_t stride, size_t n, size_t r0, float* scores,
                                         prefetch_cursor& pf) const {
    using ops = attention_vec<V>;
    using fvec = typename V::fvec;
    constexpr size_t lanes = V::lanes, quads = lanes / 4;
    // Keys per pass over the columns: the whole quad, or two at a time.
    constexpr size_t KP = accumulator_vectors<lanes, R>;
    static_assert(KP == 4 || KP == 2, "a quad's keys in one pass or two");
    const size_t d = d_;
    const size_t vec_end = d / lanes * lanes;
    const float* q[R];
    for (size_t j = 0; j < R; ++j) q[j] = q_[r0 + j];
    fvec folded[R][quads];
    for (size_t g = 0; g < quads; ++g) {
      if (4 * g >= n) {
        for (size_t j = 0; j < R; ++j) folded[j][g] = V::zero();
        continue;
      }
      const unsigned char* k[4];
      for (size_t i = 0; i < 4; ++i) k[i] = kp + std::min(4 * g + i, n - 1) * stride;
      fvec a[R][4];
      // Keys [i0, i0 + KP) of the quad: their sums in registers (constant
      // indices), copied into a at the end.
      const auto pass = [&]<size_t i0>() {
        fvec t[R][KP];
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j)
          #pragma GCC unroll 4
          for (size_t i = 0; i < KP; ++i) t[j][i] = V::zero();
        for (size_t col = 0; col < vec_end; col += lanes) {
          if constexpr (i0 == 0) pf.step();
          fvec x[KP];
          #pragma GCC unroll 4
          for (size_t i = 0; i < KP; ++i) x[i] = kv_vec<V, KS2>(k[i0 + i], col);
          #pragma GCC unroll 4
          for (size_t j = 0; j < R; ++j) {
            fvec y = V::loadf(q[j] + col);
            // One load of the query vector, kept in a register for the KP
            // FMAs: GCC folds it into each FMA as a memory operand instead,
            // ten loads per eight FMAs, and Zen 3 issues two 256-bit loads
            // a cycle (0.80-0.97 of the f16 decode's time there on one
            // thread, 0.93-1.04 on two).
            // Not measured on 512-bit vectors: left to the compiler there.
            if constexpr (lanes == 8) asm("" : "+v"(y));
            #pragma GCC unroll 4
            for (size_t i = 0; i < KP; ++i) t[j][i] = V::fmadd(y, x[i], t[j][i]);
          }
        }
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j)
          #pragma GCC unroll 4
          for (size_t i = 0; i < KP; ++i) a[j][i0 + i] = t[j][i];
      };
      pass.template operator()<0>();
      if constexpr (KP == 2) pass.template operator()<2>();
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j) folded[j][g] = ops::sum4(a[j][0], a[j][1], a[j][2], a[j][3]);
    }
    for (size_t j = R; j-- > 0;) V::store(scores + (r0 + j) * lanes, ops::finish(folded[j]));
    if (vec_end < d) {
      for (size_t j = 0; j < R; ++j)
        for (size_t i = 0; i < n; ++i) {
          float s = 0.0f;
          for (size_t col = vec_end; col < d; ++col) s += q[j][col] * kv_scalar<KS2>(kp + i * stride, col);
          scores[(r0 + j) * lanes + i] += s;
        }
    }
  }

  const float* const* q_;
  size_t rows_, d_;
  unsigned char* scratch_ = nullptr;
  float* keys_ = nullptr;
};

/// Softmax weights of four accumulator rows: weight (j, i) of row j and key i
/// at base[j * row + i * key]. Rows of a tile in hand are (row, key) = (lanes,
/// 1); the row-lanes prefill path keeps them key-major, (1, lanes).
struct weight_view {
  const float* base;
  size_t row, key;
  float operator()(size_t j, size_t i) const { return base[j * row + i * key]; }
};

/// prefetch_cursor::step() calls P . V makes per tile for one group of R
/// rows: one per key per pass of pv_float over value columns
/// (accumulator_vectors of them, then two).
template <size_t Lanes, size_t R = 4>
constexpr size_t pv_prefetch_steps(size_t d) {
  constexpr size_t first = accumulator_vectors<Lanes, R> * Lanes;
  return d / first * Lanes + d % first / (2 * Lanes) * Lanes;
}

/// Lanes rows of d floats (row i at rows[i]) transposed into out[c * Lanes
/// + i], V::lanes columns at a time, then the leftover columns one by one.
template <class V>
inline void transpose_rows(const float* const* rows, size_t d, float* out) {
  constexpr size_t L = V::lanes;
  size_t c0 = 0;
  for (; c0 + L <= d; c0 += L) {
    const float* cols[L];
    for (size_t i = 0; i < L; ++i) cols[i] = rows[i] + c0;
    attention_vec<V>::transpose(cols, out + c0 * L);
  }
  for (; c0 < d; ++c0)
    for (size_t i = 0; i < L; ++i) out[c0 * L + i] = rows[i][c0];
}

/// Columns [col, col + 2 V::lanes) of R accumulator rows (R <= 4): out[j] =
/// out[j] * shrink[j] + sum over keys i < n of w(j, i) * value i, where
/// load(i, v0, v1) gives key i's two vectors of values; shrink null means
/// all ones. 2 R independent FMA chains. With R = 4 and fewer real rows,
/// out[j] past them aliases the last real row, which is stored last
/// (descending order) so its own result wins (the row-lanes prefill's last
/// block); decode passes the exact row count instead (attention_tiles).
template <class V, size_t R = 4, class Load>
inline void accumulate_pairs(float* const* out, size_t col, const float* shrink, weight_view w, size_t n, Load load) {
  static_assert(R >= 1 && R <= 4, "one to four accumulator rows");
  using fvec = typename V::fvec;
  constexpr size_t TK = V::lanes;
  fvec x0[R], x1[R];
  #pragma GCC unroll 4
  for (size_t j = 0; j < R; ++j) {
    x0[j] = V::loadf(out[j] + col);
    x1[j] = V::loadf(out[j] + col + TK);
  }
  if (shrink) {
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j) {
      x0[j] = V::mul(x0[j], V::set1f(shrink[j]));
      x1[j] = V::mul(x1[j], V::set1f(shrink[j]));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    fvec v0, v1;
    load(i, v0, v1);
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j) {
      x0[j] = V::fmadd(V::set1f(w(j, i)), v0, x0[j]);
      x1[j] = V::fmadd(V::set1f(w(j, i)), v1, x1[j]);
    }
  }
  // Constant indices keep the accumulators in registers.
  #pragma GCC unroll 4
  for (size_t k = 0; k < R; ++k) {
    V::store(out[R - 1 - k] + col, x0[R - 1 - k]);
    V::store(out[R - 1 - k] + col + TK, x1[R - 1 - k]);
  }
}

/// accumulate_pairs over four vectors of columns, [col, col + 4 V::lanes):
/// sixteen independent FMA chains, so the chains' latency hides behind the
/// conversions of the values. Columns [col, col + 2 V::lanes) take weights
/// wa, the next two wb (the same array for float values; two q8_0 blocks'
/// weights on 512-bit vectors). Each accumulator sums the same products in
/// the same order as accumulate_pairs would; R rows likewise.
template <class V, bool SameWeights, size_t R = 4, class Load>
inline void accumulate_quads(float* const* out, size_t col, const float* shrink, weight_view wa, weight_view wb,
                             size_t n, Load load) {
  static_assert(R >= 1 && R <= 4, "one to four accumulator rows");
  using fvec = typename V::fvec;
  constexpr size_t TK = V::lanes;
  fvec x[R][4];
  #pragma GCC unroll 4
  for (size_t j = 0; j < R; ++j)
    #pragma GCC unroll 4
    for (size_t c = 0; c < 4; ++c) x[j][c] = V::loadf(out[j] + col + c * TK);
  if (shrink) {
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j)
      #pragma GCC unroll 4
      for (size_t c = 0; c < 4; ++c) x[j][c] = V::mul(x[j][c], V::set1f(shrink[j]));
  }
  for (size_t i = 0; i < n; ++i) {
    fvec v[4];
    load(i, v);
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j) {
      const fvec a = V::set1f(wa(j, i));
      x[j][0] = V::fmadd(a, v[0], x[j][0]);
      x[j][1] = V::fmadd(a, v[1], x[j][1]);
      const fvec b = SameWeights ? a : V::set1f(wb(j, i));
      x[j][2] = V::fmadd(b, v[2], x[j][2]);
      x[j][3] = V::fmadd(b, v[3], x[j][3]);
    }
  }
  // Descending rows: a padding row aliases the last real one, which wins.
  #pragma GCC unroll 4
  for (size_t k = 0; k < R; ++k)
    #pragma GCC unroll 4
    for (size_t c = 0; c < 4; ++c) V::store(out[R - 1 - k] + col + c * TK, x[R - 1 - k][c]);
}

/// P . V for R accumulator rows (out; with R = 4, rows past rb alias the last
/// real one, else R = rb) from value rows in format S (f32 or f16, read in
/// place; row i at vp + i * stride): four, then two, then one vector of
/// columns at a time, then scalar columns.
template <class V, format S, size_t R = 4>
inline void pv_float(float* const* out, const float* rescaled, const float* shrink, weight_view p, size_t n,
                     const unsigned char* vp, size_t v_stride, size_t d, size_t rb, prefetch_cursor& pf_home) {
  prefetch_pass own(pf_home);  // pf in registers through the loops
  prefetch_cursor& pf = own.pf;
  using fvec = typename V::fvec;
  constexpr size_t TK = V::lanes;
  size_t col = 0;
  // Four vectors of columns at a time where their sixteen accumulators fit
  // in registers beside the values (accumulator_vectors), then two.
  for (; accumulator_vectors<TK, R> == 4 && col + 4 * TK <= d; col += 4 * TK) {
    accumulate_quads<V, true, R>(out, col, rescaled, p, p, n, [&](size_t i, fvec* v) {
      pf.step();
      #pragma GCC unroll 4
      for (size_t c = 0; c < 4; ++c) v[c] = kv_vec<V, S>(vp + i * v_stride, col + c * TK);
    });
  }
  for (; col + 2 * TK <= d; col += 2 * TK) {
    accumulate_pairs<V, R>(out, col, rescaled, p, n, [&](size_t i, fvec& v0, fvec& v1) {
      pf.step();
      v0 = kv_vec<V, S>(vp + i * v_stride, col);
      v1 = kv_vec<V, S>(vp + i * v_stride, col + TK);
    });
  }
  if (col + TK <= d) {
    fvec x[R];
    #pragma GCC unroll 4
    for (size_t j = 0; j < R; ++j) x[j] = V::mul(V::loadf(out[j] + col), V::set1f(shrink[j]));
    for (size_t i = 0; i < n; ++i) {
      const fvec v = kv_vec<V, S>(vp + i * v_stride, col);
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j) x[j] = V::fmadd(V::set1f(p(j, i)), v, x[j]);
    }
    #pragma GCC unroll 4
    for (size_t k = 0; k < R; ++k) V::store(out[R - 1 - k] + col, x[R - 1 - k]);
    col += TK;
  }
  for (; col < d; ++col)
    for (size_t j = 0; j < rb; ++j) {
      float x = out[j][col] * shrink[j];
      for (size_t i = 0; i < n; ++i) x += p(j, i) * kv_scalar<S>(vp + i * v_stride, col);
      out[j][col] = x;
    }
}

// attention_decode_rows (kernels/ukernel.hpp): the most rows per KV head a
// call takes the decode way, attention_tiles with decode's tiles. More rows
// (prefill) go to attention_row_lanes with float scores, to
// attention_q8_row_lanes with integer scores over q8_0 values, or to
// attention_tiles with prefill's tiles with integer scores over other values.

/// Sub-tiles of V::lanes keys per tile of attention_tiles: for a decode step,
/// and for more rows (prefill with integer scores), whose keys and values
/// come from L2 and are read by every group of rows. There 4 sub-tiles took
/// 15-25% less time than 2, and 8 more than 4 (Zen 4, q8_0 K and V, 512 and
/// 2048 tokens).
inline constexpr size_t attention_subtiles = 2, attention_prefill_subtiles = 4;

/// Decode's sub-tiles per tile, float and integer scores alike: 32 keys on
/// every tier, attention_subtiles on 512-bit vectors, four on 256-bit ones.
/// On Zen 3 the f16 decode was bound by its arithmetic, not by DRAM (as fast per
/// token from L2 as from DRAM, about 38 ns per token and KV head on one
/// thread in quiet spells), and a third of that went to the work done once
/// per tile (softmax, the prefetch asks, the tile walk, the folds of the
/// scores): tiles of four sub-tiles took 0.92 of the time from L2 and
/// 0.95 from DRAM (lowbit-attn-min, fastest runs; two threads equal),
/// eight sub-tiles 0.87 and 0.93, but a tile never crosses a cache block
/// and the decoder's blocks are 32 tokens, where eight sub-tiles would
/// leave four of them empty and still pay their softmax. With integer scores
/// (attention_q8.hpp) without VNNI the softmax, the weights' rounding and
/// the tile's bookkeeping took about half of a decode step's time on Zen 3
/// (perf), and 32 keys instead of 16 took 0.83-0.89 of the time (bench/ab.py,
/// 5 rounds, q8_0/q8_0, contexts 4096 and 16384, one thread and two; 18 of
/// 20 rounds faster), for 7-bit weights rounded over twice the keys.
/// avx2_vnni kept 16-key tiles until measured on a Xeon: 32 took 0.57-0.85
/// of the time from L2 there (lowbit-attn-min, seven rounds;
/// docs/attention.md).
template <class V>
inline constexpr size_t decode_subtiles = V::lanes == 8 ? 4 : attention_subtiles;

template <class V, size_t S>
class q8_value_tile;  // attention_q8.hpp: integer P . V for q8_0 values
template <class V>
struct q8_decode_tile;  // attention_q8.hpp: the integer decode's whole tile in its common case

/// Stands in for q8_value_groups where values are not q8_0.
struct float_values {
  float_values(size_t, attention_buffers&) {}
};

/// q8_0 values in the cache's groups (kv_layout.hpp), where each dword holds
/// one column's bytes of four keys, columns in order, and the keys' block
/// scales lie in one vector. load() finds a sub-tile's group (or regroups a
/// run that starts inside one) and its scales; accumulate() is P . V in f32:
/// per 32-value block, the weights w = p * d_v (p the softmax weight, d_v
/// the key's block scale), and per vector of four keys' columns, each key's
/// byte lane widened to f32 (byte_of) against its broadcast weight. The VNNI
/// tiers' q8_value_tile (attention_q8.hpp) does P . V in integers instead.
template <class V, size_t S>
class q8_value_groups {
 public:
  using ivec = typename V::ivec;
  using fvec = typename V::fvec;
  static constexpr size_t TK = V::lanes;
  static constexpr size_t quads = TK / 4, per_block = 32 / TK;  // key quads per sub-tile, vectors per block and quad

  /// prefetch_cursor::step() calls per sub-tile for one group of rows (any count).
  static size_t prefetch_steps(size_t d) { return d / qk8_0 * quads * per_block / 2; }

  q8_value_groups(size_t d, attention_buffers& buffers) : blocks_(d / qk8_0) {
    unsigned char* base = vector_aligned<fvec>(buffers.value_tile, S * (blocks_ * sizeof(fvec) + kv_group_bytes(d)));
    scales_ = reinterpret_cast<fvec*>(base);
    scratch_ = base + S * blocks_ * sizeof(fvec);
  }

  /// Finds sub-tile s's n values (the first token `slot` of its cache block,
  /// its plain row where vp points) and loads their block scales. Lanes past
  /// n hold finite values (other tokens, or zeros) whose weights are 0.
  void load(const unsigned char* vp, size_t stride, size_t slot, size_t n, size_t s) const {
    const size_t d = blocks_ * qk8_0;
    const kv_group_at at = q8_run<V>(kv_side::value, vp, stride, slot, n, d, scratch_ + s * kv_group_bytes(d));
    groups_[s] = at.group + at.lane / 4 * kv_value_quad_bytes;
    for (size_t b = 0; b < blocks_; ++b) scales_[b * S + s] = V::load_half(at.group + kv_group_scale(b, at.lane));
  }

  /// out[j] = out[j] * shrink[j] + sum over the tile's n keys of p[j * p_row
  /// + i] * value i, for the R rows of a group (shrink null: all ones).
  template <size_t R>
  void accumulate(float* const* out, const float* shrink, const float* p, size_t p_row, size_t n,
                  prefetch_cursor& pf_home) const {
    prefetch_pass own(pf_home);  // pf in registers through the loops
    prefetch_cursor& pf = own.pf;
    const size_t subs = (n + TK - 1) / TK;
    alignas(64) float w[R][S * TK];
    for (size_t b = 0; b < blocks_; ++b) {
      #pragma GCC unroll 4
      for (size_t j = 0; j < R; ++j)
        for (size_t s = 0; s < subs; ++s)
          V::store(w[j] + s * TK, V::mul(V::loadf(p + j * p_row + s * TK), scales_[b * S + s]));
      for (size_t c = 0; c < per_block; c += 2) {
        // Columns [c TK, (c + 2) TK) of the block: 2 R FMA chains.
        const size_t col = b * qk8_0 + c * TK;
        fvec x[R][2];
        #pragma GCC unroll 4
        for (size_t j = 0; j < R; ++j) {
          x[j][0] = V::loadf(out[j] + col);
          x[j][1] = V::loadf(out[j] + col + TK);
          if (shrink) {
            x[j][0] = V::mul(x[j][0], V::set1f(shrink[j]));
            x[j][1] = V::mul(x[j][1], V::set1f(shrink[j]));
          }
        }
        for (size_t kq = 0; kq < (n + 3) / 4; ++kq) {
          pf.step();
          const unsigned char* v = quad(b, kq) + c * sizeof(ivec);
          const ivec vals[2] = {V::load(v), V::load(v + sizeof(ivec))};
          fma_byte_lanes<V, R>(vals, x, [&](size_t j, size_t, size_t e) { return w[j][4 * kq + e]; });
        }
        for (size_t j = 0; j < R; ++j) {
          V::store(out[j] + col, x[j][0]);
          V::store(out[j] + col + TK, x[j][1]);
        }
      }
    }
  }

 protected:
  /// The per_block vectors of block b, key quad kq of the tile.
  const unsigned char* quad(size_t b, size_t kq) const {
    return groups_[kq / quads] + kv_group_block(blocks_, b) + kq % quads * kv_value_quad_bytes;
  }

  size_t blocks_;
  fvec* scales_;  ///< [block][sub-tile]
  unsigned char* scratch_;  ///< a group per sub-tile, for runs that start inside one
  mutable const unsigned char* groups_[S] = {};  ///< each sub-tile's group, moved on to its first key quad
};

/// The tiles of a call's keys for its KV heads (attn_kv::heads), in the
/// order they lie in memory: a cache block's keys for the first head, for
/// the next, ..., then the next block's. Within a block a head's keys go
/// in tiles of up to `tile` keys from where the run starts, so each head
/// gets the same tiles as a call for it alone. `end(h)` is where head h's
/// keys stop (at most `stop`, the furthest any head goes).
template <class End>
struct head_walk {
  size_t block_tokens, heads, tile, stop;
  End end;
  size_t span, span_end;  ///< the keys of the block in hand
  size_t head = 0, t, n = 0;  ///< the tile in hand: head (from 0), keys [t, t + n)
  bool done = false;

  head_walk(size_t block_tokens_, size_t heads_, size_t tile_, size_t t0, size_t stop_, End end_)
      : block_tokens(block_tokens_), heads(heads_), tile(tile_), stop(stop_), end(end_), span(t0),
        span_end(std::min(stop_, (t0 / block_tokens_ + 1) * block_tokens_)), t(t0) {
    settle();
  }
  [[gnu::always_inline]] void next() {
    t += n;
    settle();
  }

 private:
  [[gnu::always_inline]] void settle() {
    for (;;) {
      if (span >= stop) {
        done = true;
        n = 0;
        return;
      }
      const size_t e = std::min(span_end, end(head));
      if (t < e) {
        n = std::min(tile, e - t);
        return;
      }
      if (++head == heads) {
        head = 0;
        span = span_end;
        span_end = std::min(stop, (span / block_tokens + 1) * block_tokens);
      }
      t = span;
    }
  }
};

/// The attention_fn body: tiles of keys, scores from `Scores`, online softmax
/// and P . V per group of up to four query rows. `Scores(q_rows, rows, group, d,
/// buffers)` prepares the query rows once per call (group: rows per KV head);
/// rows_of() narrows it to one head's rows; its tile() is
/// float_key_scores::tile's contract, for one sub-tile of V::lanes keys.
/// Several KV heads (attn_kv::heads) are read block by block (head_walk):
/// each head's rows see the tiles, and get the results, of a call for that
/// head alone. A tile is S sub-tiles: the
/// softmax bookkeeping, the accumulator loads and stores of P . V and the
/// integer P . V's rounding and epilogue run once per tile, so more keys
/// share them. For decode (attention_subtiles) two sub-tiles took 6-8% less
/// time per key than one with warm caches; four are faster still but no
/// faster from DRAM (a Xeon), and round integer P . V's weights over twice
/// the keys. 256-bit vectors take four for decode (decode_subtiles).
template <class V, class Scores, format VF, size_t S = attention_subtiles>
void attention_tiles(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                     const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l, float* acc) {
  using ops = attention_vec<V>;
  using fvec = typename V::fvec;
  constexpr size_t TK = V::lanes, TT = S * TK;
  // The K and V rows of a tile ahead (attention_prefetch_lead) are prefetched
  // into L2, a few lines per score / P . V step (prefetch_cursor), on past t1
  // into the keys the next chunk will read. Where measured (f16 and q8_0
  // decode from DRAM, 1 thread, Sapphire Rapids): spread this way, 2 sub-tiles
  // of 16 keys ahead beat 1, 3, 4 and 8, and cut the time of a whole tile's
  // burst per tile by 10-15%.
  // q8_0 values are read from their groups: integer P . V with integer
  // scores (q8_value_tile), else in f32 (q8_value_groups); other quantized
  // values are converted to f32 once per tile.
  constexpr bool grouped_values = VF == format::q8_0;
  constexpr bool integer_values = Scores::integer && grouped_values;
  const size_t heads = std::max<size_t>(1, kv.heads), group = kv.rows_per_head(rows);
  const bool v_convert = kv_converted_per_tile<V::lanes>(VF, group);
  const size_t d = kv.head_dim;
  const auto [last, horizon] = keys_seen(limits, rows, t0, t1);
  if (last == t0) return;
  attention_buffers& buffers = attention_scratch();
  const Scores all_rows(q_rows, rows, group, d, buffers);
  // Integer scores: softmax in log2 units (see log2_e); with integer P . V
  // too, the weights are rounded to u8, so exp2_nonpositive's weights
  // polynomial, the one the row-lanes prefill uses (decode and prefill then
  // take their weights from the same polynomial).
  constexpr bool log2_units = Scores::integer;
  const auto softmax_exp = [](fvec x) {
    return log2_units ? exp2_nonpositive<V, integer_values>(x) : exp_nonpositive<V>(x);
  };
  const float score_scale = log2_units ? scale * log2_e : scale;
  if constexpr (log2_units)
    for (size_t r = 0; r < rows; ++r) m[r] *= log2_e;
  using Values = std::conditional_t<integer_values, q8_value_tile<V, S>,
                                    std::conditional_t<grouped_values, q8_value_groups<V, S>, float_values>>;
  const Values values(d, buffers);
  buffers.scores.resize(S * group * TK);  // sub-tile s: group x TK from s * group * TK
  float* tile_scores = buffers.scores.data();
  float* vbuf = nullptr;
  if (v_convert) {
    buffers.values.resize(TT * d);
    vbuf = buffers.values.data();
  }
  alignas(64) float p[4][TT];
  alignas(64) float shrink[TK];
  const size_t pf_ahead = prefetch_ahead(kv, TT);
  // step() calls per tile: the score pass's and P . V's for one group of rows
  // (its first: with one or two rows P . V takes fewer, wider passes).
  size_t value_steps = group == 1 || group == 2 ? pv_prefetch_steps<TK, 2>(d) : pv_prefetch_steps<TK>(d);
  if constexpr (grouped_values) value_steps = Values::prefetch_steps(d);
  const size_t pf_steps = std::max<size_t>(1, S * (Scores::prefetch_steps(d) + value_steps + softmax_prefetch_steps<V>));
  // The tile in hand, and the tile pf_ahead keys' worth of tiles ahead of it
  // in the same order (on past t1, into the keys the next chunk reads).
  const auto head_last = [&](size_t h) { return keys_seen(limits + h * group, group, t0, t1).last; };
  const size_t prefetch_end = horizon;  // a copy: clang 14 cannot capture a structured binding
  const auto all_keys = [prefetch_end](size_t) { return prefetch_end; };
  head_walk<decltype(head_last)> walk(kv.block_tokens, heads, TT, t0, last, head_last);
  head_walk<decltype(all_keys)> ahead(kv.block_tokens, heads, TT, t0, horizon, all_keys);
  for (size_t i = 0; i < pf_ahead / TT && !ahead.done; ++i, ahead.next())
    prefetch_kv(kv, kv_head + ahead.head, ahead.t, ahead.n);
  prefetch_cursor pf;
  out_row_prefetch out_pf(V::vnni ? kv.out_rows : nullptr, rows, d, ((last - t0 + TT - 1) / TT) * ((rows + 3) / 4));
  for (; !walk.done; walk.next()) {
    const size_t h = walk.head, t = walk.t, n = walk.n;
    const size_t head_row = h * group;
    const Scores scores = all_rows.rows_of(head_row, group);
    const size_t* const limits_h = limits + head_row;
    float* const m_h = m + head_row;
    float* const l_h = l + head_row;
    float* const acc_h = acc + head_row * d;
    const kv_position at = locate(kv, kv_head + h, t);
    const size_t subs = (n + TK - 1) / TK;  // sub-tiles holding keys
    size_t sub_keys[S];
    for (size_t s = 0; s < S; ++s) sub_keys[s] = s < subs ? std::min(TK, n - s * TK) : 0;
    const unsigned char* kp = at.k;
    const unsigned char* vp = at.v;
    const size_t slot = t % kv.block_tokens;
    if constexpr (integer_values && S == decode_subtiles<V>) {
      // Rows that all see a whole tile starting a group: q8_decode_tile, a
      // group of up to four rows at a time (the same bits, fewer
      // instructions). The first group's call asks for the next tile's lines
      // where that tile is whole too (its rows in one run), as the cursor
      // asks in the first group's steps; else the cursor asks for them now,
      // at once.
      bool all_see = n == TT && slot % kv_group_tokens == 0;
      for (size_t r = 0; all_see && r < group; ++r) all_see = limits_h[r] >= t + n;
      if (all_see) {
        const char* k_ask = nullptr;
        const char* v_ask = nullptr;
        if (!ahead.done && ahead.n == TT) {
          const kv_position next = locate(kv, kv_head + ahead.head, ahead.t);
          k_ask = reinterpret_cast<const char*>(next.k);
          v_ask = reinterpret_cast<const char*>(next.v);
        } else if (!ahead.done) {
          pf.aim(kv, kv_head + ahead.head, ahead.t, ahead.n, horizon, 1);
          pf.rest();
        }
        ahead.next();
        const auto* const rounded = scores.rounded_rows();  // q8_query_block (attention_q8.hpp)
        const size_t nb = d / qk8_0;
        for (size_t r0 = 0; r0 < group; r0 += 4) {
          out_pf.step();
          with_group_rows(group - r0, [&]<size_t R>() __attribute__((always_inline)) {
            q8_decode_tile<V>::template run<R>(rounded + r0 * nb, d, kp, vp, score_scale, m_h + r0, l_h + r0,
                                               acc_h + r0 * d, r0 == 0 ? k_ask : nullptr,
                                               r0 == 0 ? v_ask : nullptr);
          });
        }
        continue;
      }
    }
    if (ahead.done) pf.idle();  // nothing left to ask for
    else pf.aim(kv, kv_head + ahead.head, ahead.t, ahead.n, horizon, pf_steps);
    ahead.next();
    // Rows before the first that sees a sub-tile see none of it (causal
    // prefill's rows see more keys the later they come): not scored. A row
    // blind to a sub-tile is blind to the later ones too, so the search goes on
    // from where the last sub-tile's stopped.
    size_t first = 0;
    for (size_t s = 0; s < subs; ++s) {
      while (first < group && limits_h[first] <= t + s * TK) ++first;
      scores.tile(kp + s * TK * kv.k_row_bytes, kv.k_row_bytes, slot + s * TK, sub_keys[s], first / 4 * 4,
                  tile_scores + s * group * TK, pf);
      if constexpr (grouped_values)
        values.load(vp + s * TK * kv.v_row_bytes, kv.v_row_bytes, slot + s * TK, sub_keys[s], s);
    }
    size_t v_stride = kv.v_row_bytes;
    if constexpr (VF != format::f32) {
      if (v_convert) {
        dequantize_kv_rows<V, VF>(kv_side::value, vp, slot, kv.v_row_bytes, n, vbuf, d);
        vp = reinterpret_cast<const unsigned char*>(vbuf);
        v_stride = d * sizeof(float);
      }
    }
    for (size_t r0 = 0; r0 < group; r0 += 4) {
      const size_t rb = std::min<size_t>(4, group - r0);
      size_t visible[4];
      size_t group_keys = 0;  // the most keys of the tile any of the four rows sees: P . V goes no further
      for (size_t j = 0; j < 4; ++j) {
        const size_t r = r0 + std::min(j, rb - 1);
        visible[j] = j < rb && limits_h[r] > t ? std::min(n, limits_h[r] - t) : 0;
        group_keys = std::max(group_keys, visible[j]);
      }
      if (group_keys == 0) continue;
      out_pf.step();
      // The rows' scaled scores (-inf past what each row sees), their
      // tile maxima and new running maxima in one vector each, then p =
      // exp(score - max) (2^ in log2 units) on the visible lanes (0
      // elsewhere, and for rows that see none of the tile: they stay as
      // they are). Past rb the four-wide maxima and sums are padding: no
      // scores read, no weights computed.
      constexpr float minus_inf = -std::numeric_limits<float>::infinity();
      fvec sc[4][S], top[4];
      size_t seen[4][S];  // lanes of sub-tile s row j sees; none in a sub-tile past n (its scores are stale)
      alignas(16) float old_m[4], old_l[4];
      for (size_t j = 0; j < 4; ++j) {
        if constexpr (spread_asks<V>)  // S steps a row, four rows whatever rb (the count pf_steps plans)
          for (size_t s = 0; s < S; ++s) pf.step();
        if (j >= rb) {  // padding of the four-wide maxima and sums below: no scores, no weights
          // sc and seen are not read past rb; set so that GCC's
          // -Wmaybe-uninitialized (-Werror) can see them written.
          for (size_t s = 0; s < S; ++s) {
            seen[j][s] = 0;
            sc[j][s] = V::set1f(minus_inf);
          }
          top[j] = V::set1f(minus_inf);
          old_m[j] = old_l[j] = 0.0f;
          continue;
        }
        const size_t r = r0 + j;
        for (size_t s = 0; s < S; ++s) {
          seen[j][s] = visible[j] > s * TK ? std::min(TK, visible[j] - s * TK) : 0;
          sc[j][s] = ops::fill_past(V::mul(V::loadf(tile_scores + (s * group + r) * TK), V::set1f(score_scale)),
                                    seen[j][s], minus_inf);
        }
        top[j] = sc[j][0];
        for (size_t s = 1; s < S; ++s) top[j] = V::maxf(top[j], sc[j][s]);
        old_m[j] = visible[j] ? m_h[r] : 0.0f;
        old_l[j] = visible[j] ? l_h[r] : 0.0f;
      }
      const __m128 prev = _mm_load_ps(old_m);
      const __m128 next = _mm_max_ps(prev, ops::max_each(top[0], top[1], top[2], top[3]));
      alignas(16) float new_m[4];
      _mm_store_ps(new_m, next);
      fvec row_sum[4];
      for (size_t j = 0; j < 4; ++j) {
        row_sum[j] = V::zero();
        if constexpr (spread_asks<V>)  // S steps a row, four rows whatever rb (the count pf_steps plans)
          for (size_t s = 0; s < S; ++s) pf.step();
        if (j >= rb) continue;  // P . V reads the rb real rows' weights alone
        for (size_t s = 0; s < S; ++s) {
          // exp(-inf - max) is 0 on the lanes fill_past set.
          const fvec e = softmax_exp(V::sub(sc[j][s], V::set1f(new_m[j])));
          const fvec w = V::keep_first(e, seen[j][s]);
          V::store(p[j] + s * TK, w);
          row_sum[j] = V::addf(row_sum[j], w);
        }
      }
      const __m128 total = ops::sum_each(row_sum[0], row_sum[1], row_sum[2], row_sum[3]);
      // shrink = exp(old max - new max): 1 for every row whose maximum stayed
      // (the common case once a few tiles are in), ~1e-38 on a row's first
      // tile (times zeros), 1 for rows that see nothing.
      const bool rescale = _mm_movemask_ps(_mm_cmplt_ps(prev, next)) != 0;
      if (rescale) V::store(shrink, softmax_exp(ops::from4(_mm_sub_ps(prev, next))));
      else V::store(shrink, V::set1f(1.0f));
      const float* rescaled = rescale ? shrink : nullptr;
      alignas(16) float sums[4];
      _mm_store_ps(sums, _mm_add_ps(_mm_mul_ps(_mm_load_ps(old_l), _mm_load_ps(shrink)), total));
      for (size_t j = 0; j < rb; ++j) {
        if (!visible[j]) continue;
        l_h[r0 + j] = sums[j];
        m_h[r0 + j] = new_m[j];
      }
      float* out[4];
      for (size_t j = 0; j < rb; ++j) out[j] = acc_h + (r0 + j) * d;
      // P . V for the rb rows at their own count (with_group_rows).
      with_group_rows(rb, [&]<size_t R>() __attribute__((always_inline)) {
        if constexpr (grouped_values) {
          values.template accumulate<R>(out, rescaled, &p[0][0], TT, group_keys, pf);
        } else {
          // Values as they lie (f32, f16), or converted to f32 in vbuf above.
          constexpr format in_place = VF == format::f16 ? format::f16 : format::f32;
          const weight_view w{&p[0][0], TT, 1};
          if (v_convert) pv_float<V, format::f32, R>(out, rescaled, shrink, w, group_keys, vp, v_stride, d, rb, pf);
          else pv_float<V, in_place, R>(out, rescaled, shrink, w, group_keys, vp, v_stride, d, rb, pf);
        }
      });
    }
    pf.rest();
  }
  if constexpr (log2_units)
    for (size_t r = 0; r < rows; ++r) m[r] *= ln_2;
}

/// Prefill with float scores: the query rows go V::lanes at a time in the
/// lanes of one vector (lane r = row r of a block of rows), so each key's
/// score for the whole block is one chain of d broadcast-key FMAs against the
/// transposed, pre-scaled queries: no reduction across lanes, and the online
/// softmax (maxima, exp, sums, rescale) runs lane by lane, once per tile for
/// the block. K and V tiles are converted to f32 once (unless f32) and shared
/// by every block; P . V takes the weights key-major from the same tile,
/// four rows at a time (pv_float). Each row's arithmetic is the same whatever
/// rows share its block, so results do not depend on how rows are grouped
/// into calls.
/// A tile is row_lanes_parts<V> parts of V::lanes keys: the scores go one
/// part at a time (V::lanes FMA chains), the softmax and P . V over the whole
/// tile. The tiles run outermost, so each block's accumulator rows come from
/// L2 for every tile; on 256-bit vectors four parts, 32 keys, so that P . V
/// loads, rescales and stores them once per 32 keys, not 8 (f16 prefill of
/// 512 tokens on Zen 3, one thread, fastest runs: 0.84 of the time with 32
/// keys, 0.95-1.03 with 16, 0.95 with 64; docs/attention.md). 512-bit
/// vectors keep one part of 16 keys: not measured there.
template <class V>
inline constexpr size_t row_lanes_parts = V::lanes == 8 ? 4 : 1;

template <class V, format KF, format VF>
void attention_row_lanes(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                         const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l, float* acc) {
  using ops = attention_vec<V>;
  using fvec = typename V::fvec;
  constexpr size_t R = V::lanes, TK = V::lanes, H = row_lanes_parts<V>, TT = H * TK;
  constexpr float minus_inf = -std::numeric_limits<float>::infinity();
  const size_t d = kv.head_dim;
  const auto [last, horizon] = keys_seen(limits, rows, t0, t1);
  if (last == t0) return;
  const size_t blocks = (rows + R - 1) / R;
  attention_buffers& buffers = attention_scratch();
  // Per block: d x R transposed queries, then R maxima and R sums; then one
  // tile's weights (TT x R, key-major), the block's rescale factors and the
  // tile's keys, transposed a part at a time.
  buffers.row_lanes.resize(blocks * (d + 2) * R + TT * R + R + d * TT);
  float* qt = buffers.row_lanes.data();
  float* mp = qt + blocks * d * R;
  float* lp = mp + blocks * R;
  float* pt = lp + blocks * R;
  float* shrink = pt + TT * R;
  float* kt = shrink + R;  // part h: kt[h * d * TK + c * TK + i] = key h * TK + i, column c
  // The query rows transposed a block at a time, then scaled.
  for (size_t blk = 0; blk < blocks; ++blk) {
    const float* src[R];  // padding lanes repeat the last row (and see no key)
    for (size_t r = 0; r < R; ++r) src[r] = q_rows[std::min(blk * R + r, rows - 1)];
    float* q = qt + blk * d * R;
    transpose_rows<V>(src, d, q);
    for (size_t c = 0; c < d; ++c) V::store(q + c * R, V::mul(V::loadf(q + c * R), V::set1f(scale)));
  }
  for (size_t r = 0; r < blocks * R; ++r) {
    mp[r] = r < rows ? m[r] : minus_inf;
    lp[r] = r < rows ? l[r] : 0.0f;
  }
  float* kbuf = nullptr;
  float* vbuf = nullptr;
  if constexpr (KF != format::f32) {
    buffers.keys.resize(TT * d);
    kbuf = buffers.keys.data();
  }
  if constexpr (VF != format::f32) {
    buffers.values.resize(TT * d);
    vbuf = buffers.values.data();
  }
  const size_t groups = (rows + 3) / 4;
  const size_t pf_steps = std::max<size_t>(1, groups * H * pv_prefetch_steps<TK>(d));
  prefetch_kv(kv, kv_head, t0, std::min(last, t0 + 2 * TT) - t0);
  prefetch_cursor pf;
  alignas(64) float vis[R];
  for (size_t t = t0; t < last;) {
    const kv_position at = locate(kv, kv_head, t);
    const size_t n = std::min({TT, at.in_block, last - t});
    const size_t parts = (n + TK - 1) / TK;  // parts holding keys
    const unsigned char* kp = at.k;
    const unsigned char* vp = at.v;
    const size_t slot = t % kv.block_tokens;
    pf.aim(kv, kv_head, t + 2 * TT, TT, horizon, pf_steps);
    // The tile's keys in f32, transposed a part at a time (keys past n repeat
    // the last one: their scores are masked).
    const float* key[TT];
    if constexpr (KF == format::f32) {
      for (size_t i = 0; i < TT; ++i) key[i] = reinterpret_cast<const float*>(kp + std::min(i, n - 1) * kv.k_row_bytes);
    } else {
      dequantize_kv_rows<V, KF>(kv_side::key, kp, slot, kv.k_row_bytes, n, kbuf, d);
      for (size_t i = 0; i < TT; ++i) key[i] = kbuf + std::min(i, n - 1) * d;
    }
    for (size_t h = 0; h < parts; ++h) transpose_rows<V>(key + h * TK, d, kt + h * d * TK);
    size_t v_stride = kv.v_row_bytes;
    if constexpr (VF != format::f32) {
      dequantize_kv_rows<V, VF>(kv_side::value, vp, slot, kv.v_row_bytes, n, vbuf, d);
      vp = reinterpret_cast<const unsigned char*>(vbuf);
      v_stride = d * sizeof(float);
    }
    for (size_t blk = 0; blk < blocks; ++blk) {
      // Keys of the tile each row sees: lanes compare it with the key index.
      float seen = 0.0f;
      for (size_t r = 0; r < R; ++r) {
        const size_t row = blk * R + r;
        vis[r] = row < rows && limits[row] > t ? static_cast<float>(std::min(n, limits[row] - t)) : 0.0f;
        seen = std::max(seen, vis[r]);
      }
      if (seen == 0.0f) continue;
      const fvec visible = V::loadf(vis);
      // Scores: lane r of s[i] = q_r . key i (scaled), one FMA chain per key
      // of a part holding keys; a part no row sees is not scored (masked
      // below).
      fvec s[TT];
      const float* q = qt + blk * d * R;
      for (size_t h = 0; h < parts; ++h) {
        fvec a[TK];
        #pragma GCC unroll 16
        for (size_t i = 0; i < TK; ++i) a[i] = V::zero();
        if (static_cast<float>(h * TK) < seen) {
          const float* k = kt + h * d * TK;
          for (size_t c = 0; c < d; ++c) {
            const fvec qc = V::loadf(q + c * R);
            #pragma GCC unroll 16
            for (size_t i = 0; i < TK; ++i) a[i] = V::fmadd(qc, V::set1f(k[c * TK + i]), a[i]);
          }
        }
        #pragma GCC unroll 16
        for (size_t i = 0; i < TK; ++i) s[h * TK + i] = a[i];
      }
      // Online softmax, lane by lane: keys a row does not see score -inf and weigh 0.
      const fvec old_m = V::loadf(mp + blk * R);
      fvec mx = V::set1f(minus_inf);
      // Parts past the tile's keys (a cache block's end) are left out.
      for (size_t h = 0; h < parts; ++h) {
        #pragma GCC unroll 16
        for (size_t i = h * TK; i < (h + 1) * TK; ++i) {
          s[i] = ops::select_gt(visible, V::set1f(static_cast<float>(i)), s[i], V::set1f(minus_inf));
          mx = V::maxf(mx, s[i]);
        }
      }
      const fvec new_m = V::maxf(old_m, mx);
      // A row that has seen no key yet keeps max -inf; its weights and factor
      // are taken against 0 instead (0 weights, a factor on zeros).
      const fvec base = ops::select_gt(new_m, V::set1f(minus_inf), new_m, V::zero());
      fvec sum = V::zero();
      for (size_t h = 0; h < parts; ++h) {
        #pragma GCC unroll 16
        for (size_t i = h * TK; i < (h + 1) * TK; ++i) {
          const fvec p = ops::select_gt(visible, V::set1f(static_cast<float>(i)),
                                        exp_nonpositive<V>(V::sub(s[i], base)), V::zero());
          sum = V::addf(sum, p);
          V::store(pt + i * R, p);
        }
      }
      const fvec factor = exp_nonpositive<V>(V::sub(old_m, base));
      V::store(shrink, factor);
      V::store(lp + blk * R, V::fmadd(V::loadf(lp + blk * R), factor, sum));
      V::store(mp + blk * R, new_m);
      const float* rescaled = ops::any_lt(old_m, new_m) ? shrink : nullptr;
      // P . V, four rows at a time (rows past the end alias the last real one).
      for (size_t r0 = 0; r0 < R && blk * R + r0 < rows; r0 += 4) {
        const size_t first = blk * R + r0, rb = std::min<size_t>(4, rows - first);
        float* out[4];
        for (size_t j = 0; j < 4; ++j) out[j] = acc + (first + std::min(j, rb - 1)) * d;
        pv_float<V, format::f32>(out, rescaled ? rescaled + r0 : nullptr, shrink + r0, weight_view{pt + r0, 1, R},
                                 n, vp, v_stride, d, rb, pf);
      }
    }
    pf.rest();
    t += n;
  }
  for (size_t r = 0; r < rows; ++r) {
    m[r] = mp[r];
    l[r] = lp[r];
  }
}

/// attention_fn with float scores: keys in f32, f16 (read in place), q8_0 or
/// q4_0 (dequantized per tile); values likewise. Any head_dim (vector loops
/// with scalar tails).
template <class V, format KF, format VF>
void attention_online(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                      const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l, float* acc) {
  if (kv.rows_per_head(rows) > attention_decode_rows)  // prefill: one KV head at a time
    return attention_per_head(kv, kv_head, q_rows, rows, limits, t0, t1, scale, m, l, acc,
                              attention_row_lanes<V, KF, VF>);
  attention_tiles<V, float_key_scores<V, KF>, VF, decode_subtiles<V>>(kv, kv_head, q_rows, rows, limits, t0, t1,
                                                                            scale, m, l, acc);
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
