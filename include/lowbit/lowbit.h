/* lowbit C API: a stable ABI over the C++ library for other runtimes and FFI.
 *
 * Every function returns a lowbit_status; on failure lowbit_last_error() gives
 * a message (per thread) saying what was wrong and what was expected. Nothing
 * is written to an output when a call fails validation. Formats use GGUF's
 * ggml type codes, so a GGUF tensor's type can be passed straight through. */
#ifndef LOWBIT_H
#define LOWBIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lowbit_status {
  LOWBIT_OK = 0,
  LOWBIT_INVALID_ARGUMENT = 1,
  LOWBIT_UNSUPPORTED = 2,
  LOWBIT_ISA_UNAVAILABLE = 3,
  LOWBIT_OUT_OF_MEMORY = 4,
  LOWBIT_IO_ERROR = 5,
  LOWBIT_BAD_FILE = 6,
  LOWBIT_INTERNAL = 7
} lowbit_status;

typedef enum lowbit_format {
  LOWBIT_F32 = 0,
  LOWBIT_F16 = 1,
  LOWBIT_Q4_0 = 2,
  LOWBIT_Q4_1 = 3,
  LOWBIT_Q8_0 = 8,
  LOWBIT_Q8_1 = 9,
  LOWBIT_Q4_K = 12,
  LOWBIT_Q6_K = 14,
  LOWBIT_Q8_K = 15,
  LOWBIT_BF16 = 30
} lowbit_format;

/** The message of the last failed call on this thread ("" if none). */
const char* lowbit_last_error(void);
/** "MAJOR.MINOR.PATCH". */
const char* lowbit_version(void);
/** A status code's name, e.g. "LOWBIT_INVALID_ARGUMENT". */
const char* lowbit_status_name(lowbit_status status);

/* ---- formats ---- */
/** Elements per block (1 for f32/f16/bf16); 0 for an unknown format. */
size_t lowbit_block_length(lowbit_format format);
/** Bytes per block; 0 for an unknown format. */
size_t lowbit_block_bytes(lowbit_format format);
/** Bytes of rows x k elements into *bytes. */
lowbit_status lowbit_quantized_size(lowbit_format format, size_t rows, size_t k, size_t* bytes);

/* ---- quantize / dequantize ---- */
/** rows x k floats (row stride ldx floats, 0 = k) into dst (dst_bytes long). */
lowbit_status lowbit_quantize_rows(lowbit_format format, const float* x, size_t rows, size_t k, size_t ldx,
                                   void* dst, size_t dst_bytes);
/** rows GGUF rows of k elements (src_bytes long) into floats (row stride ldy, 0 = k). */
lowbit_status lowbit_dequantize_rows(lowbit_format format, const void* src, size_t src_bytes, size_t rows,
                                     size_t k, float* y, size_t ldy);
/** rows GGUF rows of k elements (src_bytes long) into values of format out
 *  (LOWBIT_F32, LOWBIT_F16 or LOWBIT_BF16; others are LOWBIT_INVALID_ARGUMENT)
 *  with row stride ldy elements of out (0 = k). Rounds to nearest even from
 *  the exact f32 values; out equal to format copies the rows unchanged. */
lowbit_status lowbit_dequantize_rows_to(lowbit_format format, const void* src, size_t src_bytes, size_t rows,
                                        size_t k, void* y, lowbit_format out, size_t ldy);

/* ---- linear layers ---- */
typedef struct lowbit_packed_weights lowbit_packed_weights;
/** Packs n GGUF rows of k elements of a weight format; *out owns the result. */
lowbit_status lowbit_pack_weights(lowbit_format format, const void* data, size_t data_bytes, size_t n, size_t k,
                                  lowbit_packed_weights** out);
/** Frees packed weights (null is allowed). */
void lowbit_packed_weights_free(lowbit_packed_weights* weights);
/** Seconds the packing took. */
double lowbit_packed_weights_pack_seconds(const lowbit_packed_weights* weights);
/** y[m x n] = x[m x k] . W^T; strides in floats, 0 = dense. */
lowbit_status lowbit_linear(const lowbit_packed_weights* weights, const float* x, size_t m, size_t ldx, float* y,
                            size_t ldy);

/* ---- int8 GEMM ---- */
/** C[m x n] = A[m x k] . B^T (B is n rows of k). a_unsigned selects u8 A.
 *  c (s32) and y (f32 = c * row_scales[m] * col_scales[n]; null scale = 1)
 *  may each be null but not both. Strides in elements, 0 = dense. */
lowbit_status lowbit_gemm_s8(int a_unsigned, const void* a, size_t lda, const int8_t* b, size_t ldb, size_t m,
                             size_t n, size_t k, int32_t* c, size_t ldc, const float* row_scales,
                             const float* col_scales, float* y, size_t ldy);

/* ---- attention ---- */
typedef struct lowbit_attention_shape {
  size_t n_q, n_kv, n_heads, n_kv_heads, head_dim;
  float scale; /* 0 = 1/sqrt(head_dim) */
  int causal;
  size_t q_stride, k_stride, v_stride, out_stride; /* floats between tokens, 0 = dense */
} lowbit_attention_shape;
/** Token-major q/out [n_q][n_heads][head_dim], k/v [n_kv][n_kv_heads][head_dim]. */
lowbit_status lowbit_attention(const lowbit_attention_shape* shape, const float* q, const float* k,
                               const float* v, float* out);

/* ---- paged KV cache ---- */
/** A paged, quantized KV cache: blocks of block_tokens tokens (every layer
 *  and KV head) from one pool of max_blocks, a block table per sequence, K
 *  and V formats chosen separately. Appending quantizes on write; reading
 *  back dequantizes. Not thread-safe for concurrent mutation; attention calls
 *  only read it. */
typedef struct lowbit_kv_cache lowbit_kv_cache;
typedef struct lowbit_kv_cache_config {
  size_t n_layers, n_kv_heads, head_dim;
  lowbit_format k_format; /* LOWBIT_F32, LOWBIT_F16 or LOWBIT_Q8_0 */
  lowbit_format v_format; /* LOWBIT_F32, LOWBIT_F16, LOWBIT_Q8_0 or LOWBIT_Q4_0 */
  size_t block_tokens;    /* tokens per block, 0 = 32 */
  size_t max_blocks;      /* pool capacity in blocks; memory is taken as blocks are first used */
} lowbit_kv_cache_config;
/** A new cache into *out (untouched on failure); free it with lowbit_kv_cache_free. Quantized
 *  formats need head_dim to be a multiple of their block length. */
lowbit_status lowbit_kv_cache_create(const lowbit_kv_cache_config* config, lowbit_kv_cache** out);
/** Frees a cache and every sequence in it (null is allowed). */
void lowbit_kv_cache_free(lowbit_kv_cache* cache);
/** A new, empty sequence's id into *seq. */
lowbit_status lowbit_kv_cache_create_sequence(lowbit_kv_cache* cache, uint32_t* seq);
/** Returns the sequence's blocks to the pool; the id becomes invalid (and may be reused). */
lowbit_status lowbit_kv_cache_free_sequence(lowbit_kv_cache* cache, uint32_t seq);
/** Tokens stored for seq in layer, into *length. */
lowbit_status lowbit_kv_cache_length(const lowbit_kv_cache* cache, uint32_t seq, size_t layer, size_t* length);
/** Blocks in use, blocks still free and bytes per block (each pointer may be null). */
lowbit_status lowbit_kv_cache_blocks(const lowbit_kv_cache* cache, size_t* used, size_t* free_blocks,
                                     size_t* block_bytes);
/** Appends n tokens to layer of seq: k and v token-major [n][n_kv_heads][head_dim],
 *  strides in floats between tokens (0 = dense). When the pool has too few free
 *  blocks it returns LOWBIT_OUT_OF_MEMORY and stores nothing. */
lowbit_status lowbit_kv_cache_append(lowbit_kv_cache* cache, uint32_t seq, size_t layer, const float* k,
                                     const float* v, size_t n, size_t k_stride, size_t v_stride);
/** Tokens [begin, end) of layer of seq, dequantized, token-major like append (dense). */
lowbit_status lowbit_kv_cache_read(const lowbit_kv_cache* cache, uint32_t seq, size_t layer, size_t begin,
                                   size_t end, float* k, float* v);

/** The queries of one sequence: its last n_q tokens already appended (1 = decode,
 *  more = prefill), so query i sits at position length - n_q + i and sees keys up to it. */
typedef struct lowbit_paged_query {
  uint32_t seq;
  const float* q; /* [n_q][n_heads][head_dim] */
  size_t n_q;
  float* out;     /* [n_q][n_heads][head_dim] */
  size_t q_stride, out_stride; /* floats between tokens, 0 = dense */
} lowbit_paged_query;
/** Causal attention of count sequences at once over layer of cache, n_heads query
 *  heads grouped onto the cache's KV heads (n_kv_heads must divide n_heads); scale
 *  0 = 1/sqrt(head_dim). Every query is checked before any output is written.
 *  Bit-identical for any thread count. With q8_0 keys on a VNNI tier QK^T runs
 *  in integers on the queries rounded to q8_0, and with q8_0 values too P.V on
 *  softmax weights rounded to u8 per tile of keys (relative squared error below
 *  1e-4 against attention on the cached values); other formats keep f32. */
lowbit_status lowbit_paged_attention(const lowbit_kv_cache* cache, size_t layer, size_t n_heads,
                                     const lowbit_paged_query* queries, size_t count, float scale);

/* ---- threads ---- */
lowbit_status lowbit_set_num_threads(size_t n);
size_t lowbit_get_num_threads(void);

/* ---- dispatch ---- */
/** Caps dispatch at the named tier ("avx2", "scalar", ...). */
lowbit_status lowbit_set_isa_max(const char* isa);
/** Removes the named tiers (comma-separated). */
lowbit_status lowbit_set_isa_disable(const char* isas);
/** Drops every override, the environment's included. */
lowbit_status lowbit_clear_isa_overrides(void);
/** Logs dispatch decisions to stderr when on is non-zero. */
void lowbit_set_verbose(int on);
/** Space-separated names of the detected / compiled / enabled tiers. The
 *  string stays valid until the next call of the same function on the thread. */
const char* lowbit_detected_isas(void);
const char* lowbit_compiled_isas(void);
const char* lowbit_enabled_isas(void);
/** The kernel that runs op (e.g. "linear.q4_0.gemv"); valid until the next call on the thread. */
lowbit_status lowbit_selected_kernel(const char* op, const char** kernel);

#ifdef __cplusplus
}
#endif
#endif /* LOWBIT_H */
