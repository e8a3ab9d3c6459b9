// The C API, function by function, against the scalar oracle.
//
// The C API is what other runtimes and FFI bindings see, so it is tested only
// through lowbit.h: the C++ library is used here just for test data and for the
// oracle (lowbit::ref). Each function is checked for its result, its status
// codes and messages, and the promise that a failed call writes nothing: output
// buffers are filled with 0xAB beforehand and must come back byte for byte.
// Every test leaves dispatch as it found it (lowbit_clear_isa_overrides).
#include "lowbit/lowbit.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/ref/attention.hpp"
#include "kernels/ref/gemm_s8.hpp"
#include "tester/tester.hpp"

namespace {

using lowbit::test::make_data;
using lowbit::test::data_kind;

/// Drops every ISA override when a test scope ends, through the C API.
struct c_isa_guard {
  ~c_isa_guard() { EXPECT_EQ(lowbit_clear_isa_overrides(), LOWBIT_OK); }
};

/// Restores the thread count when a test scope ends, through the C API.
struct c_thread_guard {
  size_t saved = lowbit_get_num_threads();
  ~c_thread_guard() { EXPECT_EQ(lowbit_set_num_threads(saved), LOWBIT_OK); }
};

lowbit::format cpp(lowbit_format f) { return static_cast<lowbit::format>(f); }

struct format_case {
  lowbit_format code;
  const char* name;
  size_t block_length, block_bytes;
  bool weight;
};
const format_case all_formats[] = {
    {LOWBIT_F32, "f32", 1, 4, false},     {LOWBIT_F16, "f16", 1, 2, false},     {LOWBIT_BF16, "bf16", 1, 2, false},
    {LOWBIT_Q4_0, "q4_0", 32, 18, true},  {LOWBIT_Q4_1, "q4_1", 32, 20, true},  {LOWBIT_Q8_0, "q8_0", 32, 34, true},
    {LOWBIT_Q8_1, "q8_1", 32, 36, false}, {LOWBIT_Q4_K, "q4_k", 256, 144, true}, {LOWBIT_Q6_K, "q6_k", 256, 210, true},
    {LOWBIT_Q8_K, "q8_k", 256, 292, false},
};
const lowbit_format weight_formats[] = {LOWBIT_Q4_0, LOWBIT_Q4_1, LOWBIT_Q8_0, LOWBIT_Q4_K, LOWBIT_Q6_K};

const char* format_name(lowbit_format f) {
  for (const auto& c : all_formats)
    if (c.code == f) return c.name;
  return "?";
}

std::string last_error() { return lowbit_last_error(); }

/// The kernel dispatch runs for `op` now, through the C API.
std::string kernel_for(const std::string& op) {
  const char* kernel = nullptr;
  EXPECT_EQ(lowbit_selected_kernel(op.c_str(), &kernel), LOWBIT_OK) << op << ": " << last_error();
  return kernel ? kernel : "";
}
/// The tier suffix of a kernel name without underscores: "avx512vnni" for
/// "gemm_q4_0_q8_0_4x16__avx512vnni" (kernel names may spell avx512_vnni either way).
std::string without_underscores(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  return s;
}
std::string kernel_tier(const std::string& kernel) {
  const size_t at = kernel.rfind("__");
  return at == std::string::npos ? "" : without_underscores(kernel.substr(at + 2));
}
bool is_scalar_kernel(const std::string& op) {
  const std::string k = kernel_for(op);
  return k.size() >= 8 && k.compare(k.size() - 8, 8, "__scalar") == 0;
}

/// Every op lowbit_selected_kernel knows.
std::vector<std::string> all_ops() {
  std::vector<std::string> ops;
  for (const char* f : {"f16", "bf16", "q4_0", "q4_1", "q8_0", "q8_1", "q4_k", "q6_k", "q8_k"}) {
    ops.push_back(std::string("quantize.") + f);
    ops.push_back(std::string("dequantize.") + f);
  }
  for (lowbit_format f : weight_formats)
    for (const char* c : {"gemv", "small", "large"}) ops.push_back(std::string("linear.") + format_name(f) + "." + c);
  for (const char* a : {"s8", "u8"})
    for (const char* c : {"gemv", "small", "large"}) ops.push_back(std::string("gemm_s8.") + a + "." + c);
  ops.push_back("attention.f32_f32");
  return ops;
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}
bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// A buffer of `n` bytes of 0xAB, for "a failed call writes nothing" checks.
std::vector<unsigned char> sentinel_bytes(size_t n) { return std::vector<unsigned char>(n, 0xAB); }
bool all_sentinel(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  return std::all_of(b, b + n, [](unsigned char c) { return c == 0xAB; });
}
float sentinel_float() {
  float f;
  const uint32_t bits = 0xABABABABu;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// Exact where the selected kernel is the scalar oracle; a relative bound otherwise.
void expect_matches(const std::vector<float>& got, const std::vector<float>& expected, bool exact,
                    const std::string& what) {
  ASSERT_EQ(got.size(), expected.size()) << what;
  if (exact) {
    size_t first = 0;
    while (first < got.size() && std::memcmp(&got[first], &expected[first], sizeof(float)) == 0) ++first;
    EXPECT_EQ(first, got.size()) << what << ": first difference at " << first << ": "
                                 << (first < got.size() ? got[first] : 0.0f) << " vs "
                                 << (first < got.size() ? expected[first] : 0.0f);
    return;
  }
  double scale = 0;
  for (float v : expected)
    if (!std::isnan(v)) scale = std::max(scale, std::fabs(static_cast<double>(v)));
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(expected[i])) {  // padding the oracle leaves as poison: the same bits, untouched
      ASSERT_EQ(std::memcmp(&got[i], &expected[i], sizeof(float)), 0) << what << " wrote padding at " << i;
      continue;
    }
    ASSERT_LE(std::fabs(static_cast<double>(got[i]) - expected[i]), 1e-5 * scale + 1e-30) << what << " at " << i;
  }
}

// ------------------------------------------------------------ basics -------

TEST(CApi, VersionAndStatusNames) {
  const char* v = lowbit_version();
  ASSERT_NE(v, nullptr);
  unsigned major = 0, minor = 0, patch = 0;
  char extra = 0;
  EXPECT_EQ(std::sscanf(v, "%u.%u.%u%c", &major, &minor, &patch, &extra), 3) << "version '" << v << "'";

  const std::pair<lowbit_status, const char*> names[] = {
      {LOWBIT_OK, "LOWBIT_OK"},
      {LOWBIT_INVALID_ARGUMENT, "LOWBIT_INVALID_ARGUMENT"},
      {LOWBIT_UNSUPPORTED, "LOWBIT_UNSUPPORTED"},
      {LOWBIT_ISA_UNAVAILABLE, "LOWBIT_ISA_UNAVAILABLE"},
      {LOWBIT_OUT_OF_MEMORY, "LOWBIT_OUT_OF_MEMORY"},
      {LOWBIT_IO_ERROR, "LOWBIT_IO_ERROR"},
      {LOWBIT_BAD_FILE, "LOWBIT_BAD_FILE"},
      {LOWBIT_INTERNAL, "LOWBIT_INTERNAL"},
  };
  for (const auto& [status, name] : names) EXPECT_STREQ(lowbit_status_name(status), name);
  // The C and C++ status codes are one table.
  EXPECT_EQ(static_cast<int>(lowbit::status::isa_unavailable), LOWBIT_ISA_UNAVAILABLE);
  EXPECT_EQ(static_cast<int>(lowbit::status::internal), LOWBIT_INTERNAL);
}

TEST(CApi, BlockLengthAndBytes) {
  for (const auto& c : all_formats) {
    EXPECT_EQ(lowbit_block_length(c.code), c.block_length) << c.name;
    EXPECT_EQ(lowbit_block_bytes(c.code), c.block_bytes) << c.name;
  }
  for (int unknown : {4, 5, 7, 13, 31}) {
    EXPECT_EQ(lowbit_block_length(static_cast<lowbit_format>(unknown)), 0u) << unknown;
    EXPECT_EQ(lowbit_block_bytes(static_cast<lowbit_format>(unknown)), 0u) << unknown;
  }
}

TEST(CApi, QuantizedSize) {
  size_t bytes = 0;
  ASSERT_EQ(lowbit_quantized_size(LOWBIT_Q4_0, 3, 64, &bytes), LOWBIT_OK);
  EXPECT_EQ(bytes, 3u * 2 * 18);
  ASSERT_EQ(lowbit_quantized_size(LOWBIT_Q4_K, 2, 512, &bytes), LOWBIT_OK);
  EXPECT_EQ(bytes, 2u * 2 * 144);
  ASSERT_EQ(lowbit_quantized_size(LOWBIT_F32, 2, 5, &bytes), LOWBIT_OK);
  EXPECT_EQ(bytes, 2u * 5 * 4);
  ASSERT_EQ(lowbit_quantized_size(LOWBIT_Q6_K, 0, 256, &bytes), LOWBIT_OK);
  EXPECT_EQ(bytes, 0u);

  // k not a multiple of the block: an error naming the block length, *bytes untouched.
  bytes = 12345;
  EXPECT_EQ(lowbit_quantized_size(LOWBIT_Q8_0, 1, 33, &bytes), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(bytes, 12345u);
  EXPECT_NE(last_error(), "");
  EXPECT_TRUE(contains(last_error(), "32")) << last_error();
  EXPECT_TRUE(contains(last_error(), "block")) << last_error();
  EXPECT_EQ(lowbit_quantized_size(LOWBIT_Q4_K, 1, 100, &bytes), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "256")) << last_error();
  EXPECT_EQ(bytes, 12345u);

  // A success clears the message.
  ASSERT_EQ(lowbit_quantized_size(LOWBIT_Q8_0, 1, 32, &bytes), LOWBIT_OK);
  EXPECT_EQ(last_error(), "");

  EXPECT_EQ(lowbit_quantized_size(static_cast<lowbit_format>(4), 1, 32, &bytes), LOWBIT_UNSUPPORTED);
  EXPECT_NE(last_error(), "");
  EXPECT_EQ(lowbit_quantized_size(LOWBIT_Q8_0, 1, 32, nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(last_error(), "");
}

// --------------------------------------------------- quantize / dequantize --

TEST(CApi, QuantizeDequantizeMatchTheOracle) {
  c_isa_guard isa;
  constexpr size_t rows = 3, k = 512, ldx = k + 7, ldy = k + 3;
  const auto x = make_data(rows * ldx, data_kind::gaussian, 11);
  for (const auto& c : all_formats) {
    size_t bytes = 0;
    ASSERT_EQ(lowbit_quantized_size(c.code, rows, k, &bytes), LOWBIT_OK) << c.name;
    // Oracle: the same strided rows, quantized by lowbit::ref.
    std::vector<float> dense(rows * k);
    for (size_t r = 0; r < rows; ++r) std::copy_n(x.begin() + r * ldx, k, dense.begin() + r * k);
    const auto expected = lowbit::test::ref_quantize(cpp(c.code), dense, rows, k);
    ASSERT_EQ(expected.size(), bytes) << c.name;

    std::vector<unsigned char> q(bytes);
    ASSERT_EQ(lowbit_quantize_rows(c.code, x.data(), rows, k, ldx, q.data(), q.size()), LOWBIT_OK)
        << c.name << ": " << last_error();
    EXPECT_EQ(last_error(), "");
    const bool exact_quant = c.code == LOWBIT_F32 || is_scalar_kernel(std::string("quantize.") + c.name);
    if (exact_quant) {
      EXPECT_EQ(0, std::memcmp(q.data(), expected.data(), bytes)) << c.name;
    }

    // Dequantize into a strided output; the padding between rows stays untouched.
    std::vector<float> y(rows * ldy, lowbit::test::poison_value());
    ASSERT_EQ(lowbit_dequantize_rows(c.code, q.data(), q.size(), rows, k, y.data(), ldy), LOWBIT_OK)
        << c.name << ": " << last_error();
    const auto y_ref = lowbit::test::ref_dequantize(cpp(c.code), q.data(), rows, k);
    std::vector<float> got(rows * k);
    for (size_t r = 0; r < rows; ++r) {
      std::copy_n(y.begin() + r * ldy, k, got.begin() + r * k);
      for (size_t i = k; i < ldy; ++i) EXPECT_TRUE(lowbit::test::is_poison(y[r * ldy + i])) << c.name;
    }
    const bool exact_dequant = c.code == LOWBIT_F32 || is_scalar_kernel(std::string("dequantize.") + c.name);
    expect_matches(got, y_ref, exact_dequant, std::string("dequantize ") + c.name);
    if (c.code == LOWBIT_F32) {
      EXPECT_EQ(got, dense);
    }
  }
}

TEST(CApi, QuantizeErrorsWriteNothing) {
  constexpr size_t rows = 2, k = 64;
  const auto x = make_data(rows * k, data_kind::gaussian, 12);
  size_t bytes = 0;
  ASSERT_EQ(lowbit_quantized_size(LOWBIT_Q8_0, rows, k, &bytes), LOWBIT_OK);

  auto dst = sentinel_bytes(bytes);
  EXPECT_EQ(lowbit_quantize_rows(LOWBIT_Q8_0, x.data(), rows, k, 0, dst.data(), bytes - 1), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(all_sentinel(dst.data(), dst.size())) << "too-small dst_bytes: the destination was written";
  EXPECT_TRUE(contains(last_error(), std::to_string(bytes))) << last_error();

  EXPECT_EQ(lowbit_quantize_rows(LOWBIT_Q8_0, nullptr, rows, k, 0, dst.data(), bytes), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(last_error(), "");
  EXPECT_EQ(lowbit_quantize_rows(LOWBIT_Q8_0, x.data(), rows, k, 0, nullptr, bytes), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_quantize_rows(LOWBIT_Q8_0, x.data(), rows, 48, 0, dst.data(), bytes), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "32")) << last_error();
  EXPECT_EQ(lowbit_quantize_rows(LOWBIT_Q8_0, x.data(), rows, k, k - 1, dst.data(), bytes), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_quantize_rows(static_cast<lowbit_format>(4), x.data(), rows, k, 0, dst.data(), bytes),
            LOWBIT_UNSUPPORTED);
  EXPECT_TRUE(all_sentinel(dst.data(), dst.size()));

  // Dequantize: too-small source, nulls, bad stride; y untouched.
  std::vector<unsigned char> q(bytes);
  ASSERT_EQ(lowbit_quantize_rows(LOWBIT_Q8_0, x.data(), rows, k, 0, q.data(), q.size()), LOWBIT_OK);
  std::vector<float> y(rows * k, sentinel_float());
  const size_t y_bytes = y.size() * sizeof(float);
  EXPECT_EQ(lowbit_dequantize_rows(LOWBIT_Q8_0, q.data(), bytes - 1, rows, k, y.data(), 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(last_error(), "");
  EXPECT_EQ(lowbit_dequantize_rows(LOWBIT_Q8_0, nullptr, bytes, rows, k, y.data(), 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_dequantize_rows(LOWBIT_Q8_0, q.data(), bytes, rows, k, nullptr, 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_dequantize_rows(LOWBIT_Q8_0, q.data(), bytes, rows, k, y.data(), k - 1), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_dequantize_rows(LOWBIT_Q8_0, q.data(), bytes, rows, 40, y.data(), 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(all_sentinel(y.data(), y_bytes)) << "a failed dequantize wrote its output";

  // And a success clears the message.
  ASSERT_EQ(lowbit_dequantize_rows(LOWBIT_Q8_0, q.data(), bytes, rows, k, y.data(), 0), LOWBIT_OK);
  EXPECT_EQ(last_error(), "");
}

TEST(CApi, DequantizeRowsToF16AndBf16) {
  // Every source format to f32, f16 and bf16 with a strided output: f32 equals
  // lowbit_dequantize_rows; f16/bf16 equal the oracle's scalar conversion of
  // those floats, bit for bit (a same-format call copies the rows); the gaps
  // between rows stay untouched.
  c_isa_guard isa;
  constexpr size_t rows = 3, k = 512, ldy = k + 5;
  const auto x = make_data(rows * k, data_kind::outliers, 13);
  for (const auto& c : all_formats) {
    const auto q = lowbit::test::ref_quantize(cpp(c.code), x, rows, k);
    std::vector<float> f32(rows * k);
    ASSERT_EQ(lowbit_dequantize_rows(c.code, q.data(), q.size(), rows, k, f32.data(), 0), LOWBIT_OK)
        << c.name << ": " << last_error();
    std::vector<float> y32(rows * ldy, sentinel_float());
    ASSERT_EQ(lowbit_dequantize_rows_to(c.code, q.data(), q.size(), rows, k, y32.data(), LOWBIT_F32, ldy), LOWBIT_OK)
        << c.name << ": " << last_error();
    EXPECT_EQ(last_error(), "");
    for (size_t r = 0; r < rows; ++r) {
      EXPECT_EQ(0, std::memcmp(y32.data() + r * ldy, f32.data() + r * k, k * sizeof(float))) << c.name << " f32";
      EXPECT_TRUE(all_sentinel(y32.data() + r * ldy + k, (ldy - k) * sizeof(float))) << c.name << " f32 gap";
    }
    for (lowbit_format out : {LOWBIT_F16, LOWBIT_BF16}) {
      const std::string what = std::string(c.name) + " -> " + format_name(out);
      std::vector<uint16_t> y(rows * ldy + 4);
      std::memset(y.data(), 0xAB, y.size() * sizeof(uint16_t));
      ASSERT_EQ(lowbit_dequantize_rows_to(c.code, q.data(), q.size(), rows, k, y.data(), out, ldy), LOWBIT_OK)
          << what << ": " << last_error();
      for (size_t r = 0; r < rows; ++r) {
        for (size_t i = 0; i < k; ++i) {
          uint16_t want;
          if (c.code == out)
            std::memcpy(&want, q.data() + (r * k + i) * 2, 2);
          else
            want = out == LOWBIT_F16 ? lowbit::fp32_to_fp16(f32[r * k + i]) : lowbit::fp32_to_bf16(f32[r * k + i]);
          ASSERT_EQ(y[r * ldy + i], want) << what << " row " << r << " element " << i;
        }
        EXPECT_TRUE(all_sentinel(y.data() + r * ldy + k, (ldy - k) * sizeof(uint16_t))) << what << " gap";
      }
      EXPECT_TRUE(all_sentinel(y.data() + rows * ldy, 4 * sizeof(uint16_t))) << what << ": wrote past the end";
    }
  }
}

TEST(CApi, DequantizeRowsToErrorsWriteNothing) {
  constexpr size_t rows = 2, k = 64;
  const auto x = make_data(rows * k, data_kind::gaussian, 14);
  const auto q = lowbit::test::ref_quantize(lowbit::format::q8_0, x, rows, k);
  auto y = sentinel_bytes(rows * k * sizeof(float));
  // An output format that is not f32, f16 or bf16: named in the message.
  EXPECT_EQ(lowbit_dequantize_rows_to(LOWBIT_Q8_0, q.data(), q.size(), rows, k, y.data(), LOWBIT_Q4_0, 0),
            LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "q4_0")) << last_error();
  EXPECT_TRUE(contains(last_error(), "f32, f16 or bf16")) << last_error();
  EXPECT_EQ(lowbit_dequantize_rows_to(LOWBIT_Q8_0, q.data(), q.size(), rows, k, y.data(),
                                      static_cast<lowbit_format>(4), 0),
            LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "f32, f16 or bf16")) << last_error();
  // Short source, bad stride, nulls, k off the block, unknown source format.
  for (lowbit_format out : {LOWBIT_F32, LOWBIT_F16, LOWBIT_BF16}) {
    EXPECT_EQ(lowbit_dequantize_rows_to(LOWBIT_Q8_0, q.data(), q.size() - 1, rows, k, y.data(), out, 0),
              LOWBIT_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(last_error(), std::to_string(q.size()) + " are needed")) << last_error();
    EXPECT_EQ(lowbit_dequantize_rows_to(LOWBIT_Q8_0, q.data(), q.size(), rows, k, y.data(), out, k - 1),
              LOWBIT_INVALID_ARGUMENT);
    EXPECT_EQ(lowbit_dequantize_rows_to(LOWBIT_Q8_0, nullptr, q.size(), rows, k, y.data(), out, 0),
              LOWBIT_INVALID_ARGUMENT);
    EXPECT_EQ(lowbit_dequantize_rows_to(LOWBIT_Q8_0, q.data(), q.size(), rows, k, nullptr, out, 0),
              LOWBIT_INVALID_ARGUMENT);
    EXPECT_EQ(lowbit_dequantize_rows_to(LOWBIT_Q8_0, q.data(), q.size(), rows, 40, y.data(), out, 0),
              LOWBIT_INVALID_ARGUMENT);
    EXPECT_EQ(lowbit_dequantize_rows_to(static_cast<lowbit_format>(4), q.data(), q.size(), rows, k, y.data(), out, 0),
              LOWBIT_UNSUPPORTED);
  }
  EXPECT_TRUE(all_sentinel(y.data(), y.size())) << "a failed dequantize wrote its output";
  // And a success clears the message.
  ASSERT_EQ(lowbit_dequantize_rows_to(LOWBIT_Q8_0, q.data(), q.size(), rows, k, y.data(), LOWBIT_BF16, 0), LOWBIT_OK);
  EXPECT_EQ(last_error(), "");
}

// ------------------------------------------------------------- linear ------

TEST(CApi, PackAndLinearMatchTheOracle) {
  c_isa_guard isa;
  constexpr size_t n = 37, k = 512, ldx = k + 5, ldy = n + 2;
  for (lowbit_format f : weight_formats) {
    const std::string name = format_name(f);
    const auto wf = make_data(n * k, data_kind::gaussian, 20 + static_cast<uint32_t>(f));
    size_t bytes = 0;
    ASSERT_EQ(lowbit_quantized_size(f, n, k, &bytes), LOWBIT_OK);
    std::vector<unsigned char> wq(bytes);
    ASSERT_EQ(lowbit_quantize_rows(f, wf.data(), n, k, 0, wq.data(), wq.size()), LOWBIT_OK) << last_error();

    lowbit_packed_weights* w = nullptr;
    ASSERT_EQ(lowbit_pack_weights(f, wq.data(), wq.size(), n, k, &w), LOWBIT_OK) << name << ": " << last_error();
    ASSERT_NE(w, nullptr);
    EXPECT_GE(lowbit_packed_weights_pack_seconds(w), 0.0);

    for (size_t m : {size_t{1}, size_t{3}, size_t{40}}) {
      const char* m_class = m == 1 ? "gemv" : m < 32 ? "small" : "large";
      const std::string what = name + " m=" + std::to_string(m);
      const auto x = make_data(m * ldx, data_kind::gaussian, 30 + static_cast<uint32_t>(m));
      std::vector<float> y(m * ldy, lowbit::test::poison_value());
      ASSERT_EQ(lowbit_linear(w, x.data(), m, ldx, y.data(), ldy), LOWBIT_OK) << what << ": " << last_error();
      EXPECT_EQ(last_error(), "");

      std::vector<float> y_ref(m * ldy, lowbit::test::poison_value());
      ASSERT_TRUE(lowbit::ref::linear(cpp(f), wq.data(), n, k, x.data(), ldx, m, y_ref.data(), ldy));
      std::vector<float> got(m * n), expected(m * n);
      for (size_t i = 0; i < m; ++i) {
        std::copy_n(y.begin() + i * ldy, n, got.begin() + i * n);
        std::copy_n(y_ref.begin() + i * ldy, n, expected.begin() + i * n);
        for (size_t j = n; j < ldy; ++j)
          EXPECT_TRUE(lowbit::test::is_poison(y[i * ldy + j])) << what << ": wrote past n in row " << i;
      }
      expect_matches(got, expected, is_scalar_kernel("linear." + name + "." + m_class), "linear " + what);
    }

    // m = 0 is a no-op.
    EXPECT_EQ(lowbit_linear(w, nullptr, 0, 0, nullptr, 0), LOWBIT_OK);
    lowbit_packed_weights_free(w);
  }
  lowbit_packed_weights_free(nullptr);  // allowed
  EXPECT_EQ(lowbit_packed_weights_pack_seconds(nullptr), 0.0);
}

TEST(CApi, PackAndLinearErrors) {
  constexpr size_t n = 8, k = 64;
  const auto wf = make_data(n * k, data_kind::gaussian, 40);
  size_t bytes = 0;
  ASSERT_EQ(lowbit_quantized_size(LOWBIT_Q4_0, n, k, &bytes), LOWBIT_OK);
  std::vector<unsigned char> wq(bytes);
  ASSERT_EQ(lowbit_quantize_rows(LOWBIT_Q4_0, wf.data(), n, k, 0, wq.data(), wq.size()), LOWBIT_OK);

  // A dummy non-null pointer: a failed pack must set *out to NULL.
  int dummy = 0;
  auto* const not_null = reinterpret_cast<lowbit_packed_weights*>(&dummy);
  lowbit_packed_weights* w = not_null;

  size_t q8k_bytes = 0;
  ASSERT_EQ(lowbit_quantized_size(LOWBIT_Q8_K, n, 256, &q8k_bytes), LOWBIT_OK);
  std::vector<unsigned char> q8k(q8k_bytes);
  EXPECT_EQ(lowbit_pack_weights(LOWBIT_Q8_K, q8k.data(), q8k.size(), n, 256, &w), LOWBIT_UNSUPPORTED);
  EXPECT_EQ(w, nullptr);
  EXPECT_TRUE(contains(last_error(), "q8_k")) << last_error();
  w = not_null;
  EXPECT_EQ(lowbit_pack_weights(LOWBIT_F32, wf.data(), wf.size() * sizeof(float), n, k, &w), LOWBIT_UNSUPPORTED);
  EXPECT_EQ(w, nullptr);
  w = not_null;
  EXPECT_EQ(lowbit_pack_weights(static_cast<lowbit_format>(4), wq.data(), wq.size(), n, k, &w), LOWBIT_UNSUPPORTED);
  EXPECT_EQ(w, nullptr);
  w = not_null;
  EXPECT_EQ(lowbit_pack_weights(LOWBIT_Q4_0, nullptr, wq.size(), n, k, &w), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(w, nullptr);
  w = not_null;
  EXPECT_EQ(lowbit_pack_weights(LOWBIT_Q4_0, wq.data(), wq.size() - 1, n, k, &w), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(w, nullptr);
  EXPECT_TRUE(contains(last_error(), std::to_string(bytes))) << last_error();
  w = not_null;
  EXPECT_EQ(lowbit_pack_weights(LOWBIT_Q4_0, wq.data(), wq.size(), n, 48, &w), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(w, nullptr);
  w = not_null;
  EXPECT_EQ(lowbit_pack_weights(LOWBIT_Q4_0, wq.data(), wq.size(), 0, k, &w), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(w, nullptr);
  EXPECT_EQ(lowbit_pack_weights(LOWBIT_Q4_0, wq.data(), wq.size(), n, k, nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(last_error(), "");

  ASSERT_EQ(lowbit_pack_weights(LOWBIT_Q4_0, wq.data(), wq.size(), n, k, &w), LOWBIT_OK) << last_error();
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(last_error(), "");
  constexpr size_t m = 2;
  const auto x = make_data(m * k, data_kind::gaussian, 41);
  std::vector<float> y(m * n, sentinel_float());
  const size_t y_bytes = y.size() * sizeof(float);
  EXPECT_EQ(lowbit_linear(nullptr, x.data(), m, 0, y.data(), 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(last_error(), "");
  EXPECT_EQ(lowbit_linear(w, nullptr, m, 0, y.data(), 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_linear(w, x.data(), m, 0, nullptr, 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_linear(w, x.data(), m, k - 1, y.data(), 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_linear(w, x.data(), m, 0, y.data(), n - 1), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "ldy")) << last_error();
  EXPECT_TRUE(all_sentinel(y.data(), y_bytes)) << "a failed linear wrote its output";
  ASSERT_EQ(lowbit_linear(w, x.data(), m, 0, y.data(), 0), LOWBIT_OK);
  EXPECT_EQ(last_error(), "");
  lowbit_packed_weights_free(w);
}

// ------------------------------------------------------------- gemm_s8 -----

TEST(CApi, GemmS8MatchesANaiveLoop) {
  c_isa_guard isa;
  constexpr size_t n = 19, k = 77, lda = k + 3, ldb = k + 1, ldc = n + 2, ldy = n + 1;
  std::mt19937 rng(50);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.01f, 2.0f);
  std::vector<int8_t> b(n * ldb);
  for (auto& v : b) v = static_cast<int8_t>(byte(rng) - 128);
  std::vector<float> col_scales(n);
  for (auto& s : col_scales) s = scale(rng);

  for (int a_unsigned : {0, 1}) {
    for (size_t m : {size_t{1}, size_t{4}, size_t{33}}) {
      const char* m_class = m == 1 ? "gemv" : m < 32 ? "small" : "large";
      const std::string op = std::string("gemm_s8.") + (a_unsigned ? "u8." : "s8.") + m_class;
      const bool exact = is_scalar_kernel(op);
      std::vector<uint8_t> a(m * lda);
      for (auto& v : a) v = static_cast<uint8_t>(byte(rng));
      std::vector<float> row_scales(m);
      for (auto& s : row_scales) s = scale(rng);

      // Expected, by a plain loop.
      std::vector<int32_t> c_expected(m * n);
      std::vector<float> y_expected(m * n), y_row_only(m * n), y_unscaled(m * n);
      for (size_t i = 0; i < m; ++i)
        for (size_t j = 0; j < n; ++j) {
          int32_t acc = 0;
          for (size_t p = 0; p < k; ++p) {
            const int32_t av = a_unsigned ? static_cast<int32_t>(a[i * lda + p])
                                          : static_cast<int32_t>(static_cast<int8_t>(a[i * lda + p]));
            acc += av * b[j * ldb + p];
          }
          c_expected[i * n + j] = acc;
          float v = static_cast<float>(acc);
          y_unscaled[i * n + j] = v;
          v *= row_scales[i];
          y_row_only[i * n + j] = v;
          v *= col_scales[j];
          y_expected[i * n + j] = v;
        }

      // Both outputs, strided, with poisoned padding.
      std::vector<int32_t> c(m * ldc, 0x7badbad0);
      std::vector<float> y(m * ldy, lowbit::test::poison_value());
      ASSERT_EQ(lowbit_gemm_s8(a_unsigned, a.data(), lda, b.data(), ldb, m, n, k, c.data(), ldc, row_scales.data(),
                               col_scales.data(), y.data(), ldy),
                LOWBIT_OK)
          << op << ": " << last_error();
      std::vector<int32_t> c_got(m * n);
      std::vector<float> y_got(m * n);
      for (size_t i = 0; i < m; ++i) {
        std::copy_n(c.begin() + i * ldc, n, c_got.begin() + i * n);
        std::copy_n(y.begin() + i * ldy, n, y_got.begin() + i * n);
        for (size_t j = n; j < ldc; ++j) EXPECT_EQ(c[i * ldc + j], 0x7badbad0) << op;
        for (size_t j = n; j < ldy; ++j) EXPECT_TRUE(lowbit::test::is_poison(y[i * ldy + j])) << op;
      }
      EXPECT_EQ(c_got, c_expected) << op;
      expect_matches(y_got, y_expected, exact, op + " y");

      // Only c; only y with one scale; y with no scales (dense strides).
      std::vector<int32_t> c_dense(m * n, 0);
      ASSERT_EQ(lowbit_gemm_s8(a_unsigned, a.data(), lda, b.data(), ldb, m, n, k, c_dense.data(), 0, nullptr,
                               nullptr, nullptr, 0),
                LOWBIT_OK);
      EXPECT_EQ(c_dense, c_expected) << op << " c only";
      std::vector<float> y_dense(m * n, 0.0f);
      ASSERT_EQ(lowbit_gemm_s8(a_unsigned, a.data(), lda, b.data(), ldb, m, n, k, nullptr, 0, row_scales.data(),
                               nullptr, y_dense.data(), 0),
                LOWBIT_OK);
      expect_matches(y_dense, y_row_only, exact, op + " y, row scales only");
      ASSERT_EQ(lowbit_gemm_s8(a_unsigned, a.data(), lda, b.data(), ldb, m, n, k, nullptr, 0, nullptr, nullptr,
                               y_dense.data(), 0),
                LOWBIT_OK);
      expect_matches(y_dense, y_unscaled, exact, op + " y, no scales");
    }
  }
}

TEST(CApi, GemmS8Errors) {
  constexpr size_t m = 2, n = 3, k = 16;
  std::vector<uint8_t> a(m * k, 1);
  std::vector<int8_t> b(n * k, 1);
  std::vector<int32_t> c(m * n);
  std::memset(c.data(), 0xAB, c.size() * sizeof(int32_t));
  int32_t* const c32 = c.data();
  EXPECT_EQ(lowbit_gemm_s8(0, a.data(), 0, b.data(), 0, m, n, k, nullptr, 0, nullptr, nullptr, nullptr, 0),
            LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "output")) << last_error();
  EXPECT_EQ(lowbit_gemm_s8(0, nullptr, 0, b.data(), 0, m, n, k, c32, 0, nullptr, nullptr, nullptr, 0),
            LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_gemm_s8(0, a.data(), 0, nullptr, 0, m, n, k, c32, 0, nullptr, nullptr, nullptr, 0),
            LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_gemm_s8(0, a.data(), k - 1, b.data(), 0, m, n, k, c32, 0, nullptr, nullptr, nullptr, 0),
            LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_gemm_s8(1, a.data(), 0, b.data(), 0, m, n, k, c32, n - 1, nullptr, nullptr, nullptr, 0),
            LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_gemm_s8(0, a.data(), 0, b.data(), 0, m, n, 65537, c32, 0, nullptr, nullptr, nullptr, 0),
            LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "65536")) << last_error();
  EXPECT_TRUE(all_sentinel(c.data(), c.size() * sizeof(int32_t))) << "a failed gemm_s8 wrote its output";
  ASSERT_EQ(lowbit_gemm_s8(0, a.data(), 0, b.data(), 0, m, n, k, c32, 0, nullptr, nullptr, nullptr, 0), LOWBIT_OK);
  EXPECT_EQ(last_error(), "");
  for (size_t i = 0; i < m * n; ++i) EXPECT_EQ(c32[i], static_cast<int32_t>(k));
}

// ------------------------------------------------------------ attention ----

TEST(CApi, AttentionMatchesTheOracle) {
  c_isa_guard isa;
  // Every attention kernel (the scalar tier's included) runs an f32 online
  // softmax, the oracle accumulates in double: close, not bit-equal.
  const bool exact = false;
  struct variant {
    int causal;
    size_t pad;  // extra floats per token in every stride (0 = dense, strides passed as 0)
    float scale;
  };
  for (const variant& v : {variant{1, 0, 0.0f}, variant{0, 0, 0.0f}, variant{1, 3, 0.2f}, variant{0, 5, 0.05f}}) {
    lowbit_attention_shape s{};
    s.n_q = 5;
    s.n_kv = 11;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.head_dim = 32;
    s.scale = v.scale;
    s.causal = v.causal;
    const size_t q_row = s.n_heads * s.head_dim + v.pad, kv_row = s.n_kv_heads * s.head_dim + v.pad;
    if (v.pad) {
      s.q_stride = s.out_stride = q_row;
      s.k_stride = s.v_stride = kv_row;
    }
    const auto q = make_data(s.n_q * q_row, data_kind::gaussian, 70);
    const auto k = make_data(s.n_kv * kv_row, data_kind::gaussian, 71);
    const auto val = make_data(s.n_kv * kv_row, data_kind::gaussian, 72);
    std::vector<float> out(s.n_q * q_row, lowbit::test::poison_value());
    ASSERT_EQ(lowbit_attention(&s, q.data(), k.data(), val.data(), out.data()), LOWBIT_OK) << last_error();

    // The oracle on the normalized shape: strides and scale filled in.
    lowbit::attention_shape r;
    r.n_q = s.n_q;
    r.n_kv = s.n_kv;
    r.n_heads = s.n_heads;
    r.n_kv_heads = s.n_kv_heads;
    r.head_dim = s.head_dim;
    r.scale = v.scale != 0.0f ? v.scale : 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    r.causal = v.causal != 0;
    r.q_stride = r.out_stride = q_row;
    r.k_stride = r.v_stride = kv_row;
    std::vector<float> expected(out.size(), lowbit::test::poison_value());
    lowbit::ref::attention(r, q.data(), k.data(), val.data(), expected.data(), 0, r.n_heads);
    for (size_t i = 0; i < s.n_q; ++i)
      for (size_t p = s.n_heads * s.head_dim; p < q_row; ++p)
        EXPECT_TRUE(lowbit::test::is_poison(out[i * q_row + p])) << "wrote into the padding of token " << i;
    expect_matches(out, expected, exact,
                   "attention causal=" + std::to_string(v.causal) + " pad=" + std::to_string(v.pad));
  }
}

TEST(CApi, AttentionErrors) {
  lowbit_attention_shape s{};
  s.n_q = 2;
  s.n_kv = 3;
  s.n_heads = 2;
  s.n_kv_heads = 1;
  s.head_dim = 8;
  s.causal = 1;
  const std::vector<float> q(s.n_q * s.n_heads * s.head_dim, 0.5f), kv(s.n_kv * s.head_dim, 0.25f);
  std::vector<float> out(q.size(), sentinel_float());
  const size_t out_bytes = out.size() * sizeof(float);

  EXPECT_EQ(lowbit_attention(nullptr, q.data(), kv.data(), kv.data(), out.data()), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(last_error(), "");
  EXPECT_EQ(lowbit_attention(&s, nullptr, kv.data(), kv.data(), out.data()), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_attention(&s, q.data(), nullptr, kv.data(), out.data()), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_attention(&s, q.data(), kv.data(), nullptr, out.data()), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_attention(&s, q.data(), kv.data(), kv.data(), nullptr), LOWBIT_INVALID_ARGUMENT);
  lowbit_attention_shape bad = s;
  bad.n_kv_heads = 3;  // does not divide n_heads
  EXPECT_EQ(lowbit_attention(&bad, q.data(), kv.data(), kv.data(), out.data()), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "n_kv_heads")) << last_error();
  bad = s;
  bad.n_kv = 1;  // causal needs n_kv >= n_q
  EXPECT_EQ(lowbit_attention(&bad, q.data(), kv.data(), kv.data(), out.data()), LOWBIT_INVALID_ARGUMENT);
  bad = s;
  bad.head_dim = 0;
  EXPECT_EQ(lowbit_attention(&bad, q.data(), kv.data(), kv.data(), out.data()), LOWBIT_INVALID_ARGUMENT);
  bad = s;
  bad.q_stride = 3;  // smaller than n_heads * head_dim
  EXPECT_EQ(lowbit_attention(&bad, q.data(), kv.data(), kv.data(), out.data()), LOWBIT_INVALID_ARGUMENT);
  bad = s;
  bad.scale = NAN;
  EXPECT_EQ(lowbit_attention(&bad, q.data(), kv.data(), kv.data(), out.data()), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(all_sentinel(out.data(), out_bytes)) << "a failed attention wrote its output";

  ASSERT_EQ(lowbit_attention(&s, q.data(), kv.data(), kv.data(), out.data()), LOWBIT_OK) << last_error();
  EXPECT_EQ(last_error(), "");
  for (float v : out) EXPECT_FLOAT_EQ(v, 0.25f);  // every value row is 0.25
}

// ------------------------------------------------------ paged KV cache -----

/// What a cache of format f holds for `rows` rows of n values: the oracle's
/// quantize then dequantize (f32 as it is).
std::vector<float> held_rows(lowbit_format f, const float* x, size_t rows, size_t n) {
  const std::vector<float> in(x, x + rows * n);
  if (f == LOWBIT_F32) return in;
  return lowbit::test::ref_dequantize(cpp(f), lowbit::test::ref_quantize(cpp(f), in, rows, n).data(), rows, n);
}

lowbit_kv_cache_config kv_config(lowbit_format kf, lowbit_format vf, size_t block_tokens, size_t max_blocks) {
  lowbit_kv_cache_config c{};
  c.n_layers = 2;
  c.n_kv_heads = 2;
  c.head_dim = 64;
  c.k_format = kf;
  c.v_format = vf;
  c.block_tokens = block_tokens;
  c.max_blocks = max_blocks;
  return c;
}

TEST(CApi, KvCacheHoldsWhatTheOracleRoundsAndAttendsOverIt) {
  c_isa_guard isa;
  struct variant {
    lowbit_format k, v;
    size_t block_tokens;  // 0: the default, 32
  };
  // On every tier this CPU runs: the float and the integer kernels alike.
  const variant variants[] = {{LOWBIT_F32, LOWBIT_F32, 16}, {LOWBIT_F16, LOWBIT_F16, 0}, {LOWBIT_Q8_0, LOWBIT_Q8_0, 16},
                              {LOWBIT_F16, LOWBIT_Q4_0, 16}};
  std::vector<std::pair<std::string, variant>> runs;
  for (const std::string& tier : words(lowbit_enabled_isas()))
    for (const variant& f : variants) runs.emplace_back(tier, f);
  for (const auto& [tier, f] : runs) {
    SCOPED_TRACE(tier + ": " + format_name(f.k) + "/" + format_name(f.v));
    ASSERT_EQ(lowbit_set_isa_max(tier.c_str()), LOWBIT_OK) << last_error();
    const lowbit_kv_cache_config c = kv_config(f.k, f.v, f.block_tokens, 16);
    const size_t tokens = f.block_tokens ? f.block_tokens : 32;
    const size_t row = c.n_kv_heads * c.head_dim, pad = 5, heads = 4, q_row = heads * c.head_dim;
    lowbit_kv_cache* cache = nullptr;
    ASSERT_EQ(lowbit_kv_cache_create(&c, &cache), LOWBIT_OK) << last_error();
    ASSERT_NE(cache, nullptr);
    size_t used = 9, free_blocks = 9, block_bytes = 0;
    ASSERT_EQ(lowbit_kv_cache_blocks(cache, &used, &free_blocks, &block_bytes), LOWBIT_OK) << last_error();
    EXPECT_EQ(used, 0u);
    EXPECT_EQ(free_blocks, 16u);
    // K and V rows of every layer and KV head for the block's tokens, the
    // block rounded up to a cache line.
    const size_t raw = c.n_layers * c.n_kv_heads * tokens *
                       (c.head_dim / lowbit_block_length(f.k) * lowbit_block_bytes(f.k) +
                        c.head_dim / lowbit_block_length(f.v) * lowbit_block_bytes(f.v));
    EXPECT_GE(block_bytes, raw);
    EXPECT_LT(block_bytes, raw + 64);
    // Two sequences of different lengths, filled in pieces that cross blocks
    // (strided input: pad floats after every token); layer 1 only.
    const size_t lengths[2] = {tokens + 7, 3};
    uint32_t ids[2];
    std::vector<std::vector<float>> ks, vs;
    for (size_t i = 0; i < 2; ++i) {
      ASSERT_EQ(lowbit_kv_cache_create_sequence(cache, &ids[i]), LOWBIT_OK) << last_error();
      ks.push_back(make_data(lengths[i] * (row + pad), data_kind::gaussian, 80 + 2 * static_cast<uint32_t>(i)));
      vs.push_back(make_data(lengths[i] * (row + pad), data_kind::outliers, 81 + 2 * static_cast<uint32_t>(i)));
      for (size_t done = 0; done < lengths[i];) {
        const size_t n = std::min<size_t>(done ? 20 : 2, lengths[i] - done);
        ASSERT_EQ(lowbit_kv_cache_append(cache, ids[i], 1, ks[i].data() + done * (row + pad),
                                         vs[i].data() + done * (row + pad), n, row + pad, row + pad),
                  LOWBIT_OK)
            << last_error();
        done += n;
      }
      size_t length = 0;
      ASSERT_EQ(lowbit_kv_cache_length(cache, ids[i], 1, &length), LOWBIT_OK) << last_error();
      EXPECT_EQ(length, lengths[i]);
      ASSERT_EQ(lowbit_kv_cache_length(cache, ids[i], 0, &length), LOWBIT_OK) << last_error();
      EXPECT_EQ(length, 0u) << "layers are independent";
    }
    ASSERT_EQ(lowbit_kv_cache_blocks(cache, &used, &free_blocks, nullptr), LOWBIT_OK) << last_error();
    EXPECT_EQ(used, 2u + 1u);
    EXPECT_EQ(free_blocks, 16u - used);

    // Read back: the oracle's rounding of every row, bit for bit; a sub-range too.
    std::vector<std::vector<float>> held_k(2), held_v(2);
    for (size_t i = 0; i < 2; ++i) {
      held_k[i].assign(lengths[i] * row, sentinel_float());
      held_v[i].assign(lengths[i] * row, sentinel_float());
      ASSERT_EQ(lowbit_kv_cache_read(cache, ids[i], 1, 0, lengths[i], held_k[i].data(), held_v[i].data()), LOWBIT_OK)
          << last_error();
      for (size_t t = 0; t < lengths[i]; ++t)
        for (size_t h = 0; h < c.n_kv_heads; ++h) {
          const size_t in = t * (row + pad) + h * c.head_dim, at = t * row + h * c.head_dim;
          const auto ke = held_rows(f.k, ks[i].data() + in, 1, c.head_dim);
          const auto ve = held_rows(f.v, vs[i].data() + in, 1, c.head_dim);
          ASSERT_EQ(std::memcmp(ke.data(), held_k[i].data() + at, c.head_dim * sizeof(float)), 0) << "K token " << t;
          ASSERT_EQ(std::memcmp(ve.data(), held_v[i].data() + at, c.head_dim * sizeof(float)), 0) << "V token " << t;
        }
    }
    std::vector<float> k2(2 * row), v2(2 * row);
    ASSERT_EQ(lowbit_kv_cache_read(cache, ids[0], 1, tokens - 1, tokens + 1, k2.data(), v2.data()), LOWBIT_OK);
    EXPECT_EQ(std::memcmp(k2.data(), held_k[0].data() + (tokens - 1) * row, k2.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(v2.data(), held_v[0].data() + (tokens - 1) * row, v2.size() * sizeof(float)), 0);

    // Both sequences in one call: the first a prefill of its last 4 tokens
    // (strided output), the second a decode step. Against the oracle on the
    // values the cache holds; kernels that round the queries to q8_0 (q8_0
    // keys on an integer kernel) against the oracle on the rounded queries, and
    // those that round the softmax weights to u8 (q8_0 values too) within the
    // u8 rounding's bound (the paged-attention tests justify it).
    const size_t n_q[2] = {4, 1};
    const size_t out_stride[2] = {q_row + pad, 0};
    std::vector<std::vector<float>> q(2), out(2);
    lowbit_paged_query pq[2];
    for (size_t i = 0; i < 2; ++i) {
      q[i] = make_data(n_q[i] * q_row, data_kind::gaussian, 90 + static_cast<uint32_t>(i));
      out[i].assign(n_q[i] * (q_row + pad), lowbit::test::poison_value());
      pq[i] = {ids[i], q[i].data(), n_q[i], out[i].data(), 0, out_stride[i]};
    }
    ASSERT_EQ(lowbit_paged_attention(cache, 1, heads, pq, 2, 0.0f), LOWBIT_OK) << last_error();
    const std::string kernel = kernel_for(std::string("attention.") + format_name(f.k) + "_" + format_name(f.v));
    for (size_t i = 0; i < 2; ++i) {
      SCOPED_TRACE("sequence " + std::to_string(i));
      // Integer QKᵀ (lowbit::test::integer_qk_on): the VNNI and amx tiers,
      // avx2's sign trick, and avx512's on its decode path (at most 8 query
      // rows per KV head: both sequences here, 4 and 1 positions of 2 heads
      // a KV head).
      const bool integer_scores =
          f.k == LOWBIT_Q8_0 && lowbit::test::integer_qk_on(kernel, n_q[i] * (heads / c.n_kv_heads));
      // Integer P . V (u8 weights, 7-bit on avx2 and avx512), or on the amx
      // tier's prefill bf16 values and weights: within the bounds
      // test_kv_cache.cpp justifies.
      const bool integer_values = integer_scores && f.v == LOWBIT_Q8_0;
      const lowbit::attention_shape s =
          lowbit::test::dense_shape(n_q[i], lengths[i], heads, c.n_kv_heads, c.head_dim, true);
      const std::vector<float> q_held =
          integer_scores ? held_rows(LOWBIT_Q8_0, q[i].data(), n_q[i] * heads, c.head_dim) : q[i];
      std::vector<float> want(n_q[i] * q_row), got(n_q[i] * q_row);
      lowbit::ref::attention(s, q_held.data(), held_k[i].data(), held_v[i].data(), want.data(), 0, heads);
      const size_t stride = out_stride[i] ? out_stride[i] : q_row;
      for (size_t j = 0; j < n_q[i]; ++j) {
        std::copy_n(out[i].begin() + static_cast<std::ptrdiff_t>(j * stride), q_row,
                    got.begin() + static_cast<std::ptrdiff_t>(j * q_row));
        for (size_t e = j * stride + q_row; e < (j + 1) * stride; ++e)
          ASSERT_TRUE(lowbit::test::is_poison(out[i][e])) << "wrote into the padding of query " << j;
      }
      for (size_t e = n_q[i] * stride; e < out[i].size(); ++e)
        ASSERT_TRUE(lowbit::test::is_poison(out[i][e])) << "wrote past the last query";
      if (!integer_values) {
        for (size_t e = 0; e < got.size(); ++e) {
          ASSERT_NEAR(got[e], want[e], 2e-5 * (1 + std::fabs(want[e]))) << "element " << e;
        }
      }
      EXPECT_LE(lowbit::test::nmse(got, want), integer_values ? 1e-4 : 1e-9);
    }

    // Freeing a sequence returns its blocks; its id is then an error.
    ASSERT_EQ(lowbit_kv_cache_free_sequence(cache, ids[0]), LOWBIT_OK) << last_error();
    ASSERT_EQ(lowbit_kv_cache_blocks(cache, &used, nullptr, nullptr), LOWBIT_OK);
    EXPECT_EQ(used, 1u);
    size_t length = 77;
    EXPECT_EQ(lowbit_kv_cache_length(cache, ids[0], 1, &length), LOWBIT_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(last_error(), "no live sequence")) << last_error();
    EXPECT_EQ(length, 77u);
    lowbit_kv_cache_free(cache);
  }
  lowbit_kv_cache_free(nullptr);
}

TEST(CApi, KvCacheErrorsChangeAndWriteNothing) {
  lowbit_kv_cache* cache = nullptr;
  lowbit_kv_cache* const untouched = reinterpret_cast<lowbit_kv_cache*>(uintptr_t{0xABAB});
  struct bad_config {
    lowbit_kv_cache_config c;
    const char* needle;
  };
  lowbit_kv_cache_config good = kv_config(LOWBIT_Q8_0, LOWBIT_Q4_0, 16, 2);
  std::vector<bad_config> bad;
  bad.push_back({good, "k_format"});
  bad.back().c.k_format = LOWBIT_Q4_0;  // q4_0 is for V only
  bad.push_back({good, "v_format"});
  bad.back().c.v_format = LOWBIT_Q4_K;
  bad.push_back({good, "head_dim"});
  bad.back().c.head_dim = 48;  // not a multiple of 32
  bad.push_back({good, "max_blocks"});
  bad.back().c.max_blocks = 0;
  bad.push_back({good, "positive"});
  bad.back().c.n_kv_heads = 0;
  for (const bad_config& b : bad) {
    cache = untouched;
    EXPECT_EQ(lowbit_kv_cache_create(&b.c, &cache), LOWBIT_INVALID_ARGUMENT) << b.needle;
    EXPECT_TRUE(contains(last_error(), b.needle)) << last_error();
    EXPECT_EQ(cache, untouched) << "a failed create wrote *out";
  }
  EXPECT_EQ(lowbit_kv_cache_create(nullptr, &cache), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_kv_cache_create(&good, nullptr), LOWBIT_INVALID_ARGUMENT);

  ASSERT_EQ(lowbit_kv_cache_create(&good, &cache), LOWBIT_OK) << last_error();
  uint32_t seq = 0;
  ASSERT_EQ(lowbit_kv_cache_create_sequence(cache, &seq), LOWBIT_OK);
  const size_t row = good.n_kv_heads * good.head_dim;
  const auto kv = make_data(40 * row, data_kind::gaussian, 99);
  // A pool of two 16-token blocks: 33 tokens do not fit, and nothing is stored.
  EXPECT_EQ(lowbit_kv_cache_append(cache, seq, 0, kv.data(), kv.data(), 33, 0, 0), LOWBIT_OUT_OF_MEMORY);
  EXPECT_TRUE(contains(last_error(), "free")) << last_error();
  size_t length = 9, used = 9;
  ASSERT_EQ(lowbit_kv_cache_length(cache, seq, 0, &length), LOWBIT_OK);
  EXPECT_EQ(length, 0u);
  ASSERT_EQ(lowbit_kv_cache_blocks(cache, &used, nullptr, nullptr), LOWBIT_OK);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(lowbit_kv_cache_append(cache, seq, 2, kv.data(), kv.data(), 1, 0, 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "layer")) << last_error();
  EXPECT_EQ(lowbit_kv_cache_append(cache, seq + 1, 0, kv.data(), kv.data(), 1, 0, 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_kv_cache_append(cache, seq, 0, nullptr, kv.data(), 1, 0, 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_kv_cache_append(cache, seq, 0, kv.data(), kv.data(), 1, row - 1, 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_kv_cache_append(nullptr, seq, 0, kv.data(), kv.data(), 1, 0, 0), LOWBIT_INVALID_ARGUMENT);
  ASSERT_EQ(lowbit_kv_cache_append(cache, seq, 0, kv.data(), kv.data(), 5, 0, 0), LOWBIT_OK) << last_error();

  std::vector<float> k(8 * row, sentinel_float()), v(8 * row, sentinel_float());
  EXPECT_EQ(lowbit_kv_cache_read(cache, seq, 0, 3, 6, k.data(), v.data()), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "outside")) << last_error();
  EXPECT_EQ(lowbit_kv_cache_read(cache, seq, 0, 2, 1, k.data(), v.data()), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_kv_cache_read(cache, seq, 0, 0, 2, nullptr, v.data()), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_kv_cache_read(nullptr, seq, 0, 0, 2, k.data(), v.data()), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(all_sentinel(k.data(), k.size() * sizeof(float)) && all_sentinel(v.data(), v.size() * sizeof(float)))
      << "a failed read wrote its output";

  // Attention: every query is checked before any output is written.
  const size_t heads = 4, q_row = heads * good.head_dim;
  const auto q = make_data(5 * q_row, data_kind::gaussian, 98);
  std::vector<float> out(5 * q_row, sentinel_float());
  lowbit_paged_query ok{seq, q.data(), 2, out.data(), 0, 0};
  lowbit_paged_query pq[2] = {ok, ok};
  pq[1].n_q = 6;  // more than the 5 tokens stored
  EXPECT_EQ(lowbit_paged_attention(cache, 0, heads, pq, 2, 0.0f), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "n_q")) << last_error();
  pq[1] = ok;
  pq[1].out = nullptr;
  EXPECT_EQ(lowbit_paged_attention(cache, 0, heads, pq, 2, 0.0f), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_paged_attention(cache, 0, 3, &ok, 1, 0.0f), LOWBIT_INVALID_ARGUMENT);  // 2 KV heads do not divide 3
  EXPECT_TRUE(contains(last_error(), "n_kv_heads")) << last_error();
  EXPECT_EQ(lowbit_paged_attention(cache, 2, heads, &ok, 1, 0.0f), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_paged_attention(cache, 0, heads, &ok, 1, NAN), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_paged_attention(cache, 0, heads, nullptr, 1, 0.0f), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_paged_attention(nullptr, 0, heads, &ok, 1, 0.0f), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(all_sentinel(out.data(), out.size() * sizeof(float))) << "a failed attention wrote its output";
  EXPECT_EQ(lowbit_paged_attention(cache, 0, heads, nullptr, 0, 0.0f), LOWBIT_OK) << "no queries is no work";

  EXPECT_EQ(lowbit_kv_cache_free_sequence(cache, seq + 7), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_kv_cache_create_sequence(cache, nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_kv_cache_length(cache, seq, 0, nullptr), LOWBIT_INVALID_ARGUMENT);
  lowbit_kv_cache_free(cache);
}

// ------------------------------------------------------------- threads -----

TEST(CApi, NumThreads) {
  c_thread_guard guard;
  EXPECT_GE(lowbit_get_num_threads(), 1u);
  for (size_t t : {1, 3, 2}) {
    ASSERT_EQ(lowbit_set_num_threads(t), LOWBIT_OK);
    EXPECT_EQ(lowbit_get_num_threads(), t);
  }
  EXPECT_EQ(lowbit_set_num_threads(0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(last_error(), "");
  EXPECT_EQ(lowbit_get_num_threads(), 2u);
}

// ------------------------------------------------------------ dispatch -----

TEST(CApi, IsaQueries) {
  c_isa_guard isa;
  const std::string detected = lowbit_detected_isas(), compiled = lowbit_compiled_isas(),
                    enabled = lowbit_enabled_isas();
  for (const std::string* s : {&detected, &compiled, &enabled}) {
    const auto w = words(*s);
    EXPECT_NE(std::find(w.begin(), w.end(), "scalar"), w.end()) << "'" << *s << "' lacks scalar";
  }
  // Without overrides, enabled = compiled and detected.
  const auto d = words(detected), c = words(compiled);
  for (const auto& t : words(enabled)) {
    EXPECT_NE(std::find(d.begin(), d.end(), t), d.end()) << t << " enabled but not detected";
    EXPECT_NE(std::find(c.begin(), c.end(), t), c.end()) << t << " enabled but not compiled";
  }
  for (const auto& op : all_ops()) EXPECT_NE(kernel_for(op), "") << op;

  const char* kernel = nullptr;
  EXPECT_EQ(lowbit_selected_kernel("linear.q9_9.gemv", &kernel), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "q9_9")) << last_error();
  EXPECT_EQ(lowbit_selected_kernel(nullptr, &kernel), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_selected_kernel("linear.q4_0.gemv", nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(last_error(), "");
  ASSERT_EQ(lowbit_selected_kernel("linear.q4_0.gemv", &kernel), LOWBIT_OK);
  EXPECT_EQ(last_error(), "");

  // Verbose logs the current choices to stderr at once, then every rebuild.
  testing::internal::CaptureStderr();
  lowbit_set_verbose(1);
  ASSERT_EQ(lowbit_clear_isa_overrides(), LOWBIT_OK);
  lowbit_set_verbose(0);
  ASSERT_EQ(lowbit_clear_isa_overrides(), LOWBIT_OK);
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, "linear.q4_0.gemv")) << log;
  EXPECT_TRUE(contains(log, kernel_for("linear.q4_0.gemv"))) << log;
}

TEST(CApi, IsaStringsStayValidAcrossOtherCalls) {
  // lowbit.h: each string "stays valid until the next call of the same
  // function on the thread" -- calls of the other functions must not change it.
  c_isa_guard isa;
  const char* enabled = lowbit_enabled_isas();
  const std::string enabled_copy = enabled;
  const char* compiled = lowbit_compiled_isas();
  const std::string compiled_copy = compiled;
  const char* kernel = nullptr;
  ASSERT_EQ(lowbit_selected_kernel("linear.q4_0.gemv", &kernel), LOWBIT_OK);
  const char* detected = lowbit_detected_isas();
  const std::string detected_copy = detected;
  ASSERT_EQ(lowbit_selected_kernel("attention.f32_f32", &kernel), LOWBIT_OK);
  EXPECT_EQ(std::string(enabled), enabled_copy);
  EXPECT_EQ(std::string(compiled), compiled_copy);
  EXPECT_EQ(std::string(detected), detected_copy);
}

TEST(CApi, IsaMaxScalar) {
  c_isa_guard isa;
  const std::string before = lowbit_enabled_isas();
  ASSERT_EQ(lowbit_set_isa_max("scalar"), LOWBIT_OK) << last_error();
  EXPECT_EQ(last_error(), "");
  EXPECT_STREQ(lowbit_enabled_isas(), "scalar");
  for (const auto& op : all_ops()) EXPECT_TRUE(is_scalar_kernel(op)) << op << " -> " << kernel_for(op);
  ASSERT_EQ(lowbit_clear_isa_overrides(), LOWBIT_OK);
  EXPECT_EQ(std::string(lowbit_enabled_isas()), before);
}

TEST(CApi, IsaOverrideErrors) {
  c_isa_guard isa;
  const std::string before = lowbit_enabled_isas();
#if defined(__aarch64__) || defined(_M_ARM64)
  const char* foreign = "avx2";
#else
  const char* foreign = "neon";
#endif
  EXPECT_EQ(lowbit_set_isa_max(foreign), LOWBIT_ISA_UNAVAILABLE);
  EXPECT_TRUE(contains(last_error(), "available:")) << last_error();
  EXPECT_TRUE(contains(last_error(), foreign)) << last_error();
  EXPECT_EQ(std::string(lowbit_enabled_isas()), before) << "a rejected override changed dispatch";

  EXPECT_EQ(lowbit_set_isa_max("avx9000"), LOWBIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "avx9000")) << last_error();
  EXPECT_EQ(lowbit_set_isa_max(nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(last_error(), "");

  EXPECT_NE(lowbit_set_isa_disable("scalar"), LOWBIT_OK);
  EXPECT_TRUE(contains(last_error(), "scalar")) << last_error();
  EXPECT_EQ(lowbit_set_isa_disable(foreign), LOWBIT_ISA_UNAVAILABLE);
  EXPECT_TRUE(contains(last_error(), "available:")) << last_error();
  EXPECT_EQ(lowbit_set_isa_disable("scalar,avx9000"), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_set_isa_disable(nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(lowbit_enabled_isas()), before) << "a rejected override changed dispatch";

  // An empty list disables nothing.
  EXPECT_EQ(lowbit_set_isa_disable(""), LOWBIT_OK);
  EXPECT_EQ(last_error(), "");
  EXPECT_EQ(std::string(lowbit_enabled_isas()), before);
}

TEST(CApi, IsaDisableEachAvailableTier) {
  c_isa_guard isa;
  const auto enabled = words(lowbit_enabled_isas());
  size_t tried = 0;
  for (const auto& tier : enabled) {
    if (tier == "scalar") continue;
    ++tried;
    ASSERT_EQ(lowbit_set_isa_disable(tier.c_str()), LOWBIT_OK) << tier << ": " << last_error();
    const auto now = words(lowbit_enabled_isas());
    EXPECT_EQ(std::find(now.begin(), now.end(), tier), now.end()) << tier << " still enabled";
    EXPECT_EQ(now.size(), enabled.size() - 1) << "disabling " << tier << " removed other tiers";
    for (const auto& op : all_ops()) {
      const std::string k = kernel_for(op);
      EXPECT_NE(kernel_tier(k), without_underscores(tier))
          << op << " still runs " << k << " with " << tier << " disabled";
    }
    ASSERT_EQ(lowbit_clear_isa_overrides(), LOWBIT_OK);
  }
  // Everything but scalar at once, comma-separated: the same as ISA_MAX=scalar.
  std::string all_but_scalar;
  for (const auto& tier : enabled)
    if (tier != "scalar") all_but_scalar += (all_but_scalar.empty() ? "" : ",") + tier;
  if (!all_but_scalar.empty()) {
    ASSERT_EQ(lowbit_set_isa_disable(all_but_scalar.c_str()), LOWBIT_OK) << last_error();
    EXPECT_STREQ(lowbit_enabled_isas(), "scalar");
    for (const auto& op : all_ops()) EXPECT_TRUE(is_scalar_kernel(op)) << op;
  }
  ASSERT_EQ(lowbit_clear_isa_overrides(), LOWBIT_OK);
  EXPECT_EQ(words(lowbit_enabled_isas()), enabled);
  if (tried == 0) std::printf("note: only scalar is available here; no tier to disable\n");
}

}  // namespace
