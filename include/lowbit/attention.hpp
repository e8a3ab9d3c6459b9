// Multi-head attention (causal or not, GQA/MQA) through dispatch.
#pragma once

#include <cstddef>

#include "lowbit/kv_cache.hpp"

namespace lowbit {

/// Shape of one attention call. Layouts are token-major: q and out are
/// [n_q][n_heads][head_dim], k and v are [n_kv][n_kv_heads][head_dim]; a stride
/// is the distance in floats between consecutive tokens (0 = dense). Query i sits
/// at position n_kv - n_q + i, so a causal query sees keys 0 .. n_kv - n_q + i.
struct attention_shape {
  size_t n_q = 0;
  size_t n_kv = 0;
  size_t n_heads = 0;
  size_t n_kv_heads = 0;   ///< must divide n_heads
  size_t head_dim = 0;
  float scale = 0.0f;      ///< 0 means 1/sqrt(head_dim)
  bool causal = true;
  size_t q_stride = 0, k_stride = 0, v_stride = 0, out_stride = 0;
};

/// out = softmax(scale * q . k^T [+ causal mask]) . v, per head, in f32.
/// Flash-style: tiles of keys with an online softmax, never the full score
/// matrix. Bit-identical for any thread count.
void attention(const attention_shape& shape, const float* q, const float* k, const float* v, float* out);

/// The queries of one sequence for attention over a KvCache: the last n_q
/// tokens already appended to the cache (n_q = 1 is decode; more is prefill),
/// so query i sits at position length - n_q + i and sees keys 0 .. that position.
struct paged_query {
  seq_id seq = 0;
  const float* q = nullptr;  ///< [n_q][n_heads][head_dim]
  size_t n_q = 0;
  float* out = nullptr;      ///< [n_q][n_heads][head_dim]
  size_t q_stride = 0, out_stride = 0;  ///< floats between tokens (0 = dense)
};

/// Causal attention of several sequences at once (dynamic batching) over
/// `layer` of `cache`: n_heads query heads, grouped onto the cache's KV heads
/// (n_kv_heads must divide n_heads). scale 0 means 1/sqrt(head_dim). Decode
/// splits each sequence's keys into fixed chunks spread over the threads and
/// merges them in chunk order, so results do not depend on the thread count.
/// With q8_0 keys on a VNNI tier, QKᵀ runs in integers on the queries rounded
/// to q8_0; with q8_0 values too, so does P . V, on softmax weights rounded to
/// u8 per tile of keys (relative squared error below 1e-4 against attention
/// on the cached values). Every other combination keeps P . V in f32.
void attention(const KvCache& cache, size_t layer, size_t n_heads, const paged_query* queries, size_t count,
               float scale = 0.0f);

}  // namespace lowbit
