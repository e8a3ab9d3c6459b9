// The avx2 tier's linear kernels for Q4_0, Q4_1, Q8_0, Q4_K and Q6_K: the
// row-interleaved kernels of kernels/x86/common/linear_*.hpp on 8-lane vectors
// (vec256<false>), 4 activation rows per pass. Requires the avx2 ISA bits.
// Packers: pack_interleaved8, pack_interleaved_q4_k8, pack_interleaved_q6_k8. Reads no further than the packed groups.
#pragma once

#include "../common/gemm_s8.hpp"
#include "../common/linear_interleaved.hpp"
#include "../common/linear_q4_k.hpp"
#include "../common/linear_q6_k.hpp"
#include "../common/vec256.hpp"

namespace lowbit::kernels {
LOWBIT_CODEGEN_BEGIN

using pack_interleaved8 = x86::pack_interleaved<8>;
using pack_interleaved_q4_k8 = x86::pack_interleaved_q4_k<8>;
using pack_interleaved_q6_k8 = x86::pack_interleaved_q6_k<8>;

inline constexpr linear_fn gemm_q4_0_q8_0_4x8__avx2 = x86::linear_interleaved<x86::vec256<false>, format::q4_0, 4>;
inline constexpr linear_fn gemm_q4_1_q8_1_4x8__avx2 = x86::linear_interleaved<x86::vec256<false>, format::q4_1, 4>;
inline constexpr linear_fn gemm_q8_0_q8_0_4x8__avx2 = x86::linear_interleaved<x86::vec256<false>, format::q8_0, 4>;
inline constexpr linear_fn gemm_q4_k_q8_k_4x8__avx2 = x86::linear_q4_k_interleaved<x86::vec256<false>, 4>;
inline constexpr linear_fn gemm_q6_k_q8_k_4x8__avx2 = x86::linear_q6_k_interleaved<x86::vec256<false>, 4>;

inline constexpr gemm_s8_fn gemm_s8_s8_s32_6x16__avx2 = x86::gemm_s8_blocked<x86::vec256<false>, false>;
inline constexpr gemm_s8_fn gemm_u8_s8_s32_6x16__avx2 = x86::gemm_s8_blocked<x86::vec256<false>, true>;

inline constexpr gemm_s8_fn gemm_s8_s8_s32_1x4__avx2 = x86::gemm_s8_rows<x86::vec256<false>, false>;
inline constexpr gemm_s8_fn gemm_u8_s8_s32_1x4__avx2 = x86::gemm_s8_rows<x86::vec256<false>, true>;

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
