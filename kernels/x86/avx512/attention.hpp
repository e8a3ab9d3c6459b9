// The avx512 tier's attention kernels: the online-softmax kernel of
// kernels/x86/common/attention.hpp on 512-bit vectors, one per (K format, V
// format); for q8_0 keys, decode with integer QKᵀ by the sign trick (and
// integer P . V over q8_0 values, 7-bit weights) and prefill in f32,
// kernels/x86/common/attention_q8.hpp.
#pragma once

#include "../common/attention.hpp"
#include "../common/attention_q8.hpp"
#include "../common/vec512.hpp"

namespace lowbit::kernels {
LOWBIT_CODEGEN_BEGIN

inline constexpr attention_fn attn_f32_f32__avx512 = x86::attention_online<x86::vec512<false>, format::f32, format::f32>;
inline constexpr attention_fn attn_f32_f16__avx512 = x86::attention_online<x86::vec512<false>, format::f32, format::f16>;
inline constexpr attention_fn attn_f32_q8_0__avx512 = x86::attention_online<x86::vec512<false>, format::f32, format::q8_0>;
inline constexpr attention_fn attn_f32_q4_0__avx512 = x86::attention_online<x86::vec512<false>, format::f32, format::q4_0>;
inline constexpr attention_fn attn_f16_f32__avx512 = x86::attention_online<x86::vec512<false>, format::f16, format::f32>;
inline constexpr attention_fn attn_f16_f16__avx512 = x86::attention_online<x86::vec512<false>, format::f16, format::f16>;
inline constexpr attention_fn attn_f16_q8_0__avx512 = x86::attention_online<x86::vec512<false>, format::f16, format::q8_0>;
inline constexpr attention_fn attn_f16_q4_0__avx512 = x86::attention_online<x86::vec512<false>, format::f16, format::q4_0>;
inline constexpr attention_fn attn_q8_0_f32__avx512 = x86::attention_online_q8<x86::vec512<false>, format::f32>;
inline constexpr attention_fn attn_q8_0_f16__avx512 = x86::attention_online_q8<x86::vec512<false>, format::f16>;
inline constexpr attention_fn attn_q8_0_q8_0__avx512 = x86::attention_online_q8<x86::vec512<false>, format::q8_0>;
inline constexpr attention_fn attn_q8_0_q4_0__avx512 = x86::attention_online_q8<x86::vec512<false>, format::q4_0>;

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
