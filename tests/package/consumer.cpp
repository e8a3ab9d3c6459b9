// A program outside lowbit that uses the installed package: the C API, the C++
// API and an installed kernel header, together. It quantizes the same rows to
// Q8_0 three ways (lowbit_quantize_rows, lowbit::quantize_rows and the scalar
// oracle lowbit::ref::quantize_row_q8_0) and requires identical bytes, then
// checks that bad input is refused with a message. Any mismatch or failure
// exits non-zero with a line saying what went wrong.
#include <lowbit/kernels/ref/quant.hpp>
#include <lowbit/lowbit.h>
#include <lowbit/lowbit.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

int failures = 0;

void fail(const std::string& what) {
  std::fprintf(stderr, "consumer: FAIL: %s\n", what.c_str());
  ++failures;
}

/// Rows with ordinary values, an all-zero block, an outlier and the extremes.
std::vector<float> make_rows(size_t rows, size_t k) {
  std::vector<float> x(rows * k);
  unsigned state = 12345u;
  for (float& v : x) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<int>(state >> 8) % 20001 - 10000) / 1000.0f;
  }
  for (size_t j = 0; j < 32; ++j) x[32 + j] = 0.0f;  // row 0, block 1: all zero
  x[k + 5] = 1.0e4f;                                  // row 1: an outlier
  for (size_t j = 0; j < 32; ++j) x[2 * k + j] = (j % 2 ? -127.0f : 127.0f);
  return x;
}

}  // namespace

int main() {
  constexpr size_t rows = 3;
  constexpr size_t k = 256;
  const std::vector<float> x = make_rows(rows, k);

  if (std::string(lowbit_version()) != LOWBIT_PACKAGE_VERSION)
    fail(std::string("lowbit_version() is ") + lowbit_version() + ", the CMake package says " +
         LOWBIT_PACKAGE_VERSION);

  // The oracle, straight from the installed kernel header.
  const size_t blocks_per_row = k / lowbit::qk8_0;
  std::vector<lowbit::block_q8_0> expected(rows * blocks_per_row);
  for (size_t r = 0; r < rows; ++r)
    lowbit::ref::quantize_row_q8_0(x.data() + r * k, expected.data() + r * blocks_per_row, k);
  const size_t bytes = expected.size() * sizeof(lowbit::block_q8_0);

  // The C API.
  size_t c_bytes = 0;
  if (lowbit_quantized_size(LOWBIT_Q8_0, rows, k, &c_bytes) != LOWBIT_OK) {
    fail(std::string("lowbit_quantized_size: ") + lowbit_last_error());
  } else if (c_bytes != bytes) {
    fail("lowbit_quantized_size says " + std::to_string(c_bytes) + " bytes, expected " + std::to_string(bytes));
  }
  std::vector<unsigned char> c_out(bytes, 0xAA);
  const lowbit_status st = lowbit_quantize_rows(LOWBIT_Q8_0, x.data(), rows, k, 0, c_out.data(), c_out.size());
  if (st != LOWBIT_OK) {
    fail(std::string("lowbit_quantize_rows returned ") + lowbit_status_name(st) + ": " + lowbit_last_error());
  } else if (std::memcmp(c_out.data(), expected.data(), bytes) != 0) {
    fail("lowbit_quantize_rows bytes differ from lowbit::ref::quantize_row_q8_0");
  }

  // The C++ API.
  try {
    if (lowbit::quantized_size(lowbit::format::q8_0, rows, k) != bytes)
      fail("lowbit::quantized_size disagrees with the block size");
    std::vector<unsigned char> cpp_out(bytes, 0x55);
    lowbit::quantize_rows(lowbit::format::q8_0, x.data(), rows, k, cpp_out.data(), cpp_out.size());
    if (std::memcmp(cpp_out.data(), expected.data(), bytes) != 0)
      fail("lowbit::quantize_rows bytes differ from lowbit::ref::quantize_row_q8_0");

    // And back: dequantizing gives what the oracle's dequantizer gives.
    std::vector<float> y(rows * k), y_ref(rows * k);
    lowbit::dequantize_rows(lowbit::format::q8_0, cpp_out.data(), cpp_out.size(), rows, k, y.data());
    for (size_t r = 0; r < rows; ++r)
      lowbit::ref::dequantize_row_q8_0(expected.data() + r * blocks_per_row, y_ref.data() + r * k, k);
    if (std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)) != 0)
      fail("lowbit::dequantize_rows differs from lowbit::ref::dequantize_row_q8_0");
  } catch (const std::exception& e) {
    fail(std::string("C++ API threw: ") + e.what());
  }

  // Bad input is refused, with a message, through both APIs.
  std::vector<unsigned char> small(bytes - 1);
  if (lowbit_quantize_rows(LOWBIT_Q8_0, x.data(), rows, k, 0, small.data(), small.size()) == LOWBIT_OK)
    fail("lowbit_quantize_rows accepted a destination one byte short");
  else if (std::strlen(lowbit_last_error()) == 0)
    fail("lowbit_quantize_rows failed without a message");
  try {
    lowbit::quantize_rows(lowbit::format::q8_0, x.data(), 1, 31, small.data(), small.size());
    fail("lowbit::quantize_rows accepted k=31 for Q8_0");
  } catch (const lowbit::Error& e) {
    if (e.code() != lowbit::status::invalid_argument)
      fail(std::string("k=31 gave status ") + std::to_string(static_cast<int>(e.code())) + ": " + e.what());
  }

  if (failures != 0) {
    std::fprintf(stderr, "consumer: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("consumer: lowbit %s package OK (compiled ISAs: %s; enabled: %s)\n", lowbit_version(),
              lowbit_compiled_isas(), lowbit_enabled_isas());
  return 0;
}
