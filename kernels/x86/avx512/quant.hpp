// The avx512 tier's quantize and dequantize kernels: the f32 -> f16/bf16 converters
// of kernels/x86/common/convert.hpp (x86::cvt_lanes512), the activation quantizers of
// kernels/x86/common/quant_q8.hpp (x86::q8_lanes512) and the dequantizers of
// common/dequant.hpp (x86::vec512<false>), bit-identical to the oracle. Requires
// the avx512 ISA bits; k must be a multiple of the format's block; each call reads
// and writes exactly one row.
#pragma once

#include "../common/vec512.hpp"
#include "../common/convert.hpp"
#include "../common/dequant.hpp"
#include "../common/quant_q8.hpp"

namespace lowbit::kernels {
LOWBIT_CODEGEN_BEGIN

inline constexpr quantize_fn quant_f16__avx512 = x86::quant_f16_row<x86::cvt_lanes512>;
inline constexpr quantize_fn quant_bf16__avx512 = x86::quant_bf16_row<x86::cvt_lanes512>;
inline constexpr quantize_fn quant_q8_0__avx512 = x86::quant_q8_0_row<x86::q8_lanes512>;
inline constexpr quantize_fn quant_q8_1__avx512 = x86::quant_q8_1_row<x86::q8_lanes512>;
inline constexpr quantize_fn quant_q8_k__avx512 = x86::quant_q8_k_row<x86::q8_lanes512>;

inline constexpr dequantize_fn dequant_q4_0_f32__avx512 = x86::dequant_q4_0_row<x86::vec512<false>>;
inline constexpr dequantize_fn dequant_q4_1_f32__avx512 = x86::dequant_q4_1_row<x86::vec512<false>>;
inline constexpr dequantize_fn dequant_q8_0_f32__avx512 = x86::dequant_q8_0_row<x86::vec512<false>>;
inline constexpr dequantize_fn dequant_q4_k_f32__avx512 = x86::dequant_q4_k_row<x86::vec512<false>>;
inline constexpr dequantize_fn dequant_q6_k_f32__avx512 = x86::dequant_q6_k_row<x86::vec512<false>>;

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
