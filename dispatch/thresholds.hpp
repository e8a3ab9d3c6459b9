// Dispatch thresholds, all in one place.
//
// M classes: M == 1 is GEMV; 2 <= M < large_m_min is "small" (register-blocked
// VNNI-style kernels); M >= large_m_min is "large" (where tile engines such as
// AMX pay off). LOWBIT_LARGE_M overrides large_m_min at start-up, because the
// crossover differs between chips.
#pragma once

#include <cstddef>

namespace lowbit::detail {

inline constexpr size_t default_large_m_min = 32;

/// Columns of N one task of a linear/GEMM call covers at least.
inline constexpr size_t min_columns_per_task = 16;

/// Decode attention splits a sequence's keys into chunks, each a task; the
/// partial softmax states merge in chunk order. A chunk is the smallest of
/// 256, 512 and 1024 tokens that leaves at most attention_split_chunks
/// chunks per KV head (1024 past that): a function of the context length
/// alone, never of the thread count, so results are the same on any pool.
/// Longer chunks mean fewer kernel calls and merges (at 4096 keys, 512-token
/// chunks decode 2-3% faster than 256-token ones); 8 chunks per KV head keep
/// every thread of a large pool busy.
inline constexpr size_t attention_split_tokens = 256, attention_split_tokens_max = 1024, attention_split_chunks = 8;
inline constexpr size_t attention_split_for(size_t keys) {
  size_t chunk = attention_split_tokens;
  while (chunk < attention_split_tokens_max && keys > chunk * attention_split_chunks) chunk *= 2;
  return chunk;
}

/// Prefill attention gives each task this many query positions (times the
/// query heads sharing a KV head) against all of their keys; the amx tier's
/// kernel, which stages each tile of keys and values for the tile unit
/// (keys row by row, values column by column in bf16) once per task for all
/// of its rows, four times as many. With 128 positions a 512- or 2048-token
/// prefill (8 KV heads, 32 heads, d = 128, Xeon with AMX) took 0.90-0.92 of
/// the time it took with 32 (64: 0.92-0.94); the avx512_vnni kernel, with
/// no such staging, gained nothing from 64 (0.99-1.01). Neither depends on
/// the thread count, and no result depends on how rows are cut into tasks.
/// A prompt's last block joins the one before it when it has at most
/// kernels::attention_decode_rows rows per KV head (dispatch/attention.cpp).
inline constexpr size_t attention_query_block = 32, attention_query_block_staged = 128;

}  // namespace lowbit::detail
