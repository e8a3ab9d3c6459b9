// Quantize / dequantize: the oracle's error bounds, and every tier's kernels
// against the oracle (bytes exactly for quantizers, bits for dequantizers),
// with strided rows, poison around the outputs and bad-argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

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

TEST(Quant, HalfAwayRoundingMatchesTheOracleAroundEveryHalfAndInteger) {
  // Scale 1 again (each block's first value is +-127), and as inputs every
  // float within 256 ulps of each n + 0.5 and each n up to 127, both signs,
  // and every 64th float in [0.25, 1): the vector quantizers round half away
  // from zero by one add and a truncation, which must agree with roundf on
  // every one of them.
  std::vector<float> values;
  for (int n = 0; n <= 127; ++n)
    for (float centre : {static_cast<float>(n), n + 0.5f}) {
      float below = centre, above = centre;
      for (int step = 0; step < 256; ++step) {
        below = std::nextafter(below, 0.0f);
        above = std::nextafter(above, 200.0f);
        values.insert(values.end(), {below, above});
      }
      values.push_back(centre);
    }
  for (float v = 0.25f; v < 1.0f;) {
    values.push_back(v);
    for (int step = 0; step < 64; ++step) v = std::nextafter(v, 2.0f);
  }
  std::vector<float> x;
  for (size_t i = 0; i < values.size(); ++i) {
    if (x.size() % 64 == 0) x.push_back(127.0f);
    if (x.size() % 64 == 32) x.push_back(-127.0f);
    x.push_back(i % 2 ? values[i] : -values[i]);
  }
  while (x.size() % 256 != 0) x.push_back(0.5f);
  for_each_tier([&](isa) {
    for (format f : {format::q8_0, format::q8_1}) {
      const auto want = ref_quantize(f, x, 1, x.size());
      std::vector<unsigned char> got(want.size());
      quantize_rows(f, x.data(), 1, x.size(), got.data(), got.size());
      ASSERT_EQ(got, want) << selected_kernel("quantize." + std::string(traits(f).name));
    }
  });
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

// ------------------------------------------------ dequantize to f16 / bf16 --

/// The oracle's f32 -> `out` (f16 or bf16) conversion of one value, as bits.
uint16_t ref_convert(format out, float v) { return out == format::f16 ? fp32_to_fp16(v) : fp32_to_bf16(v); }

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

constexpr uint16_t half_poison = 0xcdcd;
constexpr format half_formats[] = {format::f16, format::bf16};

/// What dequantize_rows(fmt, ..., out) must write: the oracle's f32 rows, then
/// the oracle's scalar conversion; a same-format "conversion" is a copy.
std::vector<uint16_t> ref_dequantize_to(format fmt, const std::vector<unsigned char>& src, size_t rows, size_t k,
                                        format out) {
  std::vector<uint16_t> want(rows * k);
  if (fmt == out) {
    std::memcpy(want.data(), src.data(), want.size() * sizeof(uint16_t));
    return want;
  }
  const auto f32 = ref_dequantize(fmt, src.data(), rows, k);
  for (size_t i = 0; i < f32.size(); ++i) want[i] = ref_convert(out, f32[i]);
  return want;
}

TEST(Quant, DequantizeToF16AndBf16MatchesOracleOnEveryTier) {
  std::vector<format> sources(std::begin(all_formats), std::end(all_formats));
  sources.push_back(format::f32);
  for_each_tier([&](isa) {
    for (format f : sources) {
      const size_t block = std::max<size_t>(traits(f).block_length, 1);
      for (size_t k : block == 1 ? std::vector<size_t>{1, 7, 32, 33, 257} : k_sweep(f)) {
        for (data_kind kind : all_data_kinds) {
          const size_t rows = 3;
          const auto x = make_data(rows * k, kind, static_cast<uint32_t>(k) + 7, std::max<size_t>(block, 32));
          const auto src = ref_quantize(f, x, rows, k);
          for (format out : half_formats) {
            const std::string what = std::string(traits(f).name) + " -> " + std::string(traits(out).name) +
                                     " k=" + std::to_string(k) + " " + data_kind_name(kind) + " (" +
                                     selected_kernel("quantize." + std::string(traits(out).name)) + ")";
            const auto want = ref_dequantize_to(f, src, rows, k, out);
            // Strided rows with poison in the gaps and after the end.
            const size_t ldy = k + 3;
            std::vector<uint16_t> y(rows * ldy + 8, half_poison);
            dequantize_rows(f, src.data(), src.size(), rows, k, y.data(), out, ldy);
            for (size_t r = 0; r < rows; ++r) {
              ASSERT_EQ(std::memcmp(y.data() + r * ldy, want.data() + r * k, k * sizeof(uint16_t)), 0)
                  << what << " row " << r;
              for (size_t i = r * ldy + k; i < (r + 1) * ldy; ++i) ASSERT_EQ(y[i], half_poison) << what << ": gap written";
            }
            for (size_t i = rows * ldy; i < y.size(); ++i) ASSERT_EQ(y[i], half_poison) << what << ": wrote past the end";
            // Dense rows (ldy = 0) give the same values.
            std::vector<uint16_t> dense(rows * k + 4, half_poison);
            dequantize_rows(f, src.data(), src.size(), rows, k, dense.data(), out);
            ASSERT_EQ(std::memcmp(dense.data(), want.data(), want.size() * sizeof(uint16_t)), 0) << what << " dense";
            for (size_t i = rows * k; i < dense.size(); ++i) ASSERT_EQ(dense[i], half_poison) << what << ": past the end";
          }
        }
      }
    }
  });
}

TEST(Quant, DequantizeToF32OverloadEqualsTheFloatOne) {
  const size_t rows = 2, k = 512;
  const auto x = make_data(rows * k, data_kind::outliers, 9);
  for (format f : all_formats) {
    const auto src = ref_quantize(f, x, rows, k);
    std::vector<float> a(rows * (k + 1), poison_value()), b(rows * (k + 1), poison_value());
    dequantize_rows(f, src.data(), src.size(), rows, k, a.data(), k + 1);
    dequantize_rows(f, src.data(), src.size(), rows, k, static_cast<void*>(b.data()), format::f32, k + 1);
    ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << traits(f).name;
  }
}

TEST(Quant, DequantizeToF16AndBf16AcrossManyTasks) {
  // Enough rows for several pool tasks, each with its own f32 scratch row.
  thread_guard threads;
  set_num_threads(4);
  const size_t rows = 301, k = 512;
  const auto x = make_data(rows * k, data_kind::gaussian, 77);
  for (format f : {format::q4_k, format::q8_0, format::bf16}) {
    const auto src = ref_quantize(f, x, rows, k);
    for (format out : half_formats) {
      const auto want = ref_dequantize_to(f, src, rows, k, out);
      std::vector<uint16_t> y(rows * k, half_poison);
      dequantize_rows(f, src.data(), src.size(), rows, k, y.data(), out);
      ASSERT_EQ(y, want) << traits(f).name << " -> " << traits(out).name;
    }
  }
}

/// f32 bit patterns on every edge of the two conversions.
const std::vector<uint32_t> conversion_edges = {
    0x00000000, 0x80000000,                          // signed zeros
    0x7f800000, 0xff800000,                          // infinities
    0x7fc00000, 0xffc00000, 0x7fc00001, 0x7fffffff,  // quiet NaNs, with payloads
    0xffffffff, 0x7fe02000, 0xffd55555,
    0x7f800001, 0xff800001, 0x7fa00000, 0x7f802000,  // signalling NaNs (f16 keeps the top payload bits)
    0x7f801fff, 0x7fbfffff,
    0x00000001, 0x80000001, 0x007fffff, 0x807fffff,  // f32 subnormals
    0x00400000, 0x00800000, 0x80800000,              // ... and the smallest normals
    0x3f800000, 0xbf800000, 0x3f801000, 0x3f803000,  // f16 ties: 1 + 2^-11 -> 1, 1 + 3*2^-11 -> up
    0x3f801001, 0x3f800fff, 0xbf803000,
    0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff,  // bf16 ties and their neighbours
    0xbf818000, 0x7f7f8000, 0x7f7f7fff, 0xff7f8000,  // bf16 ties at the top (-> Inf and below)
    0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001,  // f16 65504, just below/at/above the overflow tie
    0xc77ff000, 0x47800000, 0x7f7fffff, 0xff7fffff,  // f16 overflow to Inf
    0x38800000, 0x387fffff, 0x387fe000, 0x387ff000,  // f16 smallest normal and the subnormal boundary
    0x33800000, 0x33000000, 0x33000001, 0x32ffffff,  // f16 smallest subnormal, half of it (tie -> 0), around
    0x33c00000, 0x34200000, 0xb3c00000, 0x34a00000,  // f16 subnormal ties (1.5, 2.5 ulps...)
    0x35000000, 0x35100000, 0x37ffe000, 0x387fc000,
};

/// The edges, then random patterns over the whole range and random mantissas
/// in the f16 subnormal and near-overflow binades.
std::vector<uint32_t> conversion_inputs() {
  std::vector<uint32_t> v = conversion_edges;
  std::mt19937 rng(1234);
  for (int i = 0; i < 4096; ++i) v.push_back(static_cast<uint32_t>(rng()));
  for (int i = 0; i < 512; ++i) {
    const uint32_t m = static_cast<uint32_t>(rng()) & 0x807fffffu;
    v.push_back(m | (static_cast<uint32_t>(102 + i % 12) << 23));
    v.push_back(m | (142u << 23));
  }
  return v;
}

TEST(Quant, F16AndBf16ConvertersMatchOracleOnSpecialValuesOnEveryTier) {
  const auto bits = conversion_inputs();
  std::vector<float> x(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) x[i] = from_bits(bits[i]);
  for_each_tier([&](isa tier) {
    for (format out : half_formats) {
      const std::string op = "quantize." + std::string(traits(out).name);
      const std::string kernel = selected_kernel(op);
      // The tier's own converter is the one under test (where it has one).
      for (isa t : {isa::scalar, isa::avx2, isa::avx2_vnni, isa::avx512, isa::avx512_vnni}) {
        if (t == tier) {
          EXPECT_EQ(kernel, "quant_" + std::string(traits(out).name) + "__" + std::string(isa_name(t)));
        }
      }
      // Every length up to two AVX-512 vectors and every start among the edges,
      // so the edge values land in many lanes of full vectors and of tails;
      // then the whole set at once. Through quantize_rows and dequantize_rows from f32.
      // Each check reports its first difference only and says whether it passed.
      auto check = [&](size_t start, size_t n) {
        std::vector<uint16_t> q(n + 8, half_poison), d(n + 8, half_poison);
        quantize_rows(out, x.data() + start, 1, n, q.data(), n * sizeof(uint16_t));
        dequantize_rows(format::f32, x.data() + start, n * sizeof(float), 1, n, d.data(), out);
        for (size_t i = 0; i < n; ++i) {
          const uint16_t want = ref_convert(out, x[start + i]);
          if (q[i] != want || d[i] != want) {
            ADD_FAILURE() << kernel << ": f32 bits 0x" << std::hex << bits[start + i] << " -> quantize_rows 0x" << q[i]
                          << ", dequantize_rows from f32 0x" << d[i] << ", oracle 0x" << want << std::dec << " (at "
                          << i << " of k=" << n << ")";
            return false;
          }
        }
        for (size_t i = n; i < q.size(); ++i) {
          if (q[i] != half_poison || d[i] != half_poison) {
            ADD_FAILURE() << kernel << ": wrote past k=" << n;
            return false;
          }
        }
        return true;
      };
      bool ok = true;
      for (size_t n = 1; ok && n <= 32; ++n)
        for (size_t start = 0; ok && start < conversion_edges.size(); ++start) ok = check(start, n);
      if (ok) check(0, x.size());
    }
  });
  // The oracle's own edges, spelled out.
  EXPECT_EQ(fp32_to_fp16(from_bits(0x477ff000)), 0x7c00);  // 65520 rounds to Inf
  EXPECT_EQ(fp32_to_fp16(from_bits(0x477fefff)), 0x7bff);  // just below stays 65504
  EXPECT_EQ(fp32_to_fp16(from_bits(0x33000000)), 0x0000);  // half the smallest subnormal: tie to even 0
  EXPECT_EQ(fp32_to_fp16(from_bits(0x33000001)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(from_bits(0x3f801000)), 0x3c00);  // tie to even
  EXPECT_EQ(fp32_to_fp16(from_bits(0x3f803000)), 0x3c02);
  EXPECT_EQ(fp32_to_fp16(from_bits(0x7f800001)), 0x7e00);  // signalling NaN -> quiet NaN
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f808000)), 0x3f80);  // tie to even
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f818000)), 0x3f82);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7f7f8000)), 0x7f80);  // rounds up to Inf
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7f800001)), 0x7fc0);  // signalling NaN -> quiet NaN
}

TEST(Quant, DequantizeToHalfBadArgumentsAreClearErrorsAndWriteNothing) {
  const size_t rows = 2, k = 64;
  const auto x = make_data(rows * k, data_kind::gaussian, 5);
  const auto src = ref_quantize(format::q8_0, x, rows, k);  // 2 * 68 bytes
  std::vector<uint16_t> y(rows * k + 16, half_poison);
  auto untouched = [&] { return std::all_of(y.begin(), y.end(), [](uint16_t v) { return v == half_poison; }); };
  auto expect_error = [&](auto call, status code, std::initializer_list<const char*> needles, const char* what) {
    try {
      call();
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << what << ": " << e.what();
      for (const char* n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << what << ": " << e.what();
    }
    EXPECT_TRUE(untouched()) << what << ": the output was written";
  };
  // Output formats other than f32/f16/bf16, known and unknown.
  for (format bad : {format::q8_0, format::q4_k, format::q8_k}) {
    const std::string name(traits(bad).name);
    expect_error([&] { dequantize_rows(format::q8_0, src.data(), src.size(), rows, k, y.data(), bad); },
                 status::invalid_argument, {"dequantize_rows", name.c_str(), "expected f32, f16 or bf16"},
                 "out format");
  }
  expect_error([&] { dequantize_rows(format::q8_0, src.data(), src.size(), rows, k, y.data(), static_cast<format>(4)); },
               status::invalid_argument, {"code 4", "expected f32, f16 or bf16"}, "unknown out format");
  // Short source buffers.
  for (format out : {format::f16, format::bf16, format::f32}) {
    expect_error([&] { dequantize_rows(format::q8_0, src.data(), src.size() - 1, rows, k, y.data(), out); },
                 status::invalid_argument, {"source holds 135 bytes, 136 are needed"}, "short q8_0 source");
    expect_error([&] { dequantize_rows(format::f16, src.data(), 2 * rows * k - 1, rows, k, y.data(), out); },
                 status::invalid_argument, {"are needed"}, "short f16 source");
  }
  // k off the block, ldy below k, nulls, an unknown source format.
  expect_error([&] { dequantize_rows(format::q8_0, src.data(), src.size(), 1, 48, y.data(), format::f16); },
               status::invalid_argument, {"block length 32"}, "k=48");
  expect_error([&] { dequantize_rows(format::q8_0, src.data(), src.size(), rows, k, y.data(), format::bf16, k - 1); },
               status::invalid_argument, {"ldy=63 is smaller than k=64"}, "ldy < k");
  expect_error([&] { dequantize_rows(format::q8_0, src.data(), src.size(), rows, k, nullptr, format::f16); },
               status::invalid_argument, {"must not be null"}, "null y");
  expect_error([&] { dequantize_rows(format::q8_0, nullptr, src.size(), rows, k, y.data(), format::f16); },
               status::invalid_argument, {"must not be null"}, "null src");
  expect_error([&] { dequantize_rows(static_cast<format>(4), src.data(), src.size(), rows, 32, y.data(), format::f16); },
               status::unsupported, {"unknown format code 4"}, "unknown source format");
  // Nothing to do is not an error.
  EXPECT_NO_THROW(dequantize_rows(format::q8_0, nullptr, 0, 0, k, nullptr, format::f16));
}

}  // namespace
}  // namespace lowbit::test
