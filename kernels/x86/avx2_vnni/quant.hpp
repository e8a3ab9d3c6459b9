// The avx2_vnni tier's quantize and dequantize kernels: the f32 -> f16/bf16 converters
// of kernels/x86/common/convert.hpp (x86::cvt_lanes256), the activation quantizers of
// kernels/x86/common/quant_q8.hpp (x86::q8_lanes256) and the dequantizers of
// common/dequant.hpp (x86::vec256<true>), bit-identical to the oracle. Requires
// the avx2_vnni ISA bits; k must be a multiple of the format's block; each call reads
// and writes exactly one row.
#pragma once

#include "../common/vec256.hpp"
#include "../common/convert.hpp"
#include "../common/dequant.hpp"
#include "../common/quant_q8.hpp"

namespace lowbit::kernels {
LOWBIT_CODEGEN_BEGIN

inline constexpr quantize_fn quant_f16__avx2_vnni = x86::quant_f16_row<x86::cvt_lanes256>;
inline constexpr quantize_fn quant_bf16__avx2_vnni = x86::quant_bf16_row<x86::cvt_lanes256>;
inline constexpr quantize_fn quant_q8_0__avx2_vnni = x86::quant_q8_0_row<x86::q8_lanes256>;
inline constexpr quantize_fn quant_q8_1__avx2_vnni = x86::quant_q8_1_row<x86::q8_lanes256>;
inline constexpr quantize_fn quant_q8_k__avx2_vnni = x86::quant_q8_k_row<x86::q8_lanes256>;

inline constexpr dequantize_fn dequant_q4_0_f32__avx2_vnni = x86::dequant_q4_0_row<x86::vec256<true>>;
inline constexpr dequantize_fn dequant_q4_1_f32__avx2_vnni = x86::dequant_q4_1_row<x86::vec256<true>>;
inline constexpr dequantize_fn dequant_q8_0_f32__avx2_vnni = x86::dequant_q8_0_row<x86::vec256<true>>;
inline constexpr dequantize_fn dequant_q4_k_f32__avx2_vnni = x86::dequant_q4_k_row<x86::vec256<true>>;
inline constexpr dequantize_fn dequant_q6_k_f32__avx2_vnni = x86::dequant_q6_k_row<x86::vec256<true>>;

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
