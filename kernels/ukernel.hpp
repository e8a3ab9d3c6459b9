// One signature per kernel family.
//
// Dispatch stores kernels as plain function pointers of these types, so every
// ISA translation unit can hand its kernels to baseline code. Arguments cross
// as plain pointers and sizes or as structs defined outside the ISA-specific
// inline namespaces. Each kernel computes a slice of the output chosen by the
// caller ([n_begin, n_end) columns, [head_begin, head_end) heads); slices never
// overlap, which is what makes results independent of the thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/attention.hpp"
#include "lowbit/formats.hpp"

namespace lowbit::kernels {

/// f32 row of k elements -> one row of the kernel's format (k a multiple of its block).
using quantize_fn = void (*)(const float* x, void* y, size_t k);
/// One row of the kernel's format -> k floats.
using dequantize_fn = void (*)(const void* x, float* y, size_t k);

/// Operands of a linear kernel: W packed by the kernel's packer, x already
/// quantized to the activation format (m rows, `x_row_bytes` apart), plus
/// per-block facts about x computed once per call so kernels need not redo
/// them for every group of output columns:
///   x_scale[i * x_blocks + b]   d of activation block b of row i, as f32
///   x_offset[i * x_blocks + b]  Q8_1's s as f32 (null for other formats)
///   x_sum32[i * (k / 32) + j]   sum of the int8 quants j*32 .. j*32+31
/// where x_blocks = k / (block length of the activation format).
struct linear_args {
  const void* w;
  size_t n, k;
  const void* x;
  size_t x_row_bytes;
  size_t m;
  float* y;
  size_t ldy;
  const float* x_scale;
  const float* x_offset;
  const int32_t* x_sum32;
};
/// Computes y[0..m)[n_begin..n_end), bit-identical to ref::linear: the integer
/// block sums are exact and the f32 epilogue repeats the oracle's operations in
/// the oracle's order (tests hold every kernel to this).
using linear_fn = void (*)(const linear_args& args, size_t n_begin, size_t n_end);

/// Operands of an int8 GEMM kernel (strides in elements; see lowbit::gemm_s8_problem).
/// `a_row_sums[i]` is the sum of row i of A, computed once per call when A is
/// s8 (null for u8): kernels that bias B to u8 for vpdpbusd subtract 128 times it.
struct gemm_s8_args {
  const void* a;
  size_t lda;
  const int8_t* b;
  size_t ldb;
  size_t m, n, k;
  int32_t* c;
  size_t ldc;
  const float* row_scales;
  const float* col_scales;
  float* y;
  size_t ldy;
  const int32_t* a_row_sums;
};
/// Computes columns [n_begin, n_end) for every row.
using gemm_s8_fn = void (*)(const gemm_s8_args& args, size_t n_begin, size_t n_end);

/// Where one KV head's keys and values are: token t of head h of K starts at
///   k_blocks[t / block_tokens] + h * k_head_bytes + (t % block_tokens) * k_row_bytes
/// (likewise V), each a row of head_dim values in the kernel's K (V) format;
/// q8_0 rows are grouped by 16 tokens (kv_layout.hpp), and there the
/// expression gives the token's lane. The paged cache has one entry per
/// block; plain f32 attention has one block holding every token.
struct attn_kv {
  const unsigned char* const* k_blocks;
  const unsigned char* const* v_blocks;
  size_t block_tokens;
  size_t k_head_bytes, v_head_bytes;
  size_t k_row_bytes, v_row_bytes;
  size_t head_dim;
  /// Optional, a hint: where the caller writes the call's results right
  /// after it, row r (head_dim floats) for query row r (a prefill task's
  /// output rows). A kernel may prefetch these lines for writing while it
  /// computes; none reads them, and none writes them unless given
  /// `finished` (below).
  float* const* out_rows = nullptr;
  /// Optional, with out_rows, and only for a call that is the whole of its
  /// rows' work (a prefill task: every key they see, no other chunk to
  /// merge): a kernel may then finish the rows itself, writing each row's
  /// result (acc / l, zeros for a row that saw no key) straight into
  /// out_rows[r], head_dim floats and nothing else, instead of its m, l
  /// (then left unspecified) and acc (then left as it was: the dispatcher
  /// keeps a prefill task's acc zeroed from one task to the next and does
  /// not zero it again after a kernel that finished), and say so by setting
  /// *finished (it never clears it). A kernel that does not sets nothing,
  /// and the caller finishes from m, l and acc as before.
  bool* finished = nullptr;
  /// KV heads the call covers: kv_head, kv_head + 1, ... Its rows are split
  /// evenly among them, head by head (rows [h * rows / heads, (h + 1) * rows
  /// / heads) belong to KV head kv_head + h), and each head's rows get
  /// exactly the results a call for that head alone would give them. A
  /// decode kernel may then read the heads' keys block by block (every
  /// head's rows of a cache block, then the next block), the order they lie
  /// in memory, instead of head by head.
  size_t heads = 1;

  /// Rows of each KV head in a call of `rows` rows.
  size_t rows_per_head(size_t rows) const { return rows / (heads ? heads : 1); }
};
/// The most query rows per KV head (attn_kv::rows_per_head) an x86 kernel
/// takes down its decode path; more go down its prefill path. The two may
/// round differently (the amx tier's q8_0/q8_0 prefill in bf16, the avx512
/// tier's q8_0-K decode in integers), so the dispatcher never cuts a prompt
/// into a task this small (dispatch/attention.cpp).
inline constexpr size_t attention_decode_rows = 8;

/// Online-softmax attention of `rows` f32 query rows (row r at q_rows[r]) of
/// one KV head over its tokens [t0, t1), row r seeing only tokens < limits[r].
/// Updates, per row, the running maximum m[r] of the scaled scores, the sum
/// l[r] of exp(score - m[r]), and acc[r * head_dim ..] = sum exp(score - m) * v;
/// they start at -inf, 0 and 0. Splitting [t0, t1) and merging in a fixed
/// order is the caller's business (that is what keeps results independent of
/// the thread count). Kernels may round the query rows on the way: the VNNI
/// tiers' and avx2's q8_0-K kernels (avx512's on at most
/// attention_decode_rows rows per KV head) compute QKᵀ in integers on query
/// rows rounded to q8_0 exactly as ref::quantize_row does, and the amx tier's q8_0/q8_0
/// kernel, on more than attention_decode_rows rows per KV head, in f32 on
/// rows rounded to bf16 (see kernels/x86/common/attention_q8.hpp).
using attention_fn = void (*)(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                              const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l,
                              float* acc);

/// An attention_fn body for one KV head at a time, called for each head of
/// kv.heads in turn (kernels that gain nothing from reading several heads
/// together).
template <class OneHead>
inline void attention_per_head(const attn_kv& kv, size_t kv_head, const float* const* q_rows, size_t rows,
                               const size_t* limits, size_t t0, size_t t1, float scale, float* m, float* l,
                               float* acc, OneHead one_head) {
  if (kv.heads <= 1) return one_head(kv, kv_head, q_rows, rows, limits, t0, t1, scale, m, l, acc);
  attn_kv single = kv;
  single.heads = 1;
  const size_t g = kv.rows_per_head(rows);
  for (size_t h = 0; h < kv.heads; ++h) {
    const size_t r0 = h * g;
    single.out_rows = kv.out_rows ? kv.out_rows + r0 : nullptr;
    one_head(single, kv_head + h, q_rows + r0, g, limits + r0, t0, t1, scale, m + r0, l + r0, acc + r0 * kv.head_dim);
  }
}

/// Bytes a packer needs for n rows of k elements of a weight format.
using packed_size_fn = size_t (*)(format fmt, size_t n, size_t k);
/// Packs rows [n_begin, n_end) of W (n GGUF rows of k) into dst (packed_size bytes).
using pack_fn = void (*)(format fmt, const void* w, size_t n, size_t k, void* dst, size_t n_begin, size_t n_end);

}  // namespace lowbit::kernels
