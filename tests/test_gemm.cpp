// Linear layers and int8 GEMM.
//
// 1. The oracle checks itself: ref::linear against a double-precision product
//    of the dequantized operands, within a bound derived from K.
// 2. Every tier's kernels against the oracle over the DESIGN.md sweeps: K at
//    and above block multiples, N off the tile, M = 1, tile, tile +- 1 and
//    both sides of the large-M threshold, strided x and y, all-zero blocks,
//    extreme and outlier values, poison around the output.
// 3. int8 GEMM against a naive integer loop, exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernels/ref/gemm_s8.hpp"
#include "tester/tester.hpp"

namespace lowbit::test {
namespace {

constexpr format weight_formats[] = {format::q4_0, format::q4_1, format::q8_0, format::q4_k, format::q6_k};

/// Double-precision y = x_q . W^T over dequantized operands, plus the sum of
/// |terms| per element for the bound. For Q4_1 the format defines the offset
/// term through s = fp16(d * sum(q)), so that term uses the stored s.
void double_reference(format wf, const std::vector<unsigned char>& w, size_t n, size_t k, const std::vector<float>& x,
                      size_t m, std::vector<double>& y, std::vector<double>& abs_sum) {
  const format af = traits(wf).activation;
  const auto wd = ref_dequantize(wf, w.data(), n, k);
  const auto xq = ref_quantize(af, x, m, k);
  const auto xd = ref_dequantize(af, xq.data(), m, k);
  y.assign(m * n, 0.0);
  abs_sum.assign(m * n, 0.0);
  const size_t w_row = row_bytes(traits(wf), k), x_row = row_bytes(traits(af), k);
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      double sum = 0, mag = 0;
      if (wf == format::q4_1) {
        const auto* wb = reinterpret_cast<const block_q4_1*>(w.data() + j * w_row);
        const auto* xb = reinterpret_cast<const block_q8_1*>(xq.data() + i * x_row);
        for (size_t b = 0; b < k / 32; ++b) {
          const double dw = fp16_to_fp32(wb[b].d), da = fp16_to_fp32(xb[b].d);
          for (size_t e = 0; e < 32; ++e) {
            const int nib = e < 16 ? (wb[b].qs[e] & 15) : (wb[b].qs[e - 16] >> 4);
            sum += dw * nib * da * xb[b].qs[e];
            mag += std::fabs(dw * nib * da * xb[b].qs[e]);
          }
          const double offset = fp16_to_fp32(wb[b].m) * static_cast<double>(fp16_to_fp32(xb[b].s));
          sum += offset;
          mag += std::fabs(offset);
        }
      } else if (wf == format::q4_k) {
        // d*sc*nibble and dmin*mn are summed separately and then subtracted,
        // so the rounding scales with both magnitudes, not their difference.
        const auto* wb = reinterpret_cast<const block_q4_k*>(w.data() + j * w_row);
        for (size_t e = 0; e < k; ++e) {
          const block_q4_k& blk = wb[e / qk_k];
          const size_t r = e % qk_k, sub = r / 32;
          int sc, mn;
          ref::q4_k_scale_min(blk.scales, sub, sc, mn);
          const int nib = (blk.qs[32 * (r / 64) + r % 32] >> (4 * (sub % 2))) & 15;
          const double xv = xd[i * k + e];
          sum += static_cast<double>(wd[j * k + e]) * xv;
          mag += (std::fabs(fp16_to_fp32(blk.d) * sc * nib) + std::fabs(fp16_to_fp32(blk.dmin) * mn)) * std::fabs(xv);
        }
      } else {
        for (size_t e = 0; e < k; ++e) {
          const double t = static_cast<double>(wd[j * k + e]) * xd[i * k + e];
          sum += t;
          mag += std::fabs(t);
        }
      }
      y[i * n + j] = sum;
      abs_sum[i * n + j] = mag;
    }
  }
}

TEST(Gemm, OracleLinearMatchesDoublePrecisionProduct) {
  for (format wf : weight_formats) {
    const size_t block = traits(wf).block_length;
    for (size_t k : {block, 3 * block, 16 * block}) {
      for (data_kind kind : all_data_kinds) {
        const size_t n = 7, m = 3;
        const auto wsrc = make_data(n * k, kind, 100 + static_cast<uint32_t>(k), block);
        const auto w = ref_quantize(wf, wsrc, n, k);
        const auto x = make_data(m * k, data_kind::gaussian, 200 + static_cast<uint32_t>(k), block);
        std::vector<float> y(m * n);
        ASSERT_TRUE(ref::linear(wf, w.data(), n, k, x.data(), k, m, y.data(), n));
        std::vector<double> yd, mag;
        double_reference(wf, w, n, k, x, m, yd, mag);
        for (size_t i = 0; i < m * n; ++i)
          ASSERT_LE(std::fabs(y[i] - yd[i]), linear_bound(k / block, mag[i]))
              << traits(wf).name << " k=" << k << " " << data_kind_name(kind) << " element " << i;
      }
    }
  }
}

TEST(Gemm, OracleRejectsNonWeightFormats) {
  float x[32] = {}, y[1];
  unsigned char w[64] = {};
  EXPECT_FALSE(ref::linear(format::q8_k, w, 1, 256, x, 256, 1, y, 1));
  EXPECT_FALSE(ref::linear(format::f32, w, 1, 32, x, 32, 1, y, 1));
}

/// One linear call through the API with strided x/y and poison around y,
/// compared with the oracle. Every linear kernel sums the same integers and
/// runs the oracle's f32 epilogue operation for operation, so the contract is
/// bit-identical output (which also makes the integer sums exact).
void check_linear(format wf, size_t m, size_t n, size_t k, data_kind kind, uint32_t seed) {
  const size_t block = traits(wf).block_length;
  const auto w = ref_quantize(wf, make_data(n * k, kind, seed, block), n, k);
  const size_t ldx = k + 7, ldy = n + 5;
  const auto x = make_data(m * ldx, kind == data_kind::all_max ? kind : data_kind::gaussian, seed + 1, block);
  std::vector<float> dense(m * k);
  for (size_t i = 0; i < m; ++i) std::copy_n(x.data() + i * ldx, k, dense.data() + i * k);
  std::vector<float> want(m * n);
  ref::linear(wf, w.data(), n, k, dense.data(), k, m, want.data(), n);

  const PackedWeights packed = pack_weights(wf, w.data(), w.size(), n, k);
  std::vector<float> y(m * ldy + 16, poison_value());
  linear(packed, x.data(), m, y.data(), ldx, ldy);

  const std::string kernel = selected_kernel("linear." + std::string(traits(wf).name) + "." +
                                              (m == 1 ? "gemv" : m < 32 ? "small" : "large"));
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      const float got = y[i * ldy + j], exp = want[i * n + j];
      ASSERT_EQ(std::memcmp(&got, &exp, sizeof got), 0) << kernel << " m=" << i << " n=" << j << ": " << got << " vs " << exp;
    }
    for (size_t j = n; j < ldy; ++j) ASSERT_TRUE(is_poison(y[i * ldy + j])) << "row padding written, m=" << i;
  }
  for (size_t i = m * ldy; i < y.size(); ++i) ASSERT_TRUE(is_poison(y[i])) << "wrote past the end";
}

TEST(Gemm, LinearKernelsMatchOracleOnEveryTier) {
  for_each_tier([](isa) {
    for (format wf : weight_formats) {
      const size_t block = traits(wf).block_length;
      for (size_t k : {block, 2 * block, 5 * block}) {
        for (size_t n : {1, 15, 16, 17, 33}) {
          // Both sides of the large-M threshold (32) and around the 4- and
          // 8-row tiles of the small and large kernels.
          for (size_t m : {1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 39, 40, 41}) {
            SCOPED_TRACE(std::string(traits(wf).name) + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                         " k=" + std::to_string(k));
            check_linear(wf, m, n, k, data_kind::gaussian, static_cast<uint32_t>(m * 1000 + n * 10 + k));
          }
        }
        for (data_kind kind : all_data_kinds) {
          SCOPED_TRACE(std::string(traits(wf).name) + " " + data_kind_name(kind) + " k=" + std::to_string(k));
          check_linear(wf, 4, 19, k, kind, 77);
        }
      }
    }
  });
}

TEST(Gemm, LinearRejectsBadShapes) {
  const auto w = ref_quantize(format::q4_0, make_data(4 * 64, data_kind::gaussian, 1), 4, 64);
  std::vector<float> x(64, 1.0f), y(4, poison_value());
  EXPECT_THROW(pack_weights(format::q4_0, w.data(), w.size() - 1, 4, 64), Error);  // too few bytes
  EXPECT_THROW(pack_weights(format::q4_0, w.data(), w.size(), 4, 48), Error);      // k off the block
  EXPECT_THROW(pack_weights(format::q4_0, nullptr, w.size(), 4, 64), Error);
  EXPECT_THROW(pack_weights(format::q4_0, w.data(), w.size(), 0, 64), Error);
  try {
    pack_weights(format::q8_k, w.data(), w.size(), 1, 256);
    FAIL() << "q8_k is not a weight format";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), status::unsupported);
    EXPECT_NE(std::string(e.what()).find("not a weight format"), std::string::npos);
  }
  PackedWeights p = pack_weights(format::q4_0, w.data(), w.size(), 4, 64);
  EXPECT_EQ(p.n(), 4u);
  EXPECT_EQ(p.k(), 64u);
  EXPECT_GE(p.pack_seconds(), 0.0);
  EXPECT_GE(p.packed_bytes(), w.size());
  EXPECT_FALSE(p.packers().empty());
  EXPECT_THROW(linear(p, x.data(), 1, y.data(), 32), Error);     // ldx < k
  EXPECT_THROW(linear(p, x.data(), 1, y.data(), 0, 3), Error);   // ldy < n
  EXPECT_THROW(linear(p, nullptr, 1, y.data()), Error);
  EXPECT_TRUE(std::all_of(y.begin(), y.end(), is_poison));
  PackedWeights moved = std::move(p);
  EXPECT_NO_THROW(linear(moved, x.data(), 1, y.data()));
}

/// Naive int8 GEMM: the independent check of both the oracle and the kernels.
template <typename A>
std::vector<int32_t> naive_gemm(const std::vector<A>& a, size_t lda, const std::vector<int8_t>& b, size_t ldb, size_t m,
                                size_t n, size_t k) {
  std::vector<int32_t> c(m * n);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < n; ++j) {
      int64_t s = 0;
      for (size_t e = 0; e < k; ++e) s += static_cast<int64_t>(a[i * lda + e]) * b[j * ldb + e];
      c[i * n + j] = static_cast<int32_t>(s);
    }
  return c;
}

template <typename A>
void check_gemm_s8(size_t m, size_t n, size_t k, bool extremes, uint32_t seed) {
  std::mt19937 rng(seed);
  const size_t lda = k + 3, ldb = k + 1, ldc = n + 2, ldy = n + 4;
  std::vector<A> a(m * lda);
  std::vector<int8_t> b(n * ldb);
  for (auto& v : a) v = extremes ? std::numeric_limits<A>::min() : static_cast<A>(rng());
  for (auto& v : b) v = extremes ? int8_t{-128} : static_cast<int8_t>(rng());
  if (extremes && std::is_unsigned_v<A>)
    for (auto& v : a) v = 255;
  std::vector<float> rs(m), cs(n);
  for (auto& v : rs) v = 0.5f + static_cast<float>(rng() % 100) / 64.0f;
  for (auto& v : cs) v = 0.25f + static_cast<float>(rng() % 100) / 32.0f;
  const auto want = naive_gemm(a, lda, b, ldb, m, n, k);

  gemm_s8_problem p;
  p.a_type = std::is_unsigned_v<A> ? int8_type::u8 : int8_type::s8;
  p.a = a.data();
  p.lda = lda;
  p.b = b.data();
  p.ldb = ldb;
  p.m = m;
  p.n = n;
  p.k = k;
  std::vector<int32_t> c(m * ldc + 8, 0x5a5a5a5a);
  std::vector<float> y(m * ldy + 8, poison_value());
  p.c = c.data();
  p.ldc = ldc;
  p.y = y.data();
  p.ldy = ldy;
  p.row_scales = rs.data();
  p.col_scales = cs.data();
  gemm_s8(p);
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      ASSERT_EQ(c[i * ldc + j], want[i * n + j]) << "m=" << i << " n=" << j;
      // The epilogue is exactly float(c) * row * col in that order.
      ASSERT_EQ(y[i * ldy + j], static_cast<float>(want[i * n + j]) * rs[i] * cs[j]) << "m=" << i << " n=" << j;
    }
    for (size_t j = n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], 0x5a5a5a5a) << "c padding written";
    for (size_t j = n; j < ldy; ++j) ASSERT_TRUE(is_poison(y[i * ldy + j])) << "y padding written";
  }
  for (size_t i = m * ldc; i < c.size(); ++i) ASSERT_EQ(c[i], 0x5a5a5a5a);
  for (size_t i = m * ldy; i < y.size(); ++i) ASSERT_TRUE(is_poison(y[i]));

  // Only one output, and no scales.
  gemm_s8_problem q = p;
  std::vector<float> y2(m * n);
  q.c = nullptr;
  q.y = y2.data();
  q.ldy = 0;
  q.row_scales = q.col_scales = nullptr;
  gemm_s8(q);
  for (size_t i = 0; i < m * n; ++i) ASSERT_EQ(y2[i], static_cast<float>(want[i]));
}

TEST(Gemm, Int8KernelsMatchNaiveLoopOnEveryTier) {
  for_each_tier([](isa) {
    // N around the 16- and 32-column panels, M around the 6- and 12-row tiles,
    // K around the 2- and 4-byte steps.
    for (size_t k : {1, 2, 3, 4, 5, 63, 64, 65, 300}) {
      for (size_t n : {1, 15, 16, 17, 31, 32, 33, 40, 70}) {
        for (size_t m : {1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 17, 23, 24, 25, 31, 33}) {
          SCOPED_TRACE("m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
          check_gemm_s8<int8_t>(m, n, k, false, static_cast<uint32_t>(m + n + k));
          check_gemm_s8<uint8_t>(m, n, k, false, static_cast<uint32_t>(m * n + k));
        }
      }
    }
    // Extremes: -128 x -128 and 255 x -128 over a long K.
    check_gemm_s8<int8_t>(5, 17, 4096, true, 1);
    check_gemm_s8<uint8_t>(5, 17, 4096, true, 2);
  });
}

TEST(Gemm, Int8RejectsBadProblems) {
  std::vector<int8_t> a(64), b(64);
  std::vector<int32_t> c(4, 7);
  gemm_s8_problem p;
  p.a = a.data();
  p.b = b.data();
  p.m = 2;
  p.n = 2;
  p.k = 16;
  EXPECT_THROW(gemm_s8(p), Error);  // no output
  p.c = c.data();
  p.lda = 8;
  EXPECT_THROW(gemm_s8(p), Error);  // lda < k
  p.lda = 0;
  p.k = 70000;
  EXPECT_THROW(gemm_s8(p), Error);  // k could overflow int32
  p.k = 16;
  p.b = nullptr;
  EXPECT_THROW(gemm_s8(p), Error);
  EXPECT_TRUE(std::all_of(c.begin(), c.end(), [](int32_t v) { return v == 7; }));
}

}  // namespace
}  // namespace lowbit::test
