// The scalar tier: the oracle's functions wrapped in the ukernel signatures.
//
// These are what dispatch runs when no SIMD tier is available or allowed
// (LOWBIT_ISA_MAX=scalar). They add nothing to the oracle but the calling
// convention, so the scalar tier is the oracle by construction.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../kv_layout.hpp"
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

/// Token `slot` of a KV head in format F -> head_dim floats; `row` is where
/// its plain row would start (q8_0 is grouped: read through `scratch`, a
/// q8_0 row's bytes).
template <format F>
inline void kv_row_to_f32(kv_side side, const unsigned char* row, size_t slot, size_t row_bytes, float* out, size_t n,
                          unsigned char* scratch) {
  if constexpr (F == format::q8_0) {
    const kv_group_at at = kv_group_of(row, slot, row_bytes);
    kv_group_get(side, at.group, at.lane, n, scratch);
    row = scratch;
  }
  if constexpr (F == format::f32) std::memcpy(out, row, n * sizeof(float));
  else ref::dequantize_row(F, row, out, n);
}

/// Online-softmax attention in f32, one token at a time (the scalar tier's
/// kernel; see attention_fn). Each key and value row is converted once and
/// used by every query row.
template <format KF, format VF>
void attention_online__scalar(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                              const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l,
                              float* acc) {
  if (kv.heads > 1)
    return attention_per_head(kv, kv_head, q_rows, rows, limits, t0, t1, scale, m, l, acc,
                              attention_online__scalar<KF, VF>);
  const size_t d = kv.head_dim;
  std::vector<float> key(d), value(d);
  size_t last = t0;  // tokens any row sees
  for (size_t r = 0; r < rows; ++r) last = std::max(last, std::min(t1, limits[r]));
  std::vector<unsigned char> row(q8_row_bytes(d));
  for (size_t t = t0; t < last; ++t) {
    const size_t b = t / kv.block_tokens, slot = t % kv.block_tokens;
    kv_row_to_f32<KF>(kv_side::key, kv.k_blocks[b] + kv_head * kv.k_head_bytes + slot * kv.k_row_bytes, slot,
                      kv.k_row_bytes, key.data(), d, row.data());
    kv_row_to_f32<VF>(kv_side::value, kv.v_blocks[b] + kv_head * kv.v_head_bytes + slot * kv.v_row_bytes, slot,
                      kv.v_row_bytes, value.data(), d, row.data());
    for (size_t r = 0; r < rows; ++r) {
      if (t >= limits[r]) continue;
      const float* q = q_rows[r];
      float dot = 0.0f;
      for (size_t i = 0; i < d; ++i) dot += q[i] * key[i];
      const float score = dot * scale;
      float* a = acc + r * d;
      if (score > m[r]) {
        const float shrink = std::exp(m[r] - score);  // 0 on the first token (m = -inf)
        l[r] = l[r] * shrink + 1.0f;
        for (size_t i = 0; i < d; ++i) a[i] = a[i] * shrink + value[i];
        m[r] = score;
      } else {
        const float p = std::exp(score - m[r]);
        l[r] += p;
        for (size_t i = 0; i < d; ++i) a[i] += p * value[i];
      }
    }
  }
}
inline constexpr attention_fn attn_f32_f32__scalar = attention_online__scalar<format::f32, format::f32>;
inline constexpr attention_fn attn_f16_f16__scalar = attention_online__scalar<format::f16, format::f16>;
inline constexpr attention_fn attn_f16_q8_0__scalar = attention_online__scalar<format::f16, format::q8_0>;
inline constexpr attention_fn attn_f16_q4_0__scalar = attention_online__scalar<format::f16, format::q4_0>;
inline constexpr attention_fn attn_q8_0_f16__scalar = attention_online__scalar<format::q8_0, format::f16>;
inline constexpr attention_fn attn_q8_0_q8_0__scalar = attention_online__scalar<format::q8_0, format::q8_0>;
inline constexpr attention_fn attn_q8_0_q4_0__scalar = attention_online__scalar<format::q8_0, format::q4_0>;
inline constexpr attention_fn attn_f32_f16__scalar = attention_online__scalar<format::f32, format::f16>;
inline constexpr attention_fn attn_f32_q8_0__scalar = attention_online__scalar<format::f32, format::q8_0>;
inline constexpr attention_fn attn_f32_q4_0__scalar = attention_online__scalar<format::f32, format::q4_0>;
inline constexpr attention_fn attn_f16_f32__scalar = attention_online__scalar<format::f16, format::f32>;
inline constexpr attention_fn attn_q8_0_f32__scalar = attention_online__scalar<format::q8_0, format::f32>;

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
