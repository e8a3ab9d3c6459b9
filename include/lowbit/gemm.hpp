// Linear layers over quantized weights, and int8 GEMM.
//
// A linear layer is packed once (pack_weights) into the layouts the selected
// kernels want, then applied any number of times (linear). Packing is its own,
// timed, parallel step; kernels never repack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/formats.hpp"

namespace lowbit {

/// Weights of one linear layer, packed for the kernels dispatch selected.
class PackedWeights {
 public:
  PackedWeights();
  ~PackedWeights();
  PackedWeights(PackedWeights&&) noexcept;
  PackedWeights& operator=(PackedWeights&&) noexcept;

  format weights() const;
  size_t n() const;               ///< output features (rows of W)
  size_t k() const;               ///< input features (columns of W)
  double pack_seconds() const;    ///< wall time pack_weights spent
  size_t packed_bytes() const;    ///< memory held, all packings together
  std::vector<std::string> packers() const;  ///< the layouts held
  /// The packed buffers (address, bytes): for prefetching, mlock, or a
  /// benchmark's cache flush.
  std::vector<std::pair<const void*, size_t>> buffers() const;

  struct impl;
  const impl& internals() const;

 private:
  friend PackedWeights pack_weights(format, const void*, size_t, size_t, size_t);
  std::unique_ptr<impl> impl_;
};

/// Packs W, stored as `n` GGUF rows of `k` elements of `fmt` (`data_bytes`
/// long), for every kernel dispatch may select for it now. `fmt` must be a
/// weight format: q4_0, q4_1, q8_0, q4_k or q6_k.
PackedWeights pack_weights(format fmt, const void* data, size_t data_bytes, size_t n, size_t k);

/// y[M x N] = x[M x K] . W^T. x is quantized row by row to the activation
/// format W pairs with, then the GEMV (M = 1) or GEMM kernel runs on the pool.
/// Strides are in floats; 0 means dense (K for x, N for y).
void linear(const PackedWeights& w, const float* x, size_t m, float* y, size_t ldx = 0, size_t ldy = 0);

/// Signedness of the A operand of an int8 GEMM.
enum class int8_type { s8, u8 };

/// C[M x N] = A[M x K] . B^T in int32, B stored as N rows of K (like weights).
/// Either output may be omitted: `c` (s32) and/or `y` (f32, y = c * row_scales[m]
/// * col_scales[n], an absent scale meaning 1). Strides are in elements; 0 = dense.
struct gemm_s8_problem {
  int8_type a_type = int8_type::s8;
  const void* a = nullptr;
  size_t lda = 0;
  const int8_t* b = nullptr;
  size_t ldb = 0;
  size_t m = 0, n = 0, k = 0;
  int32_t* c = nullptr;
  size_t ldc = 0;
  const float* row_scales = nullptr;
  const float* col_scales = nullptr;
  float* y = nullptr;
  size_t ldy = 0;
};

/// Runs the int8 GEMM through dispatch and the pool. K is limited to 65536 so
/// the int32 sums cannot overflow.
void gemm_s8(const gemm_s8_problem& problem);

}  // namespace lowbit
