// Quantize / dequantize: the oracle's error bounds, and every tier's kernels
// against the oracle (bytes exactly for quantizers, bits for dequantizers),
// with strided rows, poison around the outputs and bad-argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tester/tester.hpp"

namespace lowbit::test {
namespace {

constexpr format all_formats[] = {format::f16,  format::bf16, format::q4_0, format::q4_1, format::q8_0,
                                  format::q8_1, format::q4_k, format::q6_k, format::q8_k};

/// K values below, at and above multiples of the format's block.
std::vector<size_t> k_sweep(format f) {
  const size_t b = traits(f).block_length;
  if (b == 1) return {1, 7, 32, 33, 257};
  return {b, 2 * b, 3 * b, 5 * b};
}

/// Largest |x| and the range of x over [begin, end).
void block_stats(const float* x, size_t n, float& amax, float& range) {
  float lo = x[0], hi = x[0];
  amax = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    amax = std::max(amax, std::fabs(x[i]));
  }
  range = hi - lo;
}

// Per-element error bounds, from each format's resolution. `amax` and `range`
// are over the block the element belongs to. The f16 scale adds a relative
// error of 2^-11 to every reconstructed value (|x|*2^-10 covers it twice over).
double element_bound(format f, float amax, float range, float x) {
  const double scale_rounding = std::fabs(x) * std::ldexp(1.0, -10) + amax * std::ldexp(1.0, -10);
  switch (f) {
    case format::q8_0:
    case format::q8_1:
    case format::q8_k: return 0.5 * amax / 127.0 + scale_rounding;  // half a step of 127 levels
    case format::q4_0: return amax / 8.0 + scale_rounding;  // the +8d end clamps to 7d: one full step
    case format::q4_1: return 0.5 * range / 15.0 + scale_rounding + amax * std::ldexp(1.0, -10);
    // K-quants: the sub-block scale is itself quantized (6 or 8 bits) relative
    // to the super-block maximum, so allow up to two steps of the sub-block grid
    // measured on the super-block.
    case format::q4_k: return 2.0 * range / 15.0 + scale_rounding;
    case format::q6_k: return 2.0 * amax / 32.0 + scale_rounding;
    case format::f16: return std::fabs(x) * std::ldexp(1.0, -11) + std::ldexp(1.0, -25);
    case format::bf16: return std::fabs(x) * std::ldexp(1.0, -8);
    default: return 0.0;
  }
}

TEST(Quant, OracleRoundTripWithinFormatBounds) {
  for (format f : all_formats) {
    const size_t block = std::max<size_t>(traits(f).block_length, 32);
    for (data_kind kind : all_data_kinds) {
      const size_t k = 4 * std::max<size_t>(traits(f).block_length, 32);
      const auto x = make_data(k, kind, 11, block);
      const auto q = ref_quantize(f, x, 1, k);
      const auto y = ref_dequantize(f, q.data(), 1, k);
      for (size_t b0 = 0; b0 < k; b0 += block) {
        float amax, range;
        block_stats(x.data() + b0, block, amax, range);
        for (size_t i = b0; i < b0 + block; ++i)
          ASSERT_LE(std::fabs(y[i] - x[i]), element_bound(f, amax, range, x[i]))
              << traits(f).name << " " << data_kind_name(kind) << " element " << i << " x=" << x[i];
      }
    }
  }
}

TEST(Quant, KQuantsReachTheirResolutionOnGaussianData) {
  // RMS error over unit-variance data. A uniform grid over +-3 sigma has RMS
  // error step/sqrt(12): 6/15/3.46 = 0.116 for 4 bits, 6/63/3.46 = 0.028 for
  // 6 bits. The per-sub-block fit must do at least as well.
  const size_t k = 64 * 256;
  const auto x = make_data(k, data_kind::gaussian, 5);
  for (auto [f, limit] : {std::pair{format::q4_k, 0.116}, std::pair{format::q6_k, 0.028},
                          std::pair{format::q4_0, 0.16}, std::pair{format::q4_1, 0.14}, std::pair{format::q8_0, 0.01}}) {
    const auto y = ref_dequantize(f, ref_quantize(f, x, 1, k).data(), 1, k);
    double se = 0;
    for (size_t i = 0; i < k; ++i) se += (y[i] - x[i]) * static_cast<double>(y[i] - x[i]);
    EXPECT_LE(std::sqrt(se / k), limit) << traits(f).name;
  }
}

TEST(Quant, Q8_1SumMatchesItsQuants) {
  // s = fp16(f32 d * sum(q)), with the unrounded d: recompute d from the data.
  const auto x = make_data(256, data_kind::gaussian, 3);
  std::vector<block_q8_1> b(8);
  ref::quantize_row_q8_1(x.data(), b.data(), 256);
  for (size_t i = 0; i < b.size(); ++i) {
    float amax = 0.0f;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * i + j]));
    int sum = 0;
    for (int q : b[i].qs) sum += q;
    EXPECT_EQ(b[i].s, fp32_to_fp16(static_cast<float>(sum) * (amax / 127.0f))) << "block " << i;
  }
}

TEST(Quant, KernelsMatchOracleOnEveryTier) {
  for_each_tier([](isa) {
    for (format f : all_formats) {
      for (size_t k : k_sweep(f)) {
        for (data_kind kind : all_data_kinds) {
          const size_t rows = 3, ldx = k + 5;  // strided input rows
          auto x = make_data(rows * ldx, kind, static_cast<uint32_t>(k), std::max<size_t>(traits(f).block_length, 1));
          std::vector<float> dense(rows * k);
          for (size_t r = 0; r < rows; ++r) std::copy_n(x.data() + r * ldx, k, dense.data() + r * k);
          const auto expected = ref_quantize(f, dense, rows, k);
          // Output with 64 poison bytes after it.
          std::vector<unsigned char> out(expected.size() + 64, 0xcd);
          quantize_rows(f, x.data(), rows, k, out.data(), expected.size(), ldx);
          ASSERT_EQ(std::memcmp(out.data(), expected.data(), expected.size()), 0)
              << selected_kernel("quantize." + std::string(traits(f).name)) << " k=" << k << " "
              << data_kind_name(kind);
          for (size_t i = expected.size(); i < out.size(); ++i) ASSERT_EQ(out[i], 0xcd) << "wrote past the end";

          // Dequantize into strided rows; the padding must stay poisoned.
          const size_t ldy = k + 3;
          std::vector<float> y(rows * ldy + 8, poison_value());
          dequantize_rows(f, expected.data(), expected.size(), rows, k, y.data(), ldy);
          const auto want = ref_dequantize(f, expected.data(), rows, k);
          for (size_t r = 0; r < rows; ++r) {
            ASSERT_EQ(std::memcmp(y.data() + r * ldy, want.data() + r * k, k * sizeof(float)), 0)
                << selected_kernel("dequantize." + std::string(traits(f).name)) << " row " << r;
            for (size_t i = r * ldy + k; i < (r + 1) * ldy; ++i) ASSERT_TRUE(is_poison(y[i])) << "padding written";
          }
          for (size_t i = rows * ldy; i < y.size(); ++i) ASSERT_TRUE(is_poison(y[i])) << "wrote past the end";
        }
      }
    }
  });
}

TEST(Quant, ActivationQuantizersRoundExactTiesLikeTheOracleOnEveryTier) {
  // With a block maximum of -127 the scale is exactly 1 (Q8_0/Q8_1: d = 1;
  // Q8_K: iscale = 1), so x = n + 0.5 lands exactly on a tie: Q8_0/Q8_1 round
  // half away from zero, Q8_K half to even. Vector code must do the same.
  std::vector<float> x(512);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 200) - 100) + 0.5f;
  for (size_t b = 0; b < x.size(); b += 32) x[b] = -127.0f;
  for_each_tier([&](isa) {
    for (format f : {format::q8_0, format::q8_1, format::q8_k}) {
      const auto want = ref_quantize(f, x, 1, x.size());
      std::vector<unsigned char> got(want.size());
      quantize_rows(f, x.data(), 1, x.size(), got.data(), got.size());
      ASSERT_EQ(got, want) << selected_kernel("quantize." + std::string(traits(f).name));
    }
  });
  // And the oracle itself: x[1] = -98.5 and x[2] = -97.5.
  block_q8_0 b;
  ref::quantize_row_q8_0(x.data(), &b, 32);
  EXPECT_EQ(b.qs[1], -99);  // half away from zero
  EXPECT_EQ(b.qs[2], -98);
  block_q8_k bk;
  ref::quantize_row_q8_k(x.data(), &bk, 256);
  EXPECT_EQ(bk.qs[1], -98);  // half to even
  EXPECT_EQ(bk.qs[2], -98);
}

TEST(Quant, BadArgumentsAreClearErrorsAndWriteNothing) {
  const auto x = make_data(256, data_kind::gaussian, 1);
  std::vector<unsigned char> dst(1024, 0xab);
  auto untouched = [&] { return std::all_of(dst.begin(), dst.end(), [](unsigned char c) { return c == 0xab; }); };
  try {
    quantize_rows(format::q4_0, x.data(), 1, 48, dst.data(), dst.size());
    FAIL() << "k=48 is not a multiple of 32";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), status::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("block length 32"), std::string::npos) << e.what();
  }
  try {
    quantize_rows(format::q4_k, x.data(), 1, 256, dst.data(), 100);
    FAIL() << "destination too small";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("144 are needed"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quantize_rows(static_cast<format>(4), x.data(), 1, 32, dst.data(), dst.size()), Error);
  EXPECT_THROW(quantize_rows(format::q8_0, nullptr, 1, 32, dst.data(), dst.size()), Error);
  EXPECT_THROW(quantize_rows(format::q8_0, x.data(), 2, 32, dst.data(), dst.size(), 16), Error);  // ldx < k
  EXPECT_THROW(dequantize_rows(format::q8_0, dst.data(), 33, 1, 64, nullptr), Error);
  EXPECT_TRUE(untouched());
  std::vector<float> y(64, poison_value());
  EXPECT_THROW(dequantize_rows(format::q8_0, dst.data(), 67, 1, 64, y.data()), Error);  // 68 bytes needed
  EXPECT_TRUE(std::all_of(y.begin(), y.end(), is_poison));
  EXPECT_EQ(quantized_size(format::q6_k, 3, 512), 3u * 2u * 210u);
  EXPECT_THROW(quantized_size(format::q6_k, 1, 100), Error);
}

}  // namespace
}  // namespace lowbit::test
