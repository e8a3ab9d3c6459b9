// The attention benchmarks' inputs, shared by lowbit-bench-kernels and
// lowbit-attn-min: unit Gaussian floats, and a paged KV cache holding one
// sequence of random tokens.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "lowbit/kv_cache.hpp"

namespace lowbit::bench {

/// n unit Gaussian floats, the same for the same seed.
inline std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  return x;
}

/// The attention benchmarks' head dimension and cache block.
inline constexpr size_t attn_dim = 128, attn_block_tokens = 64;

/// A cache of `kv_heads` heads of `dim` values holding one sequence of n
/// random tokens (a 1024-token chunk of them, appended again and again).
struct attn_setup {
  KvCache cache;
  seq_id seq;
  attn_setup(format kf, format vf, size_t n, size_t kv_heads, size_t dim = attn_dim)
      : cache(kv_cache_config{.n_kv_heads = kv_heads,
                              .head_dim = dim,
                              .k_format = kf,
                              .v_format = vf,
                              .block_tokens = attn_block_tokens,
                              .max_blocks = (n + attn_block_tokens - 1) / attn_block_tokens}),
        seq(cache.create_sequence()) {
    const size_t chunk = 1024, row = kv_heads * dim;
    const auto k = random_floats(chunk * row, 5), v = random_floats(chunk * row, 6);
    for (size_t done = 0; done < n; done += chunk) cache.append(seq, 0, k.data(), v.data(), std::min(chunk, n - done));
  }
  /// The K and V bytes of the first n tokens.
  size_t kv_bytes(size_t n) const {
    const auto lv = cache.view(seq, 0);
    return n * cache.config().n_kv_heads * (lv.k_row_bytes + lv.v_row_bytes);
  }
};

}  // namespace lowbit::bench
