// Quantize and dequantize whole matrices, row by row, through dispatch.
#pragma once

#include <cstddef>

#include "lowbit/formats.hpp"

namespace lowbit {

/// Bytes that `rows` rows of `k` elements of `fmt` occupy. Throws when `k` is
/// not a multiple of the format's block length.
size_t quantized_size(format fmt, size_t rows, size_t k);

/// Quantizes `rows` rows of `k` floats (row stride `ldx` floats, 0 = k) into
/// `dst`, rows packed back to back in GGUF layout. `dst_bytes` must be at least
/// quantized_size(fmt, rows, k). Runs on the thread pool.
void quantize_rows(format fmt, const float* x, size_t rows, size_t k, void* dst, size_t dst_bytes, size_t ldx = 0);

/// Dequantizes `rows` GGUF rows of `k` elements of `fmt` from `src`
/// (`src_bytes` long) into floats with row stride `ldy` (0 = k).
void dequantize_rows(format fmt, const void* src, size_t src_bytes, size_t rows, size_t k, float* y, size_t ldy = 0);

/// Dequantizes `rows` GGUF rows of `k` elements of `fmt` from `src`
/// (`src_bytes` long) into `out` values (format::f32, format::f16 or
/// format::bf16; anything else is an invalid_argument error) at `y`, with row
/// stride `ldy` elements of `out` (0 = k). Each row goes through f32 (the
/// dequantizer's exact values) and is then rounded to nearest even, exactly as
/// lowbit::fp32_to_fp16 / fp32_to_bf16 do: overflow gives Inf, NaN stays NaN.
/// When `out` equals `fmt` the rows are copied unchanged. Runs on the thread pool.
void dequantize_rows(format fmt, const void* src, size_t src_bytes, size_t rows, size_t k, void* y, format out,
                     size_t ldy = 0);

}  // namespace lowbit
