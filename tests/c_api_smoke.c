/* c_api_smoke: lowbit.h used end to end from a C99 program.
 *
 * Compiled as C with -Wall -Wextra -pedantic, so the header itself is checked
 * to be valid C. The program quantizes to Q8_0 and back, runs a Q4_0 linear
 * layer against a double-precision dot of the dequantized weights, and checks
 * that an error comes back as a status with a message. It prints one line per
 * failed check and a summary; the exit status is 0 only if every check passed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit/lowbit.h"

static int passed = 0;
static int failed = 0;

static void check(int ok, const char* what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    fprintf(stderr, "c_api_smoke: FAILED: %s\n", what);
  }
}

/* Reports a failed call with its status and message; returns non-zero on success. */
static int call_ok(lowbit_status status, const char* what) {
  if (status != LOWBIT_OK)
    fprintf(stderr, "c_api_smoke: %s returned %s: %s\n", what, lowbit_status_name(status), lowbit_last_error());
  check(status == LOWBIT_OK, what);
  return status == LOWBIT_OK;
}

/* A small deterministic generator: uniform floats in [-1, 1). */
static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;
static float next_uniform(void) {
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)((double)(rng_state >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
}

enum { ROWS = 2, K = 64, N = 8, M = 2, QBLOCK = 32 };

/* Q8_0 round trip of a 2 x 64 matrix: each element within about d/2 of the
 * original, d = max|x| / 127 of its block (plus the f16 rounding of d). */
static void q8_0_round_trip(void) {
  float x[ROWS * K], y[ROWS * K];
  unsigned char q[ROWS * K]; /* Q8_0 needs 34 bytes per 32, less than this */
  size_t bytes = 0;
  size_t i, b, j;
  int within = 1;

  for (i = 0; i < ROWS * K; ++i) x[i] = 4.0f * next_uniform();
  check(lowbit_block_length(LOWBIT_Q8_0) == QBLOCK, "Q8_0 block length is 32");
  check(lowbit_block_bytes(LOWBIT_Q8_0) == 34, "Q8_0 block is 34 bytes");
  if (!call_ok(lowbit_quantized_size(LOWBIT_Q8_0, ROWS, K, &bytes), "lowbit_quantized_size(Q8_0)")) return;
  check(bytes == ROWS * (K / QBLOCK) * 34, "Q8_0 size of 2 x 64");
  if (bytes > sizeof q) return;
  if (!call_ok(lowbit_quantize_rows(LOWBIT_Q8_0, x, ROWS, K, 0, q, bytes), "lowbit_quantize_rows(Q8_0)")) return;
  if (!call_ok(lowbit_dequantize_rows(LOWBIT_Q8_0, q, bytes, ROWS, K, y, 0), "lowbit_dequantize_rows(Q8_0)")) return;

  for (b = 0; b < ROWS * K; b += QBLOCK) {
    float amax = 0.0f;
    double bound;
    for (j = 0; j < QBLOCK; ++j)
      if (fabsf(x[b + j]) > amax) amax = fabsf(x[b + j]);
    /* d/2 for rounding to the nearest step, 127 * d * 2^-11 for d stored as f16. */
    bound = amax / 127.0 * (0.5 + 127.0 / 2048.0) + 1e-6;
    for (j = 0; j < QBLOCK; ++j)
      if (fabs((double)x[b + j] - (double)y[b + j]) > bound) {
        fprintf(stderr, "c_api_smoke: Q8_0 element %lu: %g -> %g, bound %g\n", (unsigned long)(b + j), x[b + j],
                y[b + j], bound);
        within = 0;
      }
  }
  check(within, "Q8_0 round trip within d/2");
}

/* A Q4_0 linear layer, M = 2: y = x . W^T against a double dot of the
 * dequantized weights and the original x. The only difference is the Q8_0
 * quantization of x, well inside 2% of sum |w||x|. */
static void q4_0_linear(void) {
  float w[N * K], w_deq[N * K], x[M * K], y[M * N];
  unsigned char wq[N * K]; /* Q4_0 needs 18 bytes per 32, less than this */
  size_t bytes = 0;
  size_t i, j, p;
  int within = 1;
  lowbit_packed_weights* packed = NULL;

  for (i = 0; i < N * K; ++i) w[i] = next_uniform();
  for (i = 0; i < M * K; ++i) x[i] = next_uniform();
  for (i = 0; i < M * N; ++i) y[i] = NAN;
  if (!call_ok(lowbit_quantized_size(LOWBIT_Q4_0, N, K, &bytes), "lowbit_quantized_size(Q4_0)")) return;
  if (bytes > sizeof wq) return;
  if (!call_ok(lowbit_quantize_rows(LOWBIT_Q4_0, w, N, K, 0, wq, bytes), "lowbit_quantize_rows(Q4_0)")) return;
  if (!call_ok(lowbit_dequantize_rows(LOWBIT_Q4_0, wq, bytes, N, K, w_deq, 0), "lowbit_dequantize_rows(Q4_0)"))
    return;
  if (!call_ok(lowbit_pack_weights(LOWBIT_Q4_0, wq, bytes, N, K, &packed), "lowbit_pack_weights(Q4_0)")) return;
  check(packed != NULL, "lowbit_pack_weights gives weights");
  check(lowbit_packed_weights_pack_seconds(packed) >= 0.0, "pack time is not negative");

  if (call_ok(lowbit_linear(packed, x, M, 0, y, 0), "lowbit_linear(Q4_0, M=2)")) {
    for (i = 0; i < M; ++i)
      for (j = 0; j < N; ++j) {
        double dot = 0.0, abs_sum = 0.0, err;
        for (p = 0; p < K; ++p) {
          dot += (double)w_deq[j * K + p] * (double)x[i * K + p];
          abs_sum += fabs((double)w_deq[j * K + p] * (double)x[i * K + p]);
        }
        err = fabs((double)y[i * N + j] - dot);
        if (!(err <= 0.02 * abs_sum + 1e-4)) { /* also catches NaN */
          fprintf(stderr, "c_api_smoke: linear y[%lu][%lu] = %g, expected %g (bound %g)\n", (unsigned long)i,
                  (unsigned long)j, y[i * N + j], dot, 0.02 * abs_sum + 1e-4);
          within = 0;
        }
      }
    check(within, "Q4_0 linear matches the dequantized dot");
  }
  lowbit_packed_weights_free(packed);
}

/* A paged f16 KV cache from C: three tokens appended to a sequence over two
 * blocks, read back (f16 holds these values exactly), and one decode step of
 * attention. The keys are zero but for the last token's first eight values
 * (0.5), so with a query of ones every score is 0 but the last token's,
 * 8 * 0.5 * scale; the values are 0.25, 0.5 and 0.75 per token, and the
 * output is their softmax-weighted mean. */
enum { KV_DIM = 32, KV_TOKENS = 3, Q_HEADS = 2 };
static void kv_cache_decode(void) {
  lowbit_kv_cache_config config;
  lowbit_kv_cache* cache = NULL;
  uint32_t seq = 99;
  float k[KV_TOKENS * KV_DIM], v[KV_TOKENS * KV_DIM], kr[KV_TOKENS * KV_DIM], vr[KV_TOKENS * KV_DIM];
  float q[Q_HEADS * KV_DIM], out[Q_HEADS * KV_DIM];
  lowbit_paged_query pq;
  size_t length = 0, used = 0, i, t;
  int same = 1, close = 1;
  double w_last, expected;

  memset(&config, 0, sizeof config);
  config.n_layers = 1;
  config.n_kv_heads = 1;
  config.head_dim = KV_DIM;
  config.k_format = LOWBIT_F16;
  config.v_format = LOWBIT_F16;
  config.block_tokens = 2; /* three tokens span two blocks */
  config.max_blocks = 4;
  if (!call_ok(lowbit_kv_cache_create(&config, &cache), "lowbit_kv_cache_create")) return;
  if (call_ok(lowbit_kv_cache_create_sequence(cache, &seq), "lowbit_kv_cache_create_sequence")) {
    for (t = 0; t < KV_TOKENS; ++t)
      for (i = 0; i < KV_DIM; ++i) {
        k[t * KV_DIM + i] = (t == KV_TOKENS - 1 && i < 8) ? 0.5f : 0.0f;
        v[t * KV_DIM + i] = 0.25f * (float)(t + 1);
      }
    for (i = 0; i < Q_HEADS * KV_DIM; ++i) q[i] = 1.0f;
    call_ok(lowbit_kv_cache_append(cache, seq, 0, k, v, KV_TOKENS, 0, 0), "lowbit_kv_cache_append");
    call_ok(lowbit_kv_cache_length(cache, seq, 0, &length), "lowbit_kv_cache_length");
    check(length == KV_TOKENS, "three tokens stored");
    call_ok(lowbit_kv_cache_blocks(cache, &used, NULL, NULL), "lowbit_kv_cache_blocks");
    check(used == 2, "three tokens of two per block take two blocks");
    call_ok(lowbit_kv_cache_read(cache, seq, 0, 0, KV_TOKENS, kr, vr), "lowbit_kv_cache_read");
    for (i = 0; i < KV_TOKENS * KV_DIM; ++i) same = same && kr[i] == k[i] && vr[i] == v[i];
    check(same, "the cache reads back what was appended");

    pq.seq = seq;
    pq.q = q;
    pq.n_q = 1;
    pq.out = out;
    pq.q_stride = 0;
    pq.out_stride = 0;
    if (call_ok(lowbit_paged_attention(cache, 0, Q_HEADS, &pq, 1, 0.0f), "lowbit_paged_attention")) {
      w_last = exp(8 * 0.5 / sqrt((double)KV_DIM));
      expected = (0.25 + 0.5 + 0.75 * w_last) / (2.0 + w_last);
      for (i = 0; i < Q_HEADS * KV_DIM; ++i) close = close && fabs(out[i] - expected) < 1e-5;
      check(close, "decode attention gives the softmax-weighted mean of the values");
    }
    call_ok(lowbit_kv_cache_free_sequence(cache, seq), "lowbit_kv_cache_free_sequence");
    call_ok(lowbit_kv_cache_blocks(cache, &used, NULL, NULL), "lowbit_kv_cache_blocks after free");
    check(used == 0, "freeing the sequence returns its blocks");
    check(lowbit_kv_cache_length(cache, seq, 0, &length) == LOWBIT_INVALID_ARGUMENT, "a freed sequence is an error");
  }
  lowbit_kv_cache_free(cache);
}

/* Errors: a status and a message, nothing written, and the message cleared by
 * the next successful call. */
static void error_paths(void) {
  size_t bytes = 777;
  lowbit_status s = lowbit_quantized_size(LOWBIT_Q8_0, 1, 33, &bytes);
  lowbit_packed_weights* packed = NULL;
  unsigned char data[64];

  check(s == LOWBIT_INVALID_ARGUMENT, "k = 33 for Q8_0 is LOWBIT_INVALID_ARGUMENT");
  check(lowbit_last_error()[0] != '\0', "a failed call leaves a message");
  check(strstr(lowbit_last_error(), "32") != NULL, "the message names the block length");
  check(bytes == 777, "a failed call writes nothing");
  check(strcmp(lowbit_status_name(s), "LOWBIT_INVALID_ARGUMENT") == 0, "lowbit_status_name");

  memset(data, 0, sizeof data);
  s = lowbit_pack_weights(LOWBIT_Q8_K, data, sizeof data, 1, 256, &packed);
  check(s != LOWBIT_OK, "Q8_K is not a weight format");
  check(packed == NULL, "a failed pack leaves *out NULL");
  check(lowbit_linear(NULL, NULL, 1, 0, NULL, 0) == LOWBIT_INVALID_ARGUMENT, "null weights are rejected");

  check(lowbit_quantized_size(LOWBIT_Q8_0, 1, 32, &bytes) == LOWBIT_OK, "a valid size");
  check(lowbit_last_error()[0] == '\0', "a successful call clears the message");
}

int main(void) {
  const char* version = lowbit_version();
  check(version != NULL && version[0] != '\0', "lowbit_version");
  check(lowbit_get_num_threads() >= 1, "lowbit_get_num_threads");

  q8_0_round_trip();
  q4_0_linear();
  kv_cache_decode();
  error_paths();

  printf("c_api_smoke: %d passed, %d failed (lowbit %s)\n", passed, failed, version ? version : "?");
  return failed == 0 ? 0 : 1;
}
