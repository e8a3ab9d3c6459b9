// Formats: block sizes, the traits table, half/bfloat16 conversions, and known
// byte vectors from GGUF's reference quantizers (via gguf-py, see tests/data).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "golden_blocks.inc"
#include "tester/tester.hpp"

namespace lowbit::test {
namespace {

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
uint32_t to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

TEST(Formats, BlockSizesMatchGguf) {
  EXPECT_EQ(sizeof(block_q4_0), 18u);
  EXPECT_EQ(sizeof(block_q4_1), 20u);
  EXPECT_EQ(sizeof(block_q8_0), 34u);
  EXPECT_EQ(sizeof(block_q8_1), 36u);
  EXPECT_EQ(sizeof(block_q4_k), 144u);
  EXPECT_EQ(sizeof(block_q6_k), 210u);
  EXPECT_EQ(sizeof(block_q8_k), 292u);
  // Field offsets that GGUF readers rely on.
  EXPECT_EQ(offsetof(block_q6_k, d), 208u);
  EXPECT_EQ(offsetof(block_q4_k, qs), 16u);
  EXPECT_EQ(offsetof(block_q8_k, bsums), 260u);
  EXPECT_EQ(offsetof(block_q8_1, qs), 4u);
}

TEST(Formats, TraitsTable) {
  struct expected {
    format f;
    const char* name;
    uint32_t code, length, bytes;
    format activation;
    bool weight;
  };
  const expected table[] = {
      {format::f32, "f32", 0, 1, 4, format::f32, false},     {format::f16, "f16", 1, 1, 2, format::f16, false},
      {format::bf16, "bf16", 30, 1, 2, format::bf16, false}, {format::q4_0, "q4_0", 2, 32, 18, format::q8_0, true},
      {format::q4_1, "q4_1", 3, 32, 20, format::q8_1, true}, {format::q8_0, "q8_0", 8, 32, 34, format::q8_0, true},
      {format::q8_1, "q8_1", 9, 32, 36, format::q8_1, false}, {format::q4_k, "q4_k", 12, 256, 144, format::q8_k, true},
      {format::q6_k, "q6_k", 14, 256, 210, format::q8_k, true}, {format::q8_k, "q8_k", 15, 256, 292, format::q8_k, false},
  };
  for (const auto& e : table) {
    const format_traits& t = traits(e.f);
    EXPECT_EQ(t.name, e.name);
    EXPECT_EQ(static_cast<uint32_t>(e.f), e.code) << e.name;
    EXPECT_EQ(t.block_length, e.length) << e.name;
    EXPECT_EQ(t.block_bytes, e.bytes) << e.name;
    EXPECT_EQ(t.activation, e.activation) << e.name;
    EXPECT_EQ(t.is_weight, e.weight) << e.name;
    EXPECT_EQ(find_format(std::string_view(e.name)), &t);
  }
  EXPECT_EQ(find_format(std::string_view("Q4_K")), &traits(format::q4_k));
  EXPECT_EQ(find_format(std::string_view("q5_0")), nullptr);
  EXPECT_EQ(find_format(static_cast<format>(4)), nullptr);  // removed Q4_2
  EXPECT_THROW(traits(static_cast<format>(4)), Error);
  EXPECT_EQ(row_bytes(traits(format::q4_k), 4096), 16u * 144u);
}

TEST(Formats, HalfRoundTripsEveryValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_fp32(static_cast<f16_bits>(h));
    const bool nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff) != 0;
    if (nan) {
      EXPECT_TRUE(std::isnan(f)) << h;
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f)))) << h;
    } else {
      ASSERT_EQ(fp32_to_fp16(f), h) << "half 0x" << std::hex << h;
    }
  }
  EXPECT_EQ(fp16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
}

TEST(Formats, HalfRoundsToNearestEvenLikeNumpy) {
  const size_t n = sizeof(golden_f16_input) / sizeof(golden_f16_input[0]);
  ASSERT_EQ(n, sizeof(golden_f16_bits) / sizeof(golden_f16_bits[0]));
  for (size_t i = 0; i < n; ++i)
    EXPECT_EQ(fp32_to_fp16(from_bits(golden_f16_input[i])), golden_f16_bits[i])
        << "input " << from_bits(golden_f16_input[i]);
}

TEST(Formats, HalfRoundingMatchesExactMidpoints) {
  // Every f32 between two adjacent halves rounds to the nearer, ties to even.
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const float f = from_bits(rng() & 0x47ffffffu);  // positive, below 2^16
    const f16_bits h = fp32_to_fp16(f);
    const double got = fp16_to_fp32(h);
    if (std::isinf(got)) {
      EXPECT_GE(f, 65520.0f);
      continue;
    }
    const double below = fp16_to_fp32(static_cast<f16_bits>(h - (h > 0 ? 1 : 0)));
    const double above = fp16_to_fp32(static_cast<f16_bits>(h + 1));
    const double err = std::fabs(got - f);
    ASSERT_LE(err, std::fabs(below - f)) << f;
    ASSERT_LE(err, std::fabs(above - f)) << f;
  }
}

TEST(Formats, BFloat16) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f808001u)), 0x3f81);  // above the tie
  EXPECT_EQ(fp32_to_bf16(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::nanf("")))));
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_fp32(static_cast<bf16_bits>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(fp32_to_bf16(f), h);
    }
  }
}

/// Quantizes the golden inputs with the oracle and with the public API.
void expect_golden_quantize(format fmt, const uint8_t* expected, size_t expected_bytes) {
  const size_t n = sizeof(golden_quant_input) / sizeof(golden_quant_input[0]);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = from_bits(golden_quant_input[i]);
  const size_t rows = n / 64;
  ASSERT_EQ(expected_bytes, quantized_size(fmt, rows, 64));
  const auto ours = ref_quantize(fmt, x, rows, 64);
  for (size_t i = 0; i < expected_bytes; ++i)
    ASSERT_EQ(ours[i], expected[i]) << traits(fmt).name << " byte " << i << " (block " << i / traits(fmt).block_bytes
                                    << ")";
  std::vector<unsigned char> api(expected_bytes);
  quantize_rows(fmt, x.data(), rows, 64, api.data(), api.size());
  EXPECT_EQ(std::memcmp(api.data(), expected, expected_bytes), 0) << traits(fmt).name << " via quantize_rows";
}

TEST(Formats, GoldenQ4_0) { expect_golden_quantize(format::q4_0, golden_q4_0_bytes, sizeof golden_q4_0_bytes); }
TEST(Formats, GoldenQ4_1) { expect_golden_quantize(format::q4_1, golden_q4_1_bytes, sizeof golden_q4_1_bytes); }
TEST(Formats, GoldenQ8_0) { expect_golden_quantize(format::q8_0, golden_q8_0_bytes, sizeof golden_q8_0_bytes); }

void expect_golden_dequantize(format fmt, const uint8_t* blocks, size_t block_bytes, const uint32_t* values,
                              size_t count) {
  const size_t k = count;
  ASSERT_EQ(block_bytes, quantized_size(fmt, 1, k));
  const auto ours = ref_dequantize(fmt, blocks, 1, k);
  for (size_t i = 0; i < k; ++i) ASSERT_EQ(to_bits(ours[i]), values[i]) << traits(fmt).name << " element " << i;
  std::vector<float> api(k);
  dequantize_rows(fmt, blocks, block_bytes, 1, k, api.data());
  for (size_t i = 0; i < k; ++i) ASSERT_EQ(to_bits(api[i]), values[i]) << traits(fmt).name << " via API, element " << i;
}

TEST(Formats, GoldenQ4_K) {
  expect_golden_dequantize(format::q4_k, golden_q4_k_blocks, sizeof golden_q4_k_blocks, golden_q4_k_values,
                           sizeof golden_q4_k_values / sizeof(uint32_t));
}
TEST(Formats, GoldenQ6_K) {
  expect_golden_dequantize(format::q6_k, golden_q6_k_blocks, sizeof golden_q6_k_blocks, golden_q6_k_values,
                           sizeof golden_q6_k_values / sizeof(uint32_t));
}

TEST(Formats, KnownQ8_1Block) {
  // +-127 alternating: d = 1, q = +-127, sum 0, so s = 0. Then an all-zero block.
  float x[64] = {};
  for (int i = 0; i < 32; ++i) x[i] = (i % 2) ? 127.0f : -127.0f;
  block_q8_1 b[2];
  ref::quantize_row_q8_1(x, b, 64);
  EXPECT_EQ(b[0].d, 0x3c00);  // 1.0
  EXPECT_EQ(b[0].s, 0x0000);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(b[0].qs[i], (i % 2) ? 127 : -127);
  EXPECT_EQ(b[1].d, 0);
  EXPECT_EQ(b[1].s, 0);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(b[1].qs[i], 0);
  // x = 0..31: d = 31/127; q = round(x*127/31); s = fp16(sum(q) * d).
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i);
  ref::quantize_row_q8_1(x, b, 32);
  int sum = 0;
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(b[0].qs[i], static_cast<int>(std::round(i * (127.0f / 31.0f)))) << i;
    sum += b[0].qs[i];
  }
  EXPECT_EQ(sum, 2032);  // 127 * 16: the rounded values are symmetric about 63.5
  EXPECT_EQ(b[0].s, fp32_to_fp16(2032.0f * (31.0f / 127.0f)));
}

TEST(Formats, KnownQ8_KBlock) {
  // The signed extreme -2 sets iscale = 63.5: -2 -> -127, 1 -> round-even(63.5) = 64.
  float x[256] = {};
  x[0] = -2.0f;
  for (int i = 1; i < 256; ++i) x[i] = (i % 16 == 0) ? 1.0f : 0.0f;
  block_q8_k b;
  ref::quantize_row_q8_k(x, &b, 256);
  EXPECT_EQ(b.d, 1.0f / 63.5f);
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[16], 64);
  EXPECT_EQ(b.qs[1], 0);
  EXPECT_EQ(b.bsums[0], -127);
  for (int g = 1; g < 16; ++g) EXPECT_EQ(b.bsums[g], 64);
  // Ties round to even: the extreme -127 gives iscale = 1, so 2.5 -> 2, 3.5 -> 4, -2.5 -> -2.
  for (auto& v : x) v = 0.0f;
  x[0] = -127.0f;
  x[1] = 2.5f;
  x[2] = 3.5f;
  x[3] = -2.5f;
  ref::quantize_row_q8_k(x, &b, 256);
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[1], 2);
  EXPECT_EQ(b.qs[2], 4);
  EXPECT_EQ(b.qs[3], -2);
  // An all-zero block has d = 0 and zero sums.
  for (auto& v : x) v = 0.0f;
  ref::quantize_row_q8_k(x, &b, 256);
  EXPECT_EQ(b.d, 0.0f);
  for (int g = 0; g < 16; ++g) EXPECT_EQ(b.bsums[g], 0);
}

TEST(Formats, Q4_KScalePackingRoundTrips) {
  // Every 6-bit scale/min value survives the 12-byte packing in every slot.
  for (int v = 0; v < 64; ++v) {
    uint8_t sc[8], mn[8];
    for (int s = 0; s < 8; ++s) {
      sc[s] = static_cast<uint8_t>((v + 7 * s) % 64);
      mn[s] = static_cast<uint8_t>((63 - v + 3 * s) % 64);
    }
    uint8_t packed[12] = {};
    for (int s = 0; s < 8; ++s) {
      if (s < 4) {
        packed[s] = static_cast<uint8_t>(packed[s] | sc[s]);
        packed[s + 4] = static_cast<uint8_t>(packed[s + 4] | mn[s]);
      } else {
        packed[s + 4] = static_cast<uint8_t>((sc[s] & 0xf) | ((mn[s] & 0xf) << 4));
        packed[s - 4] = static_cast<uint8_t>(packed[s - 4] | ((sc[s] >> 4) << 6));
        packed[s] = static_cast<uint8_t>(packed[s] | ((mn[s] >> 4) << 6));
      }
    }
    for (size_t s = 0; s < 8; ++s) {
      int got_sc, got_mn;
      ref::q4_k_scale_min(packed, s, got_sc, got_mn);
      EXPECT_EQ(got_sc, sc[s]);
      EXPECT_EQ(got_mn, mn[s]);
    }
  }
}

}  // namespace
}  // namespace lowbit::test
