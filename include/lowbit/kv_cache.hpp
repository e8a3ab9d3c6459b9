// A paged, quantized KV cache: fixed-size blocks of tokens from one pool,
// a block table per sequence, K and V formats chosen separately.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lowbit/formats.hpp"

namespace lowbit {

/// Shape and storage of a KvCache.
struct kv_cache_config {
  size_t n_layers = 1;
  size_t n_kv_heads = 0;
  size_t head_dim = 0;
  format k_format = format::f16;  ///< f32, f16 or q8_0
  format v_format = format::f16;  ///< f32, f16, q8_0 or q4_0
  size_t block_tokens = 32;       ///< tokens per block
  size_t max_blocks = 0;          ///< pool capacity in blocks (memory is taken as blocks are first used)
};

/// Identifies a sequence in a KvCache.
using seq_id = uint32_t;

/// The KV cache. One block holds `block_tokens` tokens of every layer and KV
/// head; a sequence owns a list of blocks (its block table), so a context
/// grows a block at a time without moving what is stored, and sequences of
/// different lengths share one pool. Appending quantizes on write (through
/// the dispatched quantizers); reading back dequantizes. Quantized formats need
/// head_dim to be a multiple of their 32-value block. Not thread-safe for
/// concurrent mutation; attention calls only read it.
class KvCache {
 public:
  explicit KvCache(const kv_cache_config& config);
  ~KvCache();
  KvCache(KvCache&&) noexcept;
  KvCache& operator=(KvCache&&) noexcept;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const kv_cache_config& config() const;

  /// A new, empty sequence.
  seq_id create_sequence();
  /// Returns the sequence's blocks to the pool; the id becomes invalid.
  void free_sequence(seq_id seq);
  /// Tokens stored for `seq` in `layer`.
  size_t length(seq_id seq, size_t layer = 0) const;
  /// Blocks in use and blocks still available (max_blocks - used).
  size_t used_blocks() const;
  size_t free_blocks() const;
  /// Bytes of one block (all layers, K and V).
  size_t block_bytes() const;

  /// Appends n tokens to `layer` of `seq`. k and v are token-major
  /// [n][n_kv_heads][head_dim] floats, `k_stride` / `v_stride` floats between
  /// tokens (0 = dense). Throws (and stores nothing) when the pool has too few
  /// free blocks.
  void append(seq_id seq, size_t layer, const float* k, const float* v, size_t n, size_t k_stride = 0,
              size_t v_stride = 0);

  /// Dequantized tokens [begin, end) of `layer`, token-major like append.
  void read(seq_id seq, size_t layer, size_t begin, size_t end, float* k, float* v) const;

  /// Where the bytes are, for kernels: the sequence's block base pointers.
  /// Token t of head h starts at blocks[t / block_tokens] + k_offset + h *
  /// k_head_bytes + (t % block_tokens) * k_row_bytes (likewise V) for f32,
  /// f16 and q4_0 rows. q8_0 rows are kept in groups of 16 tokens laid out
  /// for the integer kernels, each head's tokens padded to whole groups; the
  /// same expression gives where the token's lane would start (see
  /// kernels/kv_layout.hpp for the layout; read() undoes it).
  struct layout {
    std::vector<const unsigned char*> blocks;
    size_t block_tokens;
    size_t k_offset, v_offset;          ///< bytes from a block's base to head 0 of this layer's K / V
    size_t k_head_bytes, v_head_bytes;  ///< bytes from one head to the next
    size_t k_row_bytes, v_row_bytes;    ///< bytes of one token of one head
  };
  layout view(seq_id seq, size_t layer) const;

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace lowbit
