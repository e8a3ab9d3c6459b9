// Scalar oracle: int8 GEMM.
//
// C[m][n] = sum_k A[m][k] * B[n][k] in int32, with A signed (s8) or unsigned
// (u8) and B signed, B stored as N rows of K like a weight matrix. An optional
// f32 epilogue writes Y[m][n] = C[m][n] * row_scale[m] * col_scale[n], either
// scale absent meaning 1. Overflow cannot happen for K < 2^16 (|a*b| <= 2^15).
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/detail/codegen.hpp"

namespace lowbit::ref {
LOWBIT_CODEGEN_BEGIN

/// One output element of the int8 GEMM; `A` is int8_t or uint8_t.
template <typename A>
inline int32_t dot_s8(const A* a, const int8_t* b, size_t k) noexcept {
  int32_t sum = 0;
  for (size_t i = 0; i < k; ++i) sum += static_cast<int32_t>(a[i]) * static_cast<int32_t>(b[i]);
  return sum;
}

/// Columns [n_begin, n_end) of the int8 GEMM for every row of A. Either of `c`
/// (s32 out) and `y` (scaled f32 out) may be null.
template <typename A>
inline void gemm_s8(const A* a, size_t lda, const int8_t* b, size_t ldb, size_t m, size_t n_begin, size_t n_end,
                    size_t k, int32_t* c, size_t ldc, const float* row_scales, const float* col_scales, float* y,
                    size_t ldy) noexcept {
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = n_begin; j < n_end; ++j) {
      const int32_t acc = dot_s8(a + i * lda, b + j * ldb, k);
      if (c) c[i * ldc + j] = acc;
      if (y) {
        float v = static_cast<float>(acc);
        if (row_scales) v *= row_scales[i];
        if (col_scales) v *= col_scales[j];
        y[i * ldy + j] = v;
      }
    }
  }
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::ref
