// The avx2_vnni tier's activation quantizers: kernels/x86/common/quant_q8.hpp with
// x86::q8_lanes256. Byte-identical to the oracle. Requires the avx2_vnni ISA bits; k must
// be a multiple of the format's block; reads and writes exactly one row.
#pragma once

#include "../common/quant_q8.hpp"

namespace lowbit::kernels {
LOWBIT_CODEGEN_BEGIN

inline constexpr quantize_fn quant_q8_0__avx2_vnni = x86::quant_q8_0_row<x86::q8_lanes256>;
inline constexpr quantize_fn quant_q8_1__avx2_vnni = x86::quant_q8_1_row<x86::q8_lanes256>;
inline constexpr quantize_fn quant_q8_k__avx2_vnni = x86::quant_q8_k_row<x86::q8_lanes256>;

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
