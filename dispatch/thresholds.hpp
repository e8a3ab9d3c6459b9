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

/// Decode attention splits a sequence's keys into chunks of this many tokens,
/// each a task; the partial softmax states merge in chunk order. A constant,
/// not a function of the thread count, so results are the same on any pool.
inline constexpr size_t attention_split_tokens = 256;

/// Prefill attention gives each task this many query positions (times the
/// query heads sharing a KV head) against all of their keys.
inline constexpr size_t attention_query_block = 32;

}  // namespace lowbit::detail
