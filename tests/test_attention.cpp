// Attention: the f32 oracle against an independent textbook implementation,
// its causal and GQA properties, then every tier's kernel against the oracle
// with strided, poisoned outputs, and the shape errors.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/ref/attention.hpp"
#include "tester/tester.hpp"

namespace lowbit::test {
namespace {

/// Softmax written the textbook way (no max subtraction, inputs kept small).
std::vector<double> textbook(const attention_shape& s, const std::vector<float>& q, const std::vector<float>& k,
                             const std::vector<float>& v) {
  std::vector<double> out(s.n_q * s.n_heads * s.head_dim);
  for (size_t h = 0; h < s.n_heads; ++h) {
    const size_t g = h * s.n_kv_heads / s.n_heads;
    for (size_t i = 0; i < s.n_q; ++i) {
      std::vector<double> w(s.n_kv, 0.0);
      double z = 0;
      for (size_t j = 0; j < s.n_kv; ++j) {
        if (s.causal && j > s.n_kv - s.n_q + i) continue;
        double dot = 0;
        for (size_t d = 0; d < s.head_dim; ++d)
          dot += static_cast<double>(q[(i * s.n_heads + h) * s.head_dim + d]) * k[(j * s.n_kv_heads + g) * s.head_dim + d];
        w[j] = std::exp(dot * s.scale);
        z += w[j];
      }
      for (size_t d = 0; d < s.head_dim; ++d) {
        double acc = 0;
        for (size_t j = 0; j < s.n_kv; ++j) acc += w[j] * v[(j * s.n_kv_heads + g) * s.head_dim + d];
        out[(i * s.n_heads + h) * s.head_dim + d] = acc / z;
      }
    }
  }
  return out;
}

TEST(Attention, OracleMatchesTextbookSoftmax) {
  for (bool causal : {false, true}) {
    for (auto [nq, nkv] : {std::pair<size_t, size_t>{1, 1}, {1, 9}, {5, 5}, {3, 11}}) {
      const auto s = dense_shape(nq, nkv, 4, 2, 16, causal);
      const auto q = make_data(nq * 4 * 16, data_kind::gaussian, 1);
      const auto k = make_data(nkv * 2 * 16, data_kind::gaussian, 2);
      const auto v = make_data(nkv * 2 * 16, data_kind::gaussian, 3);
      std::vector<float> out(q.size());
      ref::attention(s, q.data(), k.data(), v.data(), out.data(), 0, s.n_heads);
      const auto want = textbook(s, q, k, v);
      // The oracle works in double and rounds once: within 1 ulp of f32.
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_NEAR(out[i], want[i], 1e-6 * (1 + std::fabs(want[i]))) << "causal=" << causal << " i=" << i;
    }
  }
}

TEST(Attention, CausalQueriesIgnoreFutureKeys) {
  // 4 queries x 2 heads = 8 rows per KV head take the x86 kernels' decode-style
  // path; 12 x 2 = 24 rows their prefill path (query rows in vector lanes).
  for (size_t nq : {4, 12}) {
    SCOPED_TRACE("n_q=" + std::to_string(nq));
    const size_t nkv = nq + 6;
    const auto s = dense_shape(nq, nkv, 2, 1, 8, true);
    const auto q = make_data(nq * 2 * 8, data_kind::gaussian, 4);
    auto k = make_data(nkv * 8, data_kind::gaussian, 5);
    auto v = make_data(nkv * 8, data_kind::gaussian, 6);
    std::vector<float> a(q.size()), b(q.size());
    attention(s, q.data(), k.data(), v.data(), a.data());
    // Query 0 sits at position 6: keys 7 on are its future. Change the last key/value.
    for (size_t d = 0; d < 8; ++d) k[(nkv - 1) * 8 + d] += 5.0f, v[(nkv - 1) * 8 + d] -= 3.0f;
    attention(s, q.data(), k.data(), v.data(), b.data());
    for (size_t i = 0; i < (nq - 1) * 2 * 8; ++i) ASSERT_EQ(a[i], b[i]) << "query row " << i / 16 << " saw a future key";
    bool last_changed = false;
    for (size_t i = (nq - 1) * 2 * 8; i < a.size(); ++i) last_changed |= a[i] != b[i];
    EXPECT_TRUE(last_changed) << "the last query must see the last key";
  }
}

TEST(Attention, GroupedHeadsEqualRepeatedKvHeads) {
  // 6 query heads over 2 KV heads == 6 heads over the KV heads repeated 3
  // times, bit for bit. A kernel computes a row the same whatever rows share
  // its call, but picks its path by the rows per KV head: 2 positions (6 and
  // 2 rows) stay on the decode-style path, 9 positions (27 and 9 rows) on the
  // row-lanes prefill path, so each pair compares one path with itself.
  for (size_t nq : {2, 9}) {
    SCOPED_TRACE("n_q=" + std::to_string(nq));
    const size_t nkv = nq + 4;
    const auto gqa = dense_shape(nq, nkv, 6, 2, 32, true);
    const auto mha = dense_shape(nq, nkv, 6, 6, 32, true);
    const auto q = make_data(nq * 6 * 32, data_kind::gaussian, 7);
    const auto k = make_data(nkv * 2 * 32, data_kind::gaussian, 8);
    const auto v = make_data(nkv * 2 * 32, data_kind::gaussian, 9);
    std::vector<float> k6(nkv * 6 * 32), v6(nkv * 6 * 32);
    for (size_t t = 0; t < nkv; ++t)
      for (size_t h = 0; h < 6; ++h)
        for (size_t d = 0; d < 32; ++d) {
          k6[(t * 6 + h) * 32 + d] = k[(t * 2 + h / 3) * 32 + d];
          v6[(t * 6 + h) * 32 + d] = v[(t * 2 + h / 3) * 32 + d];
        }
    std::vector<float> a(q.size()), b(q.size());
    attention(gqa, q.data(), k.data(), v.data(), a.data());
    attention(mha, q.data(), k6.data(), v6.data(), b.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  }
}

TEST(Attention, KernelsMatchOracleOnEveryTier) {
  for_each_tier([](isa) {
    // 8 and 40 leave column tails past the vector loops on both vector widths.
    for (size_t dim : {8, 40, 64, 80, 96, 128}) {
      for (auto [heads, kv_heads] : {std::pair<size_t, size_t>{4, 4}, {4, 2}, {8, 1}}) {
        for (auto [nq, nkv] : {std::pair<size_t, size_t>{1, 1}, {1, 33}, {7, 7}, {5, 40}}) {
          for (bool causal : {true, false}) {
            SCOPED_TRACE("d=" + std::to_string(dim) + " heads=" + std::to_string(heads) + "/" +
                         std::to_string(kv_heads) + " n_q=" + std::to_string(nq) + " n_kv=" + std::to_string(nkv));
            attention_shape s = dense_shape(nq, nkv, heads, kv_heads, dim, causal);
            s.q_stride += 3;  // strided everything
            s.k_stride += 5;
            s.v_stride += 1;
            s.out_stride += 2;
            const auto q = make_data(nq * s.q_stride, data_kind::gaussian, 10);
            const auto k = make_data(nkv * s.k_stride, data_kind::outliers, 11);
            const auto v = make_data(nkv * s.v_stride, data_kind::gaussian, 12);
            std::vector<float> want(nq * s.out_stride, 0.0f);
            ref::attention(s, q.data(), k.data(), v.data(), want.data(), 0, heads);
            std::vector<float> out(nq * s.out_stride + 8, poison_value());
            attention(s, q.data(), k.data(), v.data(), out.data());
            // Every kernel (the scalar tier's included) runs an f32 online softmax;
            // the oracle accumulates in double.
            for (size_t i = 0; i < nq; ++i) {
              for (size_t e = 0; e < heads * dim; ++e) {
                const float got = out[i * s.out_stride + e], exp = want[i * s.out_stride + e];
                ASSERT_NEAR(got, exp, 1e-4f * (1 + std::fabs(exp))) << "token " << i << " element " << e;
              }
              for (size_t e = heads * dim; e < s.out_stride; ++e) ASSERT_TRUE(is_poison(out[i * s.out_stride + e]));
            }
            for (size_t e = nq * s.out_stride; e < out.size(); ++e) ASSERT_TRUE(is_poison(out[e]));
          }
        }
      }
    }
  });
}

TEST(Attention, RejectsBadShapes) {
  std::vector<float> buf(4096, 0.0f), out(4096, poison_value());
  auto s = dense_shape(2, 4, 6, 4, 8, true);  // 4 does not divide 6
  try {
    attention(s, buf.data(), buf.data(), buf.data(), out.data());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not divide"), std::string::npos) << e.what();
  }
  s = dense_shape(5, 4, 4, 4, 8, true);  // causal with more queries than keys
  EXPECT_THROW(attention(s, buf.data(), buf.data(), buf.data(), out.data()), Error);
  s = dense_shape(1, 4, 4, 4, 0, true);
  EXPECT_THROW(attention(s, buf.data(), buf.data(), buf.data(), out.data()), Error);
  s = dense_shape(1, 4, 4, 4, 8, true);
  s.k_stride = 8;  // shorter than n_kv_heads * head_dim
  EXPECT_THROW(attention(s, buf.data(), buf.data(), buf.data(), out.data()), Error);
  s = dense_shape(1, 4, 4, 4, 8, true);
  EXPECT_THROW(attention(s, buf.data(), nullptr, buf.data(), out.data()), Error);
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), is_poison));
  // scale 0 means 1/sqrt(head_dim); strides 0 mean dense.
  attention_shape d;
  d.n_q = 1;
  d.n_kv = 3;
  d.n_heads = d.n_kv_heads = 1;
  d.head_dim = 4;
  const auto q = make_data(4, data_kind::gaussian, 1), k = make_data(12, data_kind::gaussian, 2),
             v = make_data(12, data_kind::gaussian, 3);
  std::vector<float> a(4), b(4);
  attention(d, q.data(), k.data(), v.data(), a.data());
  attention(dense_shape(1, 3, 1, 1, 4, true), q.data(), k.data(), v.data(), b.data());
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace lowbit::test
