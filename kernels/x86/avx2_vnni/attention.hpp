// The avx2_vnni tier's attention kernels: q8_0 keys with integer QKᵀ (vpdpbusd,
// kernels/x86/common/attention_q8.hpp) on 256-bit vectors, one per V format.
// The other (K format, V format) pairs have nothing to gain from VNNI; dispatch
// serves them from the tier below.
#pragma once

#include "../common/attention_q8.hpp"
#include "../common/vec256.hpp"

namespace lowbit::kernels {
LOWBIT_CODEGEN_BEGIN

inline constexpr attention_fn attn_q8_0_f32__avx2_vnni = x86::attention_online_q8<x86::vec256<true>, format::f32>;
inline constexpr attention_fn attn_q8_0_f16__avx2_vnni = x86::attention_online_q8<x86::vec256<true>, format::f16>;
inline constexpr attention_fn attn_q8_0_q8_0__avx2_vnni = x86::attention_online_q8<x86::vec256<true>, format::q8_0>;
inline constexpr attention_fn attn_q8_0_q4_0__avx2_vnni = x86::attention_online_q8<x86::vec256<true>, format::q4_0>;

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
