// The scalar tier: the oracle's functions wrapped in the ukernel signatures.
//
// These are what dispatch runs when no SIMD tier is available or allowed
// (LOWBIT_ISA_MAX=scalar). They add nothing to the oracle but the calling
// convention, so the scalar tier is the oracle by construction.
#pragma once

#include "../pack/rows.hpp"
#include "../ukernel.hpp"
#include "attention.hpp"
#include "dot.hpp"
#include "gemm_s8.hpp"
#include "quant.hpp"

namespace lowbit::kernels {
LOWBIT_CODEGEN_BEGIN

/// f32 -> Fmt row through the oracle. Requires k % block_length(Fmt) == 0.
template <format Fmt>
void quant_row__scalar(const float* x, void* y, size_t k) {
  ref::quantize_row(Fmt, x, y, k);
}
/// Fmt row -> f32 through the oracle.
template <format Fmt>
void dequant_row__scalar(const void* x, float* y, size_t k) {
  ref::dequantize_row(Fmt, x, y, k);
}

inline constexpr quantize_fn quant_f16__scalar = quant_row__scalar<format::f16>;
inline constexpr quantize_fn quant_bf16__scalar = quant_row__scalar<format::bf16>;
inline constexpr quantize_fn quant_q4_0__scalar = quant_row__scalar<format::q4_0>;
inline constexpr quantize_fn quant_q4_1__scalar = quant_row__scalar<format::q4_1>;
inline constexpr quantize_fn quant_q8_0__scalar = quant_row__scalar<format::q8_0>;
inline constexpr quantize_fn quant_q8_1__scalar = quant_row__scalar<format::q8_1>;
inline constexpr quantize_fn quant_q4_k__scalar = quant_row__scalar<format::q4_k>;
inline constexpr quantize_fn quant_q6_k__scalar = quant_row__scalar<format::q6_k>;
inline constexpr quantize_fn quant_q8_k__scalar = quant_row__scalar<format::q8_k>;
inline constexpr dequantize_fn dequant_f16_f32__scalar = dequant_row__scalar<format::f16>;
inline constexpr dequantize_fn dequant_bf16_f32__scalar = dequant_row__scalar<format::bf16>;
inline constexpr dequantize_fn dequant_q4_0_f32__scalar = dequant_row__scalar<format::q4_0>;
inline constexpr dequantize_fn dequant_q4_1_f32__scalar = dequant_row__scalar<format::q4_1>;
inline constexpr dequantize_fn dequant_q8_0_f32__scalar = dequant_row__scalar<format::q8_0>;
inline constexpr dequantize_fn dequant_q8_1_f32__scalar = dequant_row__scalar<format::q8_1>;
inline constexpr dequantize_fn dequant_q4_k_f32__scalar = dequant_row__scalar<format::q4_k>;
inline constexpr dequantize_fn dequant_q6_k_f32__scalar = dequant_row__scalar<format::q6_k>;
inline constexpr dequantize_fn dequant_q8_k_f32__scalar = dequant_row__scalar<format::q8_k>;

/// Linear over pack_rows weights: one oracle dot per output element.
template <format Weights>
void linear_rows__scalar(const linear_args& a, size_t n_begin, size_t n_end) {
  const size_t w_row = row_bytes(*find_format(Weights), a.k);
  for (size_t i = 0; i < a.m; ++i) {
    const void* x = static_cast<const unsigned char*>(a.x) + i * a.x_row_bytes;
    for (size_t j = n_begin; j < n_end; ++j)
      ref::dot_row(Weights, static_cast<const unsigned char*>(a.w) + j * w_row, x, a.k, a.y[i * a.ldy + j]);
  }
}

inline constexpr linear_fn gemm_q4_0_q8_0_1x1__scalar = linear_rows__scalar<format::q4_0>;
inline constexpr linear_fn gemm_q4_1_q8_1_1x1__scalar = linear_rows__scalar<format::q4_1>;
inline constexpr linear_fn gemm_q8_0_q8_0_1x1__scalar = linear_rows__scalar<format::q8_0>;
inline constexpr linear_fn gemm_q4_k_q8_k_1x1__scalar = linear_rows__scalar<format::q4_k>;
inline constexpr linear_fn gemm_q6_k_q8_k_1x1__scalar = linear_rows__scalar<format::q6_k>;

/// int8 GEMM through the oracle; `A` is int8_t or uint8_t.
template <typename A>
void gemm_s8__scalar(const gemm_s8_args& a, size_t n_begin, size_t n_end) {
  ref::gemm_s8(static_cast<const A*>(a.a), a.lda, a.b, a.ldb, a.m, n_begin, n_end, a.k, a.c, a.ldc, a.row_scales,
               a.col_scales, a.y, a.ldy);
}
inline constexpr gemm_s8_fn gemm_s8_s8_s32_1x1__scalar = gemm_s8__scalar<int8_t>;
inline constexpr gemm_s8_fn gemm_u8_s8_s32_1x1__scalar = gemm_s8__scalar<uint8_t>;

/// Attention through the oracle.
inline void attn_prefill_f32_f32__scalar(const attention_shape& s, const float* q, const float* k, const float* v,
                                         float* out, size_t head_begin, size_t head_end) {
  ref::attention(s, q, k, v, out, head_begin, head_end);
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
