// The paged KV cache and attention over it: storage (quantize on write, read
// back, block tables, pool limits, errors that change nothing) and paged
// attention against the f32 oracle over sequence lengths that cross block
// boundaries, GQA ratios, head sizes, mixed batches and thread counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "dispatch/registry.hpp"
#include "kernels/ref/attention.hpp"
#include "kernels/ref/quant.hpp"
#include "tester/tester.hpp"

namespace lowbit::test {
namespace {

kv_cache_config config(format kf, format vf, size_t heads, size_t dim, size_t block_tokens, size_t max_blocks,
                       size_t layers = 1) {
  kv_cache_config c;
  c.n_layers = layers;
  c.n_kv_heads = heads;
  c.head_dim = dim;
  c.k_format = kf;
  c.v_format = vf;
  c.block_tokens = block_tokens;
  c.max_blocks = max_blocks;
  return c;
}

/// What the cache should hold for one row: quantize then dequantize with the oracle.
std::vector<float> round_trip(format f, const float* x, size_t n) {
  std::vector<float> out(n);
  if (f == format::f32) {
    std::memcpy(out.data(), x, n * sizeof(float));
    return out;
  }
  std::vector<unsigned char> q(row_bytes(traits(f), n));
  ref::quantize_row(f, x, q.data(), n);
  ref::dequantize_row(f, q.data(), out.data(), n);
  return out;
}

TEST(KvCache, AppendQuantizesOnWriteAndReadsBack) {
  for (auto [kf, vf] : {std::pair{format::f32, format::f32}, {format::f16, format::f16}, {format::q8_0, format::q8_0},
                        {format::f16, format::q4_0}, {format::q8_0, format::q4_0}}) {
    SCOPED_TRACE(std::string(traits(kf).name) + "/" + std::string(traits(vf).name));
    const size_t heads = 3, dim = 64, row = heads * dim;
    KvCache cache(config(kf, vf, heads, dim, 16, 8, 2));
    const seq_id s = cache.create_sequence();
    const auto k = make_data(40 * row, data_kind::gaussian, 1), v = make_data(40 * row, data_kind::outliers, 2);
    // Appends of 1, 15 and 24 tokens: within a block, up to the edge, across two.
    size_t done = 0;
    for (size_t n : {1, 15, 24}) {
      cache.append(s, 1, k.data() + done * row, v.data() + done * row, n);
      done += n;
      EXPECT_EQ(cache.length(s, 1), done);
      EXPECT_EQ(cache.used_blocks(), (done + 15) / 16);
    }
    EXPECT_EQ(cache.length(s, 0), 0u) << "layers are independent";
    std::vector<float> kr(done * row), vr(done * row);
    cache.read(s, 1, 0, done, kr.data(), vr.data());
    for (size_t t = 0; t < done; ++t)
      for (size_t h = 0; h < heads; ++h) {
        const auto ke = round_trip(kf, k.data() + t * row + h * dim, dim);
        const auto ve = round_trip(vf, v.data() + t * row + h * dim, dim);
        ASSERT_EQ(std::memcmp(ke.data(), kr.data() + t * row + h * dim, dim * sizeof(float)), 0) << "K token " << t;
        ASSERT_EQ(std::memcmp(ve.data(), vr.data() + t * row + h * dim, dim * sizeof(float)), 0) << "V token " << t;
      }
    // A sub-range reads the same values.
    std::vector<float> k2(3 * row), v2(3 * row);
    cache.read(s, 1, 14, 17, k2.data(), v2.data());
    EXPECT_EQ(std::memcmp(k2.data(), kr.data() + 14 * row, k2.size() * sizeof(float)), 0);
  }
}

TEST(KvCache, GrowsWithoutMovingAndSharesThePool) {
  KvCache cache(config(format::f16, format::f16, 2, 32, 4, 10));
  const seq_id a = cache.create_sequence(), b = cache.create_sequence();
  const auto x = make_data(64 * 64, data_kind::gaussian, 3);
  cache.append(a, 0, x.data(), x.data(), 4);
  const auto before = cache.view(a, 0);
  cache.append(b, 0, x.data(), x.data(), 9);  // interleaved growth of two sequences
  cache.append(a, 0, x.data(), x.data(), 13);
  const auto after = cache.view(a, 0);
  ASSERT_EQ(after.blocks.size(), 5u);
  EXPECT_EQ(before.blocks[0], after.blocks[0]) << "a block moved when the sequence grew";
  EXPECT_EQ(cache.used_blocks(), 5u + 3u);
  EXPECT_EQ(cache.free_blocks(), 2u);
  // The pool is exhausted: the append fails and changes nothing.
  try {
    cache.append(b, 0, x.data(), x.data(), 12);
    FAIL() << "append past the pool succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), status::out_of_memory);
    EXPECT_NE(std::string(e.what()).find("free"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cache.length(b, 0), 9u);
  EXPECT_EQ(cache.used_blocks(), 8u);
  // Freeing a returns its blocks; b can now grow into them.
  cache.free_sequence(a);
  EXPECT_EQ(cache.used_blocks(), 3u);
  EXPECT_THROW(cache.length(a, 0), Error);
  cache.append(b, 0, x.data(), x.data(), 12);
  EXPECT_EQ(cache.length(b, 0), 21u);
  EXPECT_EQ(cache.used_blocks(), 6u);
  const seq_id c = cache.create_sequence();
  EXPECT_EQ(c, a) << "a freed id is reused";
  EXPECT_EQ(cache.length(c, 0), 0u);
}

TEST(KvCache, BadInputIsAClearErrorAndChangesNothing) {
  auto expect_error = [](auto fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([] { KvCache c(config(format::q8_0, format::f16, 2, 80, 16, 4)); }, "head_dim=80");
  expect_error([] { KvCache c(config(format::q4_0, format::f16, 2, 64, 16, 4)); }, "k_format");
  expect_error([] { KvCache c(config(format::f16, format::q4_k, 2, 256, 16, 4)); }, "v_format");
  expect_error([] { KvCache c(config(format::f16, format::f16, 0, 64, 16, 4)); }, "positive");
  expect_error([] { KvCache c(config(format::f16, format::f16, 2, 64, 16, 0)); }, "max_blocks");
  KvCache cache(config(format::f16, format::f16, 2, 64, 16, 4, 2));
  const seq_id s = cache.create_sequence();
  const auto x = make_data(4 * 128, data_kind::gaussian, 4);
  expect_error([&] { cache.append(s, 2, x.data(), x.data(), 1); }, "layer 2");
  expect_error([&] { cache.append(s + 7, 0, x.data(), x.data(), 1); }, "no live sequence");
  expect_error([&] { cache.append(s, 0, x.data(), x.data(), 1, 64); }, "strides");
  expect_error([&] { cache.append(s, 0, nullptr, x.data(), 1); }, "null");
  EXPECT_EQ(cache.length(s, 0), 0u);
  EXPECT_EQ(cache.used_blocks(), 0u);
  cache.append(s, 0, x.data(), x.data(), 2);
  std::vector<float> k(3 * 128, poison_value()), v(3 * 128, poison_value());
  expect_error([&] { cache.read(s, 0, 1, 3, k.data(), v.data()); }, "outside");
  EXPECT_TRUE(std::all_of(k.begin(), k.end(), is_poison));
}

/// One sequence of a paged-attention test: its f32 K/V (all tokens), its
/// queries (the last n_q tokens) and the output buffer (strided, poisoned).
struct test_sequence {
  size_t length, n_q;
  std::vector<float> k, v, q, out;
};

/// The kernel dispatch serves (kf, vf) with.
std::string attention_kernel(format kf, format vf) {
  return selected_kernel("attention." + std::string(traits(kf).name) + "_" + std::string(traits(vf).name));
}

/// Whether dispatch serves (kf, vf) with a kernel that rounds the query rows
/// to q8_0 and computes QKᵀ in integers on some path: the VNNI and AMX
/// tiers' q8_0-K kernels (the AMX one on its decode path; its prefill:
/// bf16_prefill), and the avx2 and avx512 tiers', which do without VNNI (the
/// sign trick; avx512's on its decode path only: integer_decode_only).
bool rounds_query(format kf, format vf) { return kf == format::q8_0 && integer_qk_kernel(attention_kernel(kf, vf)); }

/// Whether that kernel computes in integers on its decode path only (at most
/// attention_decode_rows = 8 query rows per KV head) and its prefill in f32
/// on the values as held: the avx512 tier's q8_0-K kernels.
bool integer_decode_only(format kf, format vf) {
  return kf == format::q8_0 && integer_qk_decode_only(attention_kernel(kf, vf));
}

/// Whether a call with `rows_per_head` query rows per KV head rounds the
/// query rows to q8_0 (rounds_query, less avx512's prefill path).
bool rounds_query_on(format kf, format vf, size_t rows_per_head) {
  return kf == format::q8_0 && integer_qk_on(attention_kernel(kf, vf), rows_per_head);
}

/// The codes of the u8 weights of that kernel's integer P . V: 255, or 127 on
/// the avx2 and avx512 tiers (vpmaddubsw would saturate on 8-bit weights).
double weight_levels(format kf, format vf) {
  const std::string kernel = attention_kernel(kf, vf);
  return kernel.ends_with("__avx2") || kernel.ends_with("__avx512") ? 127.0 : 255.0;
}

/// Whether that kernel's prefill path (more than attention_decode_rows = 8
/// query rows per KV head) computes both products in f32 on the tile unit
/// over operands rounded to bf16: the query rows and the keys q d_k for
/// QKᵀ, the weights and the values q d_v for P . V. The amx tier's q8_0/q8_0
/// kernel; its decode steps are the avx512_vnni kernel's (a q8_0 query, u8
/// weights).
bool bf16_prefill(format kf, format vf) {
  return kf == format::q8_0 && vf == format::q8_0 && attention_kernel(kf, vf).ends_with("__amx");
}

/// Whether a call with `rows_per_head` query rows per KV head takes that path.
bool on_bf16_prefill(format kf, format vf, size_t rows_per_head) { return bf16_prefill(kf, vf) && rows_per_head > 8; }

/// Whether that kernel computes P . V in integers, rounding the softmax
/// weights to u8, on some path: the VNNI tiers' q8_0/q8_0 kernels, the amx
/// tier's on its decode steps (bf16_prefill implies it), and the avx2
/// tier's and the avx512 tier's decode path (to 7 bits: weight_levels).
bool rounds_weights(format kf, format vf) { return vf == format::q8_0 && rounds_query(kf, vf); }

/// Whether a call with `rows_per_head` query rows per KV head does.
bool rounds_weights_on(format kf, format vf, size_t rows_per_head) {
  return vf == format::q8_0 && rounds_query_on(kf, vf, rows_per_head);
}

/// x rounded to bf16 and back: to nearest, ties to even, as vcvtne2ps2bf16
/// rounds (finite, normal inputs).
std::vector<float> round_trip_bf16(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], sizeof u);
    u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
    std::memcpy(&out[i], &u, sizeof u);
  }
  return out;
}

/// The query rows as the kernel serving (kf, vf) rounds them in a call with
/// `rows_per_head` rows per KV head and the attention scale `scale`: on the
/// amx prefill path times the score scale (scale log2 e, as the kernels take
/// it in f32), to bf16, then divided by it back (an f32 rounding); to q8_0 on
/// the integer kernels' other paths (not avx512's prefill); not at all
/// elsewhere.
std::vector<float> held_query(format kf, format vf, const std::vector<float>& q, size_t rows_per_head, float scale) {
  if (on_bf16_prefill(kf, vf, rows_per_head)) {
    const float score_scale = scale * std::numbers::log2e_v<float>;  // as the kernels' log2_e is defined
    std::vector<float> scaled(q.size());
    for (size_t i = 0; i < q.size(); ++i) scaled[i] = q[i] * score_scale;
    std::vector<float> held = round_trip_bf16(scaled);
    for (float& x : held) x /= score_scale;
    return held;
  }
  return rounds_query_on(kf, vf, rows_per_head) ? round_trip(format::q8_0, q.data(), q.size()) : q;
}

/// Runs paged attention for `seqs` in one batched call and checks each
/// sequence twice: against the oracle on the values the cache holds (only
/// f32 rounding may differ: tight), and against the oracle on the original
/// f32 values, within `format_nmse` (the cost of the K/V formats). `scale`
/// as attention() takes it (0: 1/sqrt(dim)). The bounds on errors that
/// reach the output through the scores (the keys' rounding: the formats',
/// and bf16's on the amx prefill path) are set for 1/sqrt(dim) and grow
/// with the scale: a score's error is the key's times the scale, so they
/// are multiplied by (scale sqrt(dim))^2 for a larger one.
void check_paged(format kf, format vf, size_t heads, size_t kv_heads, size_t dim, size_t block_tokens,
                 const std::vector<std::pair<size_t, size_t>>& shapes, double format_nmse, uint32_t seed,
                 float scale = 0.0f) {
  const size_t kv_row = kv_heads * dim, q_row = heads * dim, pad = 3;
  const double sharper = std::max(1.0, static_cast<double>(scale) * scale * static_cast<double>(dim));
  size_t blocks = 0;
  for (auto [len, nq] : shapes) blocks += (len + block_tokens - 1) / block_tokens;
  KvCache cache(config(kf, vf, kv_heads, dim, block_tokens, blocks + 1));
  std::vector<test_sequence> seqs;
  std::vector<paged_query> queries;
  for (auto [len, nq] : shapes) {
    test_sequence t{len, nq, make_data(len * kv_row, data_kind::gaussian, seed++),
                    make_data(len * kv_row, data_kind::gaussian, seed++),
                    make_data(nq * q_row, data_kind::gaussian, seed++), std::vector<float>(nq * (q_row + pad) + 4, poison_value())};
    seqs.push_back(std::move(t));
  }
  for (auto& t : seqs) {
    const seq_id id = cache.create_sequence();
    // Prompt and generated tokens arrive in pieces: 1 token, then the rest.
    cache.append(id, 0, t.k.data(), t.v.data(), 1);
    if (t.length > 1) cache.append(id, 0, t.k.data() + kv_row, t.v.data() + kv_row, t.length - 1);
    paged_query pq;
    pq.seq = id;
    pq.q = t.q.data();
    pq.n_q = t.n_q;
    pq.out = t.out.data();
    pq.out_stride = q_row + pad;
    queries.push_back(pq);
  }
  attention(cache, 0, heads, queries.data(), queries.size(), scale);

  for (size_t i = 0; i < seqs.size(); ++i) {
    const test_sequence& t = seqs[i];
    SCOPED_TRACE("sequence " + std::to_string(i) + ": length " + std::to_string(t.length) + ", n_q " +
                 std::to_string(t.n_q));
    attention_shape s = dense_shape(t.n_q, t.length, heads, kv_heads, dim, true);
    if (scale != 0.0f) s.scale = scale;
    std::vector<float> held_k(t.length * kv_row), held_v(t.length * kv_row);
    cache.read(queries[i].seq, 0, 0, t.length, held_k.data(), held_v.data());
    std::vector<float> want_held(t.n_q * q_row), want_f32(t.n_q * q_row), got(t.n_q * q_row);
    const size_t rows_per_head = t.n_q * (heads / kv_heads);
    const bool amx_prefill = on_bf16_prefill(kf, vf, rows_per_head);
    const std::vector<float> held_q = held_query(kf, vf, t.q, rows_per_head, s.scale);
    ref::attention(s, held_q.data(), held_k.data(), held_v.data(), want_held.data(), 0, heads);
    ref::attention(s, t.q.data(), t.k.data(), t.v.data(), want_f32.data(), 0, heads);
    for (size_t j = 0; j < t.n_q; ++j) {
      std::memcpy(got.data() + j * q_row, t.out.data() + j * (q_row + pad), q_row * sizeof(float));
      for (size_t p = 0; p < pad; ++p) ASSERT_TRUE(is_poison(t.out[j * (q_row + pad) + q_row + p])) << "padding written";
    }
    for (size_t e = t.n_q * (q_row + pad); e < t.out.size(); ++e) ASSERT_TRUE(is_poison(t.out[e])) << "wrote past the end";
    if (amx_prefill) {
      // The amx kernel's prefill path rounds each key q d_k, each value q d_v
      // and each weight to bf16 (the query rows are rounded in held_q too):
      // 8 significant bits, an error uniform in +-half an ulp, variance
      // 2^-14 / 12 times E[1/x^2] = 1/2 of x^2 (mantissas spread over
      // [1, 2)): 3e-6 of a factor's square. P . V's two factors give 6e-6;
      // the key's rounding reaches the output through the scores (a score
      // error of 3e-6 relative, scaled by 1/sqrt(d) and spread by the
      // softmax), about as much again. The weights' 2^y (a degree-3
      // polynomial, 8.6e-5 relative at most) adds about 2% to that. Measured
      // over this sweep: 1.3e-6 to 9.1e-6 (8.9e-6 with degree 4;
      // avx512_vnni's u8 weights on the same sequences, against the oracle
      // on its own q8_0 query: 5.5e-6 to 1.8e-5).
      EXPECT_LE(nmse(got, want_held), 1e-5 + 1e-5 * sharper);
    } else if (rounds_weights_on(kf, vf, rows_per_head)) {
      // Integer P . V rounds each softmax weight to u8 against the largest in
      // its tile and block: an error uniform in +-step/2, step = max w / 255,
      // variance step^2 / 12 = 1.3e-6 of the largest weight's square. The
      // worst case is one dominant key per tile with the others small but not
      // zero: (tile - 1) such errors against one value, NMSE ~4e-5 for a
      // 32-key tile (decode on avx512_vnni; 16 keys on avx2_vnni; the amx
      // kernel's decode steps are avx512_vnni's), twice that for the 64-key
      // tiles of both VNNI tiers' prefill (attention_q8_row_lanes). Measured
      // over this sweep: at most 2.5e-5 (decode), 1.8e-5 (prefill, both
      // tiers). The avx2 tier rounds to 127 codes instead (weight_levels):
      // a step 255/127 times as coarse, its variance and the bound about 4x;
      // measured 1.09e-4 (decode, 32-key tiles) and 1.1e-4 (prefill, the
      // row lanes' 64-key tiles since 1d78cab; 7.4e-5 with the 32-key tiles
      // before); the avx512 tier's decode path rounds as avx2's (its prefill
      // is f32). A systematic error this bound would miss is
      // IntegerAndBf16ValuesAreExactWhenTheWeightsAreEqual's to catch.
      const double coarser = 255.0 / weight_levels(kf, vf);
      EXPECT_LE(nmse(got, want_held), 1e-4 * coarser * coarser);
    } else {
      // f32 online softmax against the double oracle on identical inputs.
      for (size_t e = 0; e < got.size(); ++e)
        ASSERT_NEAR(got[e], want_held[e], 2e-5 * (1 + std::fabs(want_held[e]))) << "element " << e;
    }
    EXPECT_LE(nmse(got, want_f32), format_nmse * sharper) << traits(kf).name << "/" << traits(vf).name;
  }
}

// NMSE bounds of the output against attention on the original f32 values,
// from each format's resolution on unit-variance data: f16 keeps 11
// significant bits (relative error <= 2^-11, value NMSE ~1e-7); q8_0 rounds to
// 1/127 of a 32-value block's maximum (~2.5 sigma: value NMSE ~3e-5); q4_0 to
// 1/8 of it (value NMSE ~8e-3). The worst outputs measured over this sweep
// were 1.2e-7 (f16/f16), 7e-5 (q8_0/q8_0) and 8.8e-3 (with q4_0 V); the bounds
// sit 2-3x above, per format, added for K and V.
//
// Kernels that compute QKᵀ in integers (rounds_query) also round the query
// rows to q8_0. A query element's error is then uniform in +-d/2 with d =
// amax/127, amax ~2.5 for 32 unit Gaussians: variance (2.5/127)^2/12 ~3e-5 of
// the element's, the same as a q8_0 key's and independent of it, so each
// score picks up a second error term of the key's size. Measured over this
// sweep: q8_0 K with f32/f16 V went from 4.2e-5 to 7.2e-5, q8_0/q8_0 from
// 7.1e-5 to 1.08e-4, q8_0/q4_0 stayed 8.8e-3 (V dominates). The bound adds
// one more q8_0 term (1e-4) for the query: 2.8x above those. The avx2 tier's
// integer kernel (the sign trick) measured 8.5e-5 with f32/f16 V and 1.64e-4
// for q8_0/q8_0, whose 7-bit weights add to the query's term: 1.8x under.
// (These are the MatchesOracleOverLengthsBlocksAndHeadsOnEveryTier sweep's.)
double format_bound(format kf, format vf) {
  auto one = [](format f) { return f == format::f32 ? 0.0 : f == format::f16 ? 1e-6 : f == format::q8_0 ? 1e-4 : 2e-2; };
  return one(kf) + one(vf) + (rounds_query(kf, vf) ? one(format::q8_0) : 0.0) + 1e-9;
}

TEST(PagedAttention, MatchesOracleOverLengthsBlocksAndHeadsOnEveryTier) {
  const std::vector<std::pair<format, format>> formats = {
      {format::f32, format::f32},  {format::f16, format::f16},  {format::q8_0, format::q8_0}, {format::f16, format::q4_0},
      {format::q8_0, format::q4_0}, {format::q8_0, format::f16}, {format::q8_0, format::f32}};
  for_each_tier([&](isa) {
    for (auto [kf, vf] : formats) {
      SCOPED_TRACE(std::string(traits(kf).name) + "/" + std::string(traits(vf).name));
      // Decode over lengths around the 16-token block and the 256-token split.
      check_paged(kf, vf, 8, 2, 64, 16, {{1, 1}, {15, 1}, {16, 1}, {17, 1}, {255, 1}, {256, 1}, {257, 1}, {600, 1}},
                  format_bound(kf, vf), 100);
      // Prefill (several queries, causal) in a batch with decodes, MQA and MHA.
      // 33 and 130 positions of four heads a KV head leave a last block of
      // 4 and 8 rows past the dispatcher's 32 (amx: 128) positions a task,
      // few enough for a decode path: it joins the block before it, so every
      // position is rounded as the prefill path rounds (held_query). Without
      // that, avx512's 33 fail the element-wise check below; amx's two
      // positions in 130 would stay within its whole-sequence NMSE bound,
      // but its tasks of 130 positions (past the 128 it stages) are checked.
      check_paged(kf, vf, 4, 1, 128, 16, {{33, 33}, {40, 7}, {1, 1}, {70, 1}, {160, 130}}, format_bound(kf, vf), 200);
      check_paged(kf, vf, 4, 4, 64, 32, {{50, 17}, {31, 1}}, format_bound(kf, vf), 300);
      // Decode with more query rows per KV head than a decode kernel takes
      // (16 heads on one): the prefill kernels run on the decode's chunks of
      // keys and leave their state for the caller's merge, where a prefill
      // task has them write its output rows themselves (attn_kv::finished).
      check_paged(kf, vf, 16, 1, 64, 16, {{700, 1}, {33, 1}, {1, 1}}, format_bound(kf, vf), 350);
    }
    // Decode kernels take a KV head's query rows four at a time and the rest
    // at their own count (1-3 rows: with_group_rows): every count alone (1
    // to 3 query heads per KV head: multi-head models, SmolLM2's 9 on 3)
    // and after a group of four (5-7, Qwen2's 7 and 6), with two
    // queries of one sequence (causal: its rows see different keys) beside
    // one. f16/q8_0 too: float scores over q8_0 values (q8_value_groups).
    for (auto [kf, vf] : {std::pair{format::f16, format::f16}, {format::q8_0, format::q8_0}, {format::f16, format::q8_0},
                          {format::q8_0, format::f16}, {format::f32, format::q4_0}}) {
      SCOPED_TRACE(std::string(traits(kf).name) + "/" + std::string(traits(vf).name));
      for (size_t group : {1, 2, 3, 5, 6, 7}) {
        SCOPED_TRACE(std::to_string(group) + " query heads per KV head");
        check_paged(kf, vf, 2 * group, 2, 64, 16, {{41, 1}, {290, 1}, {19, 2}}, format_bound(kf, vf), 360 + group);
      }
    }
    // Head sizes that are not a multiple of 32 need f16/f32 caches.
    for (size_t dim : {80, 96}) check_paged(format::f16, format::f16, 6, 2, dim, 16, {{45, 9}, {300, 1}}, 1e-5, 400);
  });
}

TEST(PagedAttention, AnyFiniteScaleMatchesTheOracle) {
  // attention() takes any finite scale. A negative one gives the most
  // weight to the smallest q . k (a kernel that assumed a positive scale,
  // say by taking maxima before scaling, would weigh the wrong end); a tiny
  // one flattens the weights, a large one sharpens them and spreads the
  // scaled scores over far more than 1/sqrt(d) does. Decode and prefill,
  // every tier, held to the oracle as check_paged holds them (its bounds on
  // the keys' rounding grown with the scale).
  const std::vector<std::pair<format, format>> formats = {
      {format::q8_0, format::q8_0}, {format::f16, format::f16}, {format::q8_0, format::f16}};
  for_each_tier([&](isa) {
    for (auto [kf, vf] : formats)
      for (float scale : {-0.3f, -2.5f, 0.01f, 0.9f}) {
        SCOPED_TRACE(std::string(traits(kf).name) + "/" + std::string(traits(vf).name) + " scale " +
                     std::to_string(scale));
        check_paged(kf, vf, 8, 2, 64, 16, {{300, 1}, {90, 40}, {17, 9}}, format_bound(kf, vf), 700, scale);
      }
  });
}

TEST(PagedAttention, GroupedQ8RowsAtAnyBlockSizeAndStart) {
  // q8_0 rows lie in groups of 16 tokens, each head's padded to whole
  // groups (kernels/kv_layout.hpp). Block sizes that are no multiple of 16
  // leave a short last group per block, and let a 256-token decode chunk
  // start inside a group (40 tokens a block: the chunk at 768 starts at lane
  // 8; 7 a block: every chunk starts inside one), where the kernels copy the
  // run out to lane 0 first. 100 a block: a prefill's tiles of 64 keys (more
  // than 8 rows per KV head, integer scores) whole, then cut short at 100.
  const std::vector<std::pair<format, format>> formats = {
      {format::q8_0, format::q8_0}, {format::q8_0, format::f16}, {format::f16, format::q8_0}};
  for_each_tier([&](isa) {
    for (auto [kf, vf] : formats) {
      SCOPED_TRACE(std::string(traits(kf).name) + "/" + std::string(traits(vf).name));
      for (size_t block_tokens : {7, 40, 100})
        check_paged(kf, vf, 8, 2, 64, block_tokens, {{800, 1}, {45, 9}, {130, 20}, {17, 1}}, format_bound(kf, vf),
                    500);
      // Three 32-value blocks per head (head_dim 96).
      check_paged(kf, vf, 4, 2, 96, 16, {{300, 1}, {37, 5}}, format_bound(kf, vf), 600);
    }
  });
}

TEST(PagedAttention, X86TiersComputeQkInIntegersForQ8Keys) {
  // Under each cap, every q8_0-K pair goes to the integer kernel dispatch
  // prefers: amx's for q8_0 values when the cap allows it (its only line),
  // avx512_vnni's when the cap allows it, else avx512's (the sign trick, on
  // its decode path) when the cap allows it, avx2_vnni's only when it is the
  // cap (avx512 outranks it), avx2's (the sign trick) when that is the cap,
  // else the scalar oracle's float kernel.
  const isa_set avail = compiled_isas() & detected_cpu().isas;
  if (!avail.contains(isa::avx2)) GTEST_SKIP() << "no x86 tier here (available: " << to_string(avail) << ")";
  size_t integer_tiers = 0;
  for_each_tier([&](isa cap) {
    const char* integer = cap >= isa::avx512_vnni && avail.contains(isa::avx512_vnni) ? "avx512_vnni"
                          : cap >= isa::avx512 && avail.contains(isa::avx512)          ? "avx512"
                          : cap == isa::avx2_vnni                                      ? "avx2_vnni"
                          : cap == isa::avx2                                           ? "avx2"
                                                                                       : nullptr;
    const bool amx = cap >= isa::amx && avail.contains(isa::amx);
    for (format vf : {format::f32, format::f16, format::q8_0, format::q4_0}) {
      const char* want = amx && vf == format::q8_0 ? "amx" : integer;
      const std::string v(traits(vf).name);
      const std::string kernel = selected_kernel("attention.q8_0_" + v);
      if (want) {
        EXPECT_EQ(kernel, "attn_q8_0_" + v + "__" + want);
        EXPECT_TRUE(rounds_query(format::q8_0, vf)) << kernel;
      } else {
        EXPECT_FALSE(rounds_query(format::q8_0, vf)) << kernel;
      }
    }
    integer_tiers += integer != nullptr;
  });
  // The oracle sweeps above run under the same caps, so they exercise these
  // kernels. Only a walk limited to the scalar tier has none to exercise.
  if (!tiers_under_test().without(isa_set{isa::scalar}).list().empty()) {
    EXPECT_GT(integer_tiers, 0u);
  }
}

TEST(PagedAttention, IntegerAndBf16ValuesAreExactWhenTheWeightsAreEqual) {
  // The NMSE bounds above leave room for the u8 and bf16 roundings, so they
  // would also let a small systematic error through. Here the rounding is
  // exact: every key row is the same (equal scores, every softmax weight 1)
  // and every 32-value block of every value row has the same largest
  // magnitude (one element +-127/128, the rest within +-0.99: the q8_0 scale
  // 2^-7), so each weight times its block scale is the tile maximum and
  // rounds to exactly 255 (u8; 127 on avx2 and avx512), and each value q 2^-7 is exact in bf16 (q
  // has 7 bits). P . V must then match the oracle on the held values to f32
  // rounding, at every length, block crossing and causal row; with two query
  // heads per KV head, and with sixteen on one, where a decode step runs the
  // prefill kernel on its chunks of keys and leaves the rows to the merge.
  size_t checked = 0;
  for (const auto& shape : {std::pair<size_t, size_t>{4, 2}, {16, 1}}) {
    // Plain variables, not a structured binding: the lambda below uses them
    // (Clang 14 cannot capture a binding).
    const size_t heads = shape.first, kv_heads = shape.second;
    SCOPED_TRACE(std::to_string(heads) + " heads on " + std::to_string(kv_heads) + " KV heads");
    const size_t dim = 64, n = 70, q_row = heads * dim, kv_row = kv_heads * dim;
    const auto key = make_data(kv_row, data_kind::gaussian, 31);
    std::vector<float> k(n * kv_row), v = make_data(n * kv_row, data_kind::gaussian, 32);
    for (size_t t = 0; t < n; ++t) std::copy(key.begin(), key.end(), k.begin() + t * kv_row);
    for (size_t i = 0; i < v.size(); i += 32) {
      for (size_t e = i; e < i + 32; ++e) v[e] = std::max(-0.99f, std::min(0.99f, v[e] / 3));
      v[i + (i / 32) % 32] = (i / 32) % 2 ? -127.0f / 128 : 127.0f / 128;
    }
    for_each_tier([&](isa) {
      if (!rounds_weights(format::q8_0, format::q8_0)) return;  // bf16_prefill implies it
      for (auto [nq, block_tokens] : {std::pair<size_t, size_t>{1, 16}, {5, 16}, {5, 100}}) {
        KvCache cache(config(format::q8_0, format::q8_0, kv_heads, dim, block_tokens, 8));
        const seq_id id = cache.create_sequence();
        cache.append(id, 0, k.data(), v.data(), n);
        const auto q = make_data(nq * q_row, data_kind::gaussian, 33);
        std::vector<float> got(nq * q_row), want(nq * q_row), held_k(n * kv_row), held_v(n * kv_row);
        paged_query pq{id, q.data(), nq, got.data(), 0, 0};
        attention(cache, 0, heads, &pq, 1);
        cache.read(id, 0, 0, n, held_k.data(), held_v.data());
        const attention_shape s = dense_shape(nq, n, heads, kv_heads, dim, true);
        const auto held_q = held_query(format::q8_0, format::q8_0, q, nq * (heads / kv_heads), s.scale);
        ref::attention(s, held_q.data(), held_k.data(), held_v.data(), want.data(), 0, heads);
        for (size_t e = 0; e < got.size(); ++e)
          ASSERT_NEAR(got[e], want[e], 2e-5 * (1 + std::fabs(want[e])))
              << "n_q " << nq << ", block " << block_tokens << ", element " << e;
        ++checked;
      }
    });
  }
  if (checked == 0) GTEST_SKIP() << "no VNNI or AMX tier here: no kernel rounds P . V's operands";
}

TEST(PagedAttention, AFreedSequencesValuesDoNotReachTheNextOne) {
  // A block freed by one sequence and taken by the next keeps the first's
  // data past the second's length: here values and keys so large that their
  // q8_0 and f16 scales are infinite. The kernels read whole 16-token groups
  // (their slots past the length meet only zero weights or masked scores),
  // so the cache zeroes a group when its first slot is written: zero times
  // an infinite scale must not get in. Every tier, prefill (20 positions)
  // and decode, against the oracle on what the second sequence holds
  // (without that zeroing the VNNI and AMX tiers give non-finite outputs).
  const size_t heads = 4, kv_heads = 2, dim = 64, kv_row = kv_heads * dim, q_row = heads * dim, n = 20;
  const std::vector<float> huge(64 * kv_row, 1e30f);
  const auto k = make_data(n * kv_row, data_kind::gaussian, 61), v = make_data(n * kv_row, data_kind::gaussian, 62);
  const auto q = make_data(n * q_row, data_kind::gaussian, 63);
  for_each_tier([&](isa) {
    for (auto [kf, vf] : {std::pair{format::q8_0, format::q8_0}, {format::f16, format::f16}, {format::q8_0, format::q4_0}}) {
      SCOPED_TRACE(std::string(traits(kf).name) + "/" + std::string(traits(vf).name));
      KvCache cache(config(kf, vf, kv_heads, dim, 64, 1));
      const seq_id first = cache.create_sequence();
      cache.append(first, 0, huge.data(), huge.data(), 64);
      cache.free_sequence(first);
      const seq_id s = cache.create_sequence();
      cache.append(s, 0, k.data(), v.data(), n);
      std::vector<float> held_k(n * kv_row), held_v(n * kv_row);
      cache.read(s, 0, 0, n, held_k.data(), held_v.data());
      for (size_t nq : {n, size_t{1}}) {
        const attention_shape shape = dense_shape(nq, n, heads, kv_heads, dim, true);
        const std::vector<float> held_q = held_query(kf, vf, q, nq * (heads / kv_heads), shape.scale);
        std::vector<float> got(nq * q_row), want(nq * q_row);
        const float* qq = held_q.data() + (n - nq) * q_row;
        const paged_query pq{s, q.data() + (n - nq) * q_row, nq, got.data(), 0, 0};
        attention(cache, 0, heads, &pq, 1);
        ref::attention(shape, qq, held_k.data(), held_v.data(), want.data(), 0, heads);
        ASSERT_TRUE(std::all_of(got.begin(), got.end(), [](float x) { return std::isfinite(x); })) << "n_q " << nq;
        EXPECT_LE(nmse(got, want), 1e-4) << "n_q " << nq;
      }
    }
  });
}

TEST(PagedAttention, LongContextDecodeAndPrefill) {
  // 4097 tokens: 17 decode chunks, the last one a single token.
  check_paged(format::q8_0, format::q8_0, 8, 2, 64, 64, {{4097, 1}, {4097, 3}}, format_bound(format::q8_0, format::q8_0),
              500);
}

TEST(PagedAttention, PrefillAndDecodeAgree) {
  // The x86 kernels take a call's query rows through one of two paths:
  // decode's (keys in vector lanes, few rows) and prefill's (query rows in
  // lanes, more than 8 rows per KV head). Both are held to the oracle above;
  // here to each other: a prompt's 40 positions in one prefill call against
  // each position decoded alone over its prefix. Only f32 rounding in a
  // different order separates them (measured relative squared error ~1e-12),
  // bound 1e-9. Where both paths round the weights to u8 (rounds_weights),
  // that order can also tip a weight whose w * 255 / largest lies within an
  // ulp or two of a half to the other side: one step (1/255 of its block's
  // largest weight) on one key's weight in one block, 1.1e-7 to 2.2e-7 at
  // the one or two of the 40 positions where it happened here (avx512_vnni);
  // bound 1e-6. Except on the amx tier's q8_0/q8_0 kernel, whose prefill
  // rounds both products' operands to bf16 where its decode rounds the query
  // to q8_0 and the weights to u8 (each held to the oracle above): there the
  // two differ by all of those roundings, the u8 weights' (up to 2.5e-5
  // above) and the q8_0 query's (about 3e-5, format_bound) the most; bound
  // 1e-4, measured 2.6e-6 to 5.5e-5. And except on the avx512 tier's q8_0-K
  // kernels, whose prefill is f32 on the values as held and whose decode
  // rounds the query to q8_0 and the weights to 7 bits: the decode path's
  // own error against the oracle (check_paged's 7-bit bound, 4e-4); measured
  // 1.5e-5 to 8.2e-5.
  const size_t heads = 9, kv_heads = 3, dim = 64, n = 40, q_row = heads * dim, kv_row = kv_heads * dim;
  const auto k = make_data(n * kv_row, data_kind::gaussian, 21), v = make_data(n * kv_row, data_kind::gaussian, 22);
  const auto q = make_data(n * q_row, data_kind::gaussian, 23);
  for_each_tier([&](isa) {
    for (auto [kf, vf] : {std::pair{format::f16, format::f16}, {format::q8_0, format::q8_0}, {format::f32, format::q4_0}}) {
      SCOPED_TRACE(std::string(traits(kf).name) + "/" + std::string(traits(vf).name));
      KvCache cache(config(kf, vf, kv_heads, dim, 16, 8));
      const seq_id all = cache.create_sequence();
      cache.append(all, 0, k.data(), v.data(), n);
      std::vector<float> prefill(n * q_row), decode(n * q_row);
      const paged_query pq{all, q.data(), n, prefill.data(), 0, 0};
      attention(cache, 0, heads, &pq, 1);
      for (size_t i = 0; i < n; ++i) {
        KvCache prefix(config(kf, vf, kv_heads, dim, 16, 8));
        const seq_id s = prefix.create_sequence();
        prefix.append(s, 0, k.data(), v.data(), i + 1);
        const paged_query one{s, q.data() + i * q_row, 1, decode.data() + i * q_row, 0, 0};
        attention(prefix, 0, heads, &one, 1);
      }
      for (size_t i = 0; i < n; ++i) {
        const std::vector<float> a(prefill.begin() + i * q_row, prefill.begin() + (i + 1) * q_row);
        const std::vector<float> b(decode.begin() + i * q_row, decode.begin() + (i + 1) * q_row);
        const double bound = bf16_prefill(kf, vf)          ? 1e-4
                             : integer_decode_only(kf, vf) ? 4e-4
                             : rounds_weights(kf, vf)      ? 1e-6
                                                           : 1e-9;
        EXPECT_LT(nmse(a, b), bound) << "position " << i;
      }
    }
  });
}

TEST(PagedAttention, AmxPrefillMatchesTheOracleToItsBf16Rounding) {
  // The amx tier's q8_0/q8_0 kernel moves the prefill's products onto tiles
  // in bf16 (staging each tile's keys q d_k by row and its values q d_v by
  // column): check_paged's bound for it, 2e-5 against the oracle on the held
  // values and a bf16-rounded query (measured here: 4.3e-6 to 6.1e-6). Over
  // the staging's edges: head dims with an odd block count (96) and with
  // eight blocks (256), prompts that end inside a q8_0 group and inside a
  // 64-key tile, GQA, and cache blocks of 16 and 48 tokens (tiles cut at
  // block ends). And against avx512_vnni's own prefill (q8_0 query, u8
  // weights) within the u8 bound, 1e-4 (measured 2.1e-5 to 3.9e-5).
  const isa_set avail = compiled_isas() & detected_cpu().isas;
  if (!avail.contains(isa::amx)) GTEST_SKIP() << "no AMX here (available: " << to_string(avail) << ")";
  isa_guard guard;
  for (size_t dim : {64, 96, 128, 256})
    for (size_t block : {16, 48})
      for (size_t n : {17, 70, 131}) {
        SCOPED_TRACE("dim " + std::to_string(dim) + ", block " + std::to_string(block) + ", n " + std::to_string(n));
        const size_t heads = 8, kv_heads = 2, q_row = heads * dim, kv_row = kv_heads * dim;
        const auto k = make_data(n * kv_row, data_kind::gaussian, 31), v = make_data(n * kv_row, data_kind::gaussian, 32);
        const auto q = make_data(n * q_row, data_kind::gaussian, 33);
        KvCache cache(config(format::q8_0, format::q8_0, kv_heads, dim, block, (n + block - 1) / block));
        const seq_id s = cache.create_sequence();
        cache.append(s, 0, k.data(), v.data(), n);
        std::vector<float> out[2];
        for (int tier = 0; tier < 2; ++tier) {
          set_isa_max(tier == 0 ? isa::avx512_vnni : isa::amx);
          ASSERT_EQ(selected_kernel("attention.q8_0_q8_0"), tier == 0 ? "attn_q8_0_q8_0__avx512_vnni" : "attn_q8_0_q8_0__amx");
          out[tier].assign(n * q_row, 0.0f);
          const paged_query pq{s, q.data(), n, out[tier].data(), 0, 0};
          attention(cache, 0, heads, &pq, 1);
        }
        std::vector<float> held_k(n * kv_row), held_v(n * kv_row), want(n * q_row);
        cache.read(s, 0, 0, n, held_k.data(), held_v.data());
        const auto held_q = round_trip_bf16(q);
        ref::attention(dense_shape(n, n, heads, kv_heads, dim, true), held_q.data(), held_k.data(), held_v.data(),
                       want.data(), 0, heads);
        EXPECT_LE(nmse(out[1], want), 2e-5);
        EXPECT_LE(nmse(out[1], out[0]), 1e-4);
      }
}

/// A cache holding `len` tokens of Gaussian K and V (seeds `seed` and seed
/// + 1) in one sequence, layer 0, and the attn_kv view of it a kernel
/// takes: for the tests that call registered kernels directly.
struct direct_cache {
  KvCache cache;
  seq_id seq;
  std::vector<const unsigned char*> k_blocks, v_blocks;
  kernels::attn_kv kv{};

  direct_cache(format kf, format vf, size_t kv_heads, size_t dim, size_t block_tokens, size_t len, uint32_t seed)
      : cache(config(kf, vf, kv_heads, dim, block_tokens, (len + block_tokens - 1) / block_tokens)),
        seq(cache.create_sequence()) {
    const auto k = make_data(len * kv_heads * dim, data_kind::gaussian, seed);
    const auto v = make_data(len * kv_heads * dim, data_kind::gaussian, seed + 1);
    cache.append(seq, 0, k.data(), v.data(), len);
    const KvCache::layout lv = cache.view(seq, 0);
    for (const unsigned char* b : lv.blocks) {
      k_blocks.push_back(b + lv.k_offset);
      v_blocks.push_back(b + lv.v_offset);
    }
    kv = kernels::attn_kv{k_blocks.data(), v_blocks.data(), lv.block_tokens, lv.k_head_bytes, lv.v_head_bytes,
                          lv.k_row_bytes, lv.v_row_bytes, dim};
  }
  direct_cache(const direct_cache&) = delete;  // kv points into k_blocks and v_blocks
  direct_cache& operator=(const direct_cache&) = delete;
};

TEST(PagedAttention, EveryKernelGivesEachHeadOfAMultiHeadCallItsOneHeadResult) {
  // attn_kv::heads: one call over several KV heads (a decode kernel reads
  // them block by block) must give each head's rows, bit for bit, what a
  // call for that head alone gives them. Every registered kernel this CPU
  // runs, called directly: heads 1-3 of 5, a call that starts and ends
  // inside cache blocks (and inside q8_0 groups), block sizes around the
  // 32-key decode tile, rows per head from 1 to decode's most (8) and past
  // it (12: prefill, head by head), and rows that see different keys, per
  // row and per head.
  const isa_set runnable = tiers_under_test();
  const size_t kv_heads = 5, first_head = 1, heads = 3, len = 300, t0 = 37, t1 = 250;
  size_t kernels_checked = 0;
  for (const detail::attention_entry& e : detail::registry().attention) {
    if (!runnable.contains(e.tier)) continue;
    SCOPED_TRACE(e.name);
    ++kernels_checked;
    for (size_t dim : {64, 96})
      for (size_t block_tokens : {16, 40, 64}) {
        SCOPED_TRACE("head_dim " + std::to_string(dim) + ", " + std::to_string(block_tokens) + " tokens a block");
        const direct_cache held(e.k_format, e.v_format, kv_heads, dim, block_tokens, len, 701);
        const kernels::attn_kv& kv = held.kv;
        for (size_t group : {1, 4, 8, 12}) {
          SCOPED_TRACE(std::to_string(group) + " rows a head");
          const size_t rows = heads * group;
          const auto q = make_data(rows * dim, data_kind::gaussian, 703 + group);
          std::vector<const float*> q_rows(rows);
          std::vector<size_t> limits(rows);
          for (size_t r = 0; r < rows; ++r) {
            q_rows[r] = q.data() + r * dim;
            // Decode's rows see every key; the others see fewer, by row and by head.
            limits[r] = group == 1 || group == 4 ? len : len - 9 * (r % 5) - 40 * (r / group);  // head 2 stops before t1
          }
          const size_t state = rows * (dim + 2);
          std::vector<float> together(state, 0.0f), alone(state, 0.0f);
          for (auto* st : {&together, &alone})
            std::fill(st->begin(), st->begin() + static_cast<std::ptrdiff_t>(rows),
                      -std::numeric_limits<float>::infinity());
          const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
          kernels::attn_kv all = kv;
          all.heads = heads;
          e.fn(all, first_head, q_rows.data(), rows, limits.data(), t0, t1, scale, together.data(),
               together.data() + rows, together.data() + 2 * rows);
          for (size_t h = 0; h < heads; ++h) {
            const size_t r0 = h * group;
            e.fn(kv, first_head + h, q_rows.data() + r0, group, limits.data() + r0, t0, t1, scale, alone.data() + r0,
                 alone.data() + rows + r0, alone.data() + 2 * rows + r0 * dim);
          }
          size_t seen = 0;
          for (size_t r = 0; r < rows; ++r) seen += alone[rows + r] > 0.0f;
          ASSERT_EQ(seen, rows) << "every row sees keys in [t0, t1)";
          ASSERT_EQ(std::memcmp(together.data(), alone.data(), state * sizeof(float)), 0)
              << "a multi-head call differs from one call per head";
        }
      }
  }
  EXPECT_GT(kernels_checked, 0u);
}

TEST(PagedAttention, TheIntegerDecodeTileGivesEachRowWhatTheGeneralPathDoes) {
  // A decode row's result depends on its own query and the keys' tiles
  // alone, not on the other rows of its KV head. The integer decodes of the
  // VNNI tiers (avx512_vnni, amx's decode steps, avx2_vnni) and of avx2
  // (the sign trick) take a tile whose rows all see all
  // of a whole 32-key tile starting a q8_0 group to q8_decode_tile, a path
  // written for that case, in groups of up to four rows; a tile that one
  // row of the head does not see whole goes the general way for all of
  // them. So rows 0..R-1 of each head of a call with R rows a head (1 to 4,
  // and 6: a group of four and one of two) must get, bit for bit, what the
  // same rows get in a call with eight rows a head whose last row sees only
  // the call's first key. Every registered kernel this CPU runs (elsewhere
  // both calls take the same path), calls that start on a group, inside a
  // tile and inside a group, block sizes of whole tiles and of a tile and a
  // half (whole tiles beside half ones, the next tile's lines asked for by
  // either path), one KV head and three.
  const isa_set runnable = tiers_under_test();
  const size_t kv_heads = 4, len = 333, wide = 8;
  size_t kernels_checked = 0;
  for (const detail::attention_entry& e : detail::registry().attention) {
    if (!runnable.contains(e.tier)) continue;
    SCOPED_TRACE(e.name);
    ++kernels_checked;
    for (size_t dim : {64, 96, 128})
      for (size_t block_tokens : {32, 48, 64}) {
        SCOPED_TRACE("head_dim " + std::to_string(dim) + ", " + std::to_string(block_tokens) + " tokens a block");
        const direct_cache held(e.k_format, e.v_format, kv_heads, dim, block_tokens, len, static_cast<uint32_t>(801 + dim));
        const kernels::attn_kv& kv = held.kv;
        const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
        for (size_t heads : {1, 3})
          for (const std::pair<size_t, size_t>& range : {std::pair<size_t, size_t>{0, len}, {16, 300}, {37, 250}}) {
            const size_t t0 = range.first, t1 = range.second;  // not a structured binding: the lambda captures them
            SCOPED_TRACE(std::to_string(heads) + " KV heads, keys [" + std::to_string(t0) + ", " + std::to_string(t1) + ")");
            const auto q = make_data(heads * wide * dim, data_kind::gaussian, 803 + heads + t0);
            // `group` rows a head, row r of head h query row h * wide + r;
            // with `wide` rows, the last sees key t0 alone.
            const auto run = [&](size_t group) {
              const size_t rows = heads * group;
              std::vector<const float*> q_rows(rows);
              std::vector<size_t> limits(rows, len);
              for (size_t r = 0; r < rows; ++r) {
                q_rows[r] = q.data() + (r / group * wide + r % group) * dim;
                if (group == wide && r % group == wide - 1) limits[r] = t0 + 1;
              }
              std::vector<float> st(rows * (dim + 2), 0.0f);
              std::fill(st.begin(), st.begin() + static_cast<std::ptrdiff_t>(rows), -std::numeric_limits<float>::infinity());
              kernels::attn_kv all = kv;
              all.heads = heads;
              e.fn(all, 1, q_rows.data(), rows, limits.data(), t0, t1, scale, st.data(), st.data() + rows,
                   st.data() + 2 * rows);
              return st;
            };
            const std::vector<float> general = run(wide);
            const size_t rows_w = heads * wide;
            for (size_t group : {1, 2, 3, 4, 6}) {
              SCOPED_TRACE(std::to_string(group) + " rows a head");
              const std::vector<float> st = run(group);
              const size_t rows = heads * group;
              for (size_t h = 0; h < heads; ++h)
                for (size_t j = 0; j < group; ++j) {
                  const size_t r = h * group + j, rw = h * wide + j;
                  ASSERT_GT(st[rows + r], 0.0f) << "row " << r << " saw no key";
                  ASSERT_EQ(std::memcmp(&st[r], &general[rw], sizeof(float)), 0) << "m of head " << h << " row " << j;
                  ASSERT_EQ(std::memcmp(&st[rows + r], &general[rows_w + rw], sizeof(float)), 0)
                      << "l of head " << h << " row " << j;
                  ASSERT_EQ(std::memcmp(&st[2 * rows + r * dim], &general[2 * rows_w + rw * dim], dim * sizeof(float)), 0)
                      << "sums of head " << h << " row " << j;
                }
            }
          }
      }
  }
  EXPECT_GT(kernels_checked, 0u);
}

TEST(PagedAttention, ResultsDoNotDependOnTheThreadCount) {
  thread_guard threads;
  const size_t heads = 8, kv_heads = 2, dim = 64, q_row = heads * dim;
  // q8_0 keys take the integer kernels on VNNI tiers (with q8_0 values on
  // avx512_vnni, a prefill in integers with query rows in vector lanes);
  // f16 keys the float ones, whose prefill puts query rows in vector lanes.
  for (auto [kf, vf] : {std::pair{format::q8_0, format::f16}, {format::q8_0, format::q8_0}, {format::f16, format::f16}}) {
    SCOPED_TRACE(std::string(traits(kf).name) + "/" + std::string(traits(vf).name));
    KvCache cache(config(kf, vf, kv_heads, dim, 16, 200));
    const auto k = make_data(1000 * kv_heads * dim, data_kind::gaussian, 7);
    const auto v = make_data(1000 * kv_heads * dim, data_kind::gaussian, 8);
    const seq_id a = cache.create_sequence(), b = cache.create_sequence();
    cache.append(a, 0, k.data(), v.data(), 1000);
    cache.append(b, 0, k.data(), v.data(), 300);
    const auto q = make_data(21 * q_row, data_kind::gaussian, 9);  // one decode row, then 20 prefill rows
    auto run = [&](size_t n) {
      set_num_threads(n);
      std::vector<float> out(22 * q_row);
      paged_query batch[2];
      batch[0] = {a, q.data(), 1, out.data(), 0, 0};
      batch[1] = {b, q.data() + q_row, 20, out.data() + q_row, 0, 0};
      attention(cache, 0, heads, batch, 2);
      // A call of decode alone (its chunks go to the threads in contiguous runs).
      const paged_query decode{a, q.data(), 1, out.data() + 21 * q_row, 0, 0};
      attention(cache, 0, heads, &decode, 1);
      return out;
    };
    const auto one = run(1);
    for (size_t n : {2, 3, 5}) {
      const auto many = run(n);
      EXPECT_EQ(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)), 0) << n << " threads";
    }
  }
}

TEST(PagedAttention, APromptGivesTheSameBitsWhateverPromptsRanBeforeIt) {
  // A prefill task's sums live in its thread's buffer, kept zeroed from one
  // task to the next: a kernel that finishes its rows itself (the integer
  // row lanes over q8_0 keys and values, attn_kv::finished) must leave them
  // as they were, and a kernel that does not has them zeroed again after
  // its task. So on one thread, a prompt over one cache gets the same bits
  // before and after prompts over caches of other formats, on every tier.
  // (What a kernel that adds to the sums finds there is scaled by its first
  // tile's factor, about 2^-125: a finite leftover vanishes, a NaN left
  // there does not; checked by leaving one.)
  thread_guard threads;
  set_num_threads(1);
  const size_t heads = 8, kv_heads = 2, dim = 64, n = 45, q_row = heads * dim;
  const auto k = make_data(n * kv_heads * dim, data_kind::gaussian, 41);
  const auto v = make_data(n * kv_heads * dim, data_kind::gaussian, 42);
  const auto q = make_data(n * q_row, data_kind::gaussian, 43);
  const std::pair<format, format> formats[] = {{format::q8_0, format::q8_0}, {format::f16, format::f16}, {format::q8_0, format::f16}};
  std::deque<KvCache> caches;  // not moved once made
  std::vector<seq_id> seqs;
  for (const auto& [kf, vf] : formats) {
    caches.emplace_back(config(kf, vf, kv_heads, dim, 16, (n + 15) / 16));
    seqs.push_back(caches.back().create_sequence());
    caches.back().append(seqs.back(), 0, k.data(), v.data(), n);
  }
  for_each_tier([&](isa) {
    const auto prompt = [&](size_t c) {
      std::vector<float> out(n * q_row, poison_value());
      const paged_query pq{seqs[c], q.data(), n, out.data(), 0, 0};
      attention(caches[c], 0, heads, &pq, 1);
      return out;
    };
    for (size_t c = 0; c < caches.size(); ++c) {
      SCOPED_TRACE(std::string(traits(formats[c].first).name) + "/" + std::string(traits(formats[c].second).name));
      const auto first = prompt(c);
      for (size_t other = 0; other < caches.size(); ++other) {
        if (other == c) continue;
        prompt(other);
        const auto again = prompt(c);
        EXPECT_EQ(std::memcmp(first.data(), again.data(), first.size() * sizeof(float)), 0)
            << "after a prompt over " << traits(formats[other].first).name << "/" << traits(formats[other].second).name;
      }
    }
  });
}

TEST(PagedAttention, BadQueriesAreClearErrorsAndWriteNothing) {
  KvCache cache(config(format::f16, format::f16, 2, 64, 16, 8));
  const seq_id s = cache.create_sequence();
  const auto x = make_data(10 * 128, data_kind::gaussian, 1);
  cache.append(s, 0, x.data(), x.data(), 10);
  std::vector<float> q(4 * 256, 0.5f), out(4 * 256, poison_value());
  auto expect_error = [&](paged_query pq, size_t heads, const std::string& needle, size_t layer = 0) {
    try {
      attention(cache, layer, heads, &pq, 1);
      ADD_FAILURE() << "no error; expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_TRUE(std::all_of(out.begin(), out.end(), is_poison));
  };
  expect_error({s, q.data(), 11, out.data(), 0, 0}, 4, "n_q=11");
  expect_error({s, q.data(), 0, out.data(), 0, 0}, 4, "n_q=0");
  expect_error({s, q.data(), 1, out.data(), 0, 0}, 3, "multiple of n_kv_heads");
  expect_error({s, nullptr, 1, out.data(), 0, 0}, 4, "null");
  expect_error({s, q.data(), 1, out.data(), 0, 100}, 4, "strides");
  expect_error({s + 3, q.data(), 1, out.data(), 0, 0}, 4, "no live sequence");
  expect_error({s, q.data(), 1, out.data(), 0, 0}, 4, "layer 1 out of range", 1);
  // The second of two queries names itself, and the first is not written either.
  const paged_query two[2] = {{s, q.data(), 1, out.data(), 0, 0}, {s, q.data(), 1, nullptr, 0, 0}};
  try {
    attention(cache, 0, 4, two, 2);
    ADD_FAILURE() << "no error for a null output";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("query 1: q and out must not be null"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), is_poison));
  // A call after the errors (the same thread's buffers, reused) still works.
  const paged_query ok{s, q.data(), 1, out.data(), 0, 0};
  attention(cache, 0, 4, &ok, 1);
  EXPECT_TRUE(std::all_of(out.begin(), out.begin() + 4 * 64, [](float v) { return std::isfinite(v); }));
}

}  // namespace
}  // namespace lowbit::test
