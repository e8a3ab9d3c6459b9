// The avx2_vnni tier's linear kernels for Q4_0, Q4_1 and Q8_0: the row-interleaved
// kernels of kernels/x86/common/linear_interleaved.hpp on 8-lane vectors
// (vec256<true>), 4 activation rows per pass. Requires the avx2_vnni ISA bits.
// Packer: pack_interleaved8. Reads no further than the packed groups.
#pragma once

#include "../common/linear_interleaved.hpp"
#include "../common/vec256.hpp"

namespace lowbit::kernels {
LOWBIT_CODEGEN_BEGIN

using pack_interleaved8 = x86::pack_interleaved<8>;

inline constexpr linear_fn gemm_q4_0_q8_0_4x8__avx2_vnni = x86::linear_interleaved<x86::vec256<true>, format::q4_0, 4>;
inline constexpr linear_fn gemm_q4_1_q8_1_4x8__avx2_vnni = x86::linear_interleaved<x86::vec256<true>, format::q4_1, 4>;
inline constexpr linear_fn gemm_q8_0_q8_0_4x8__avx2_vnni = x86::linear_interleaved<x86::vec256<true>, format::q8_0, 4>;

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
