// The paged KV cache (lowbit/kv_cache.hpp).
//
// Storage: a pool of blocks, taken from the system in chunks as first needed
// and never moved, so pointers into a block stay valid for its lifetime. A
// block holds, for each layer, K then V, each [n_kv_heads][block_tokens] rows
// of one token's head vector in the chosen format: a head's tokens are
// contiguous, which is how the attention kernels walk them. q8_0 rows are
// kept in groups of 16 tokens laid out for the integer kernels
// (kernels/kv_layout.hpp), a head's tokens padded to whole groups.
#include "lowbit/kv_cache.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "dispatch/checks.hpp"
#include "dispatch/memory.hpp"
#include "dispatch/registry.hpp"
#include "kernels/kv_layout.hpp"
#include "lowbit/error.hpp"

namespace lowbit {

using namespace detail;

namespace {

size_t checked_mul(size_t a, size_t b, const char* what) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r)) invalid(std::string("KvCache: ") + what + " overflows");
  return r;
}

constexpr size_t chunk_blocks = 64;  ///< blocks taken from the system at a time

/// Whether rows of format f are kept in the grouped layout (kernels/kv_layout.hpp).
bool grouped(format f) { return f == format::q8_0; }

/// Stores the quantized row `row` as token `slot` of a head whose tokens
/// start at `head`: in place for plain rows; for grouped ones, into its lane,
/// the group cleared first when this is its first lane (a block comes back
/// from the pool holding an earlier sequence's tokens).
void store_row(format f, kernels::kv_side side, unsigned char* head, size_t slot, size_t row_bytes, size_t d,
               const unsigned char* row) {
  if (!grouped(f)) {
    std::memcpy(head + slot * row_bytes, row, row_bytes);
    return;
  }
  const size_t g = kernels::kv_group_tokens;
  unsigned char* group = head + slot / g * g * row_bytes;
  if (slot % g == 0) std::memset(group, 0, kernels::kv_group_bytes(d));
  kernels::kv_group_put(side, group, slot % g, d, row);
}

/// The stored row of token `slot` (as a plain row, in `scratch` when grouped).
const unsigned char* load_row(format f, kernels::kv_side side, const unsigned char* head, size_t slot,
                              size_t row_bytes, size_t d, unsigned char* scratch) {
  if (!grouped(f)) return head + slot * row_bytes;
  const size_t g = kernels::kv_group_tokens;
  kernels::kv_group_get(side, head + slot / g * g * row_bytes, slot % g, d, scratch);
  return scratch;
}

/// A chunk of the pool. Chunks of 2 MiB and more are 2 MiB aligned and asked
/// to be backed by huge pages where the system has them: decode walks the
/// whole cache once per token, and with 4 KiB pages a long context (64 MiB
/// at 16k tokens of 8 f16 heads) misses the TLB on every page it reads.
unsigned char* allocate_chunk(size_t bytes) {
  void* p = allocate_advised(bytes);
  if (!p)
    throw Error(status::out_of_memory, "KvCache: cannot allocate " + std::to_string(advised_bytes(bytes)) + " bytes");
  return static_cast<unsigned char*>(p);
}

}  // namespace

struct KvCache::impl {
  kv_cache_config cfg;
  size_t k_row = 0, v_row = 0;        // bytes of one token of one head
  size_t k_head = 0, v_head = 0;      // bytes of one head's tokens in a block (whole groups for q8_0)
  size_t k_bytes = 0, v_bytes = 0;    // bytes of one layer's K (or V) in a block
  size_t layer_bytes = 0, block = 0;  // bytes of one layer, of one block
  struct chunk_deleter {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<unsigned char, chunk_deleter>> chunks;
  std::vector<uint32_t> free_list;  // block ids not in use (ids < chunks.size() * chunk_blocks)
  size_t used = 0;
  struct sequence {
    bool live = false;
    std::vector<uint32_t> blocks;
    std::vector<size_t> length;  // per layer
  };
  std::vector<sequence> seqs;

  unsigned char* block_ptr(uint32_t id) const {
    return chunks[id / chunk_blocks].get() + static_cast<size_t>(id % chunk_blocks) * block;
  }
  sequence& live_seq(seq_id s, const char* fn) {
    if (s >= seqs.size() || !seqs[s].live) invalid(std::string("KvCache::") + fn + ": no live sequence " + std::to_string(s));
    return seqs[s];
  }
  const sequence& live_seq(seq_id s, const char* fn) const { return const_cast<impl*>(this)->live_seq(s, fn); }
  void check_layer(size_t layer, const char* fn) const {
    if (layer >= cfg.n_layers)
      invalid(std::string("KvCache::") + fn + ": layer " + std::to_string(layer) + " out of range (n_layers=" +
              std::to_string(cfg.n_layers) + ")");
  }
  /// Takes n blocks from the pool (all or none).
  std::vector<uint32_t> take(size_t n) {
    if (n > cfg.max_blocks - used)
      throw Error(status::out_of_memory, "KvCache::append: needs " + std::to_string(n) + " more blocks, " +
                                             std::to_string(cfg.max_blocks - used) + " of " +
                                             std::to_string(cfg.max_blocks) + " are free");
    while (free_list.size() < n) {
      const size_t first = chunks.size() * chunk_blocks;
      const size_t count = std::min(chunk_blocks, cfg.max_blocks - first);
      chunks.emplace_back(allocate_chunk(count * block));
      for (size_t i = count; i-- > 0;) free_list.push_back(static_cast<uint32_t>(first + i));
    }
    std::vector<uint32_t> out(free_list.end() - static_cast<std::ptrdiff_t>(n), free_list.end());
    std::reverse(out.begin(), out.end());
    free_list.resize(free_list.size() - n);
    used += n;
    return out;
  }
};

KvCache::KvCache(const kv_cache_config& c) : p_(std::make_unique<impl>()) {
  auto bad = [](const std::string& what) { invalid("KvCache: " + what); };
  if (c.n_layers == 0 || c.n_kv_heads == 0 || c.head_dim == 0 || c.block_tokens == 0)
    bad("n_layers, n_kv_heads, head_dim and block_tokens must all be positive");
  if (c.max_blocks == 0) bad("max_blocks must be positive");
  if (c.max_blocks > (size_t{1} << 31)) bad("max_blocks must be below 2^31");
  auto check_format = [&](format f, bool v) {
    const format_traits* t = find_format(f);
    const bool allowed = f == format::f32 || f == format::f16 || f == format::q8_0 || (v && f == format::q4_0);
    if (!t || !allowed)
      bad(std::string(v ? "v_format" : "k_format") + " must be f32, f16" + (v ? ", q8_0 or q4_0" : " or q8_0") +
          " (got " + (t ? std::string(t->name) : "code " + std::to_string(static_cast<uint32_t>(f))) + ")");
    if (c.head_dim % t->block_length)
      bad("head_dim=" + std::to_string(c.head_dim) + " is not a multiple of the " + std::string(t->name) +
          " block length " + std::to_string(t->block_length) + "; use f16 or f32 for this head size");
    return row_bytes(*t, c.head_dim);
  };
  auto& p = *p_;
  p.cfg = c;
  p.k_row = check_format(c.k_format, false);
  p.v_row = check_format(c.v_format, true);
  auto head_bytes = [&](format f, size_t row) {
    const size_t g = kernels::kv_group_tokens;
    const size_t tokens = grouped(f) ? (c.block_tokens + g - 1) / g * g : c.block_tokens;
    if (tokens < c.block_tokens) bad("block_tokens is too large");
    return checked_mul(tokens, row, "block size");
  };
  p.k_head = head_bytes(c.k_format, p.k_row);
  p.v_head = head_bytes(c.v_format, p.v_row);
  p.k_bytes = checked_mul(c.n_kv_heads, p.k_head, "block size");
  p.v_bytes = checked_mul(c.n_kv_heads, p.v_head, "block size");
  p.layer_bytes = p.k_bytes + p.v_bytes;
  p.block = (checked_mul(p.layer_bytes, c.n_layers, "block size") + 63) / 64 * 64;
  checked_mul(p.block, chunk_blocks, "pool chunk");
}

KvCache::~KvCache() = default;
KvCache::KvCache(KvCache&&) noexcept = default;
KvCache& KvCache::operator=(KvCache&&) noexcept = default;

const kv_cache_config& KvCache::config() const { return p_->cfg; }
size_t KvCache::used_blocks() const { return p_->used; }
size_t KvCache::free_blocks() const { return p_->cfg.max_blocks - p_->used; }
size_t KvCache::block_bytes() const { return p_->block; }

seq_id KvCache::create_sequence() {
  auto& p = *p_;
  size_t id = 0;
  while (id < p.seqs.size() && p.seqs[id].live) ++id;
  if (id == p.seqs.size()) {
    if (id > 0xfffffffeu) throw Error(status::out_of_memory, "KvCache::create_sequence: too many sequences");
    p.seqs.emplace_back();
  }
  p.seqs[id].live = true;
  p.seqs[id].blocks.clear();
  p.seqs[id].length.assign(p.cfg.n_layers, 0);
  return static_cast<seq_id>(id);
}

void KvCache::free_sequence(seq_id s) {
  auto& p = *p_;
  auto& seq = p.live_seq(s, "free_sequence");
  for (auto it = seq.blocks.rbegin(); it != seq.blocks.rend(); ++it) p.free_list.push_back(*it);
  p.used -= seq.blocks.size();
  seq = {};
}

size_t KvCache::length(seq_id s, size_t layer) const {
  p_->check_layer(layer, "length");
  return p_->live_seq(s, "length").length[layer];
}

void KvCache::append(seq_id s, size_t layer, const float* k, const float* v, size_t n, size_t k_stride,
                     size_t v_stride) {
  auto& p = *p_;
  const auto& c = p.cfg;
  p.check_layer(layer, "append");
  auto& seq = p.live_seq(s, "append");
  if (n == 0) return;
  if (!k || !v) invalid("KvCache::append: k and v must not be null");
  const size_t row = c.n_kv_heads * c.head_dim;
  if (k_stride == 0) k_stride = row;
  if (v_stride == 0) v_stride = row;
  if (k_stride < row || v_stride < row)
    invalid("KvCache::append: strides must be at least n_kv_heads * head_dim = " + std::to_string(row));
  const size_t end = seq.length[layer] + n;
  if (end < n) invalid("KvCache::append: length overflows");
  const size_t need = (end + c.block_tokens - 1) / c.block_tokens;
  // Everything that can fail is checked before a byte is written.
  const dispatch_table& table = current_table();
  const quant_entry* kq = c.k_format == format::f32 ? nullptr : table.quantize[format_slot(c.k_format)];
  const quant_entry* vq = c.v_format == format::f32 ? nullptr : table.quantize[format_slot(c.v_format)];
  if ((c.k_format != format::f32 && !kq) || (c.v_format != format::f32 && !vq))
    throw Error(status::unsupported, "KvCache::append: no quantizer for the cache formats");
  if (need > seq.blocks.size()) {
    const auto fresh = p.take(need - seq.blocks.size());
    seq.blocks.insert(seq.blocks.end(), fresh.begin(), fresh.end());
  }
  std::vector<unsigned char> k_row(p.k_row), v_row(p.v_row);
  for (size_t i = 0; i < n; ++i) {
    const size_t t = seq.length[layer] + i;
    unsigned char* base = p.block_ptr(seq.blocks[t / c.block_tokens]) + layer * p.layer_bytes;
    const size_t slot = t % c.block_tokens;
    for (size_t h = 0; h < c.n_kv_heads; ++h) {
      const float* ks = k + i * k_stride + h * c.head_dim;
      const float* vs = v + i * v_stride + h * c.head_dim;
      if (kq) kq->fn(ks, k_row.data(), c.head_dim);
      else std::memcpy(k_row.data(), ks, p.k_row);
      if (vq) vq->fn(vs, v_row.data(), c.head_dim);
      else std::memcpy(v_row.data(), vs, p.v_row);
      store_row(c.k_format, kernels::kv_side::key, base + h * p.k_head, slot, p.k_row, c.head_dim, k_row.data());
      store_row(c.v_format, kernels::kv_side::value, base + p.k_bytes + h * p.v_head, slot, p.v_row, c.head_dim,
                v_row.data());
    }
  }
  seq.length[layer] = end;
}

void KvCache::read(seq_id s, size_t layer, size_t begin, size_t end, float* k, float* v) const {
  const auto& p = *p_;
  const auto& c = p.cfg;
  p.check_layer(layer, "read");
  const auto& seq = p.live_seq(s, "read");
  if (begin > end || end > seq.length[layer])
    invalid("KvCache::read: range [" + std::to_string(begin) + ", " + std::to_string(end) + ") is outside the " +
            std::to_string(seq.length[layer]) + " stored tokens");
  if (begin == end) return;
  if (!k || !v) invalid("KvCache::read: k and v must not be null");
  const dispatch_table& table = current_table();
  const dequant_entry* kd = c.k_format == format::f32 ? nullptr : table.dequantize[format_slot(c.k_format)];
  const dequant_entry* vd = c.v_format == format::f32 ? nullptr : table.dequantize[format_slot(c.v_format)];
  if ((c.k_format != format::f32 && !kd) || (c.v_format != format::f32 && !vd))
    throw Error(status::unsupported, "KvCache::read: no dequantizer for the cache formats");
  const size_t row = c.n_kv_heads * c.head_dim;
  std::vector<unsigned char> k_row(p.k_row), v_row(p.v_row);
  for (size_t t = begin; t < end; ++t) {
    const unsigned char* base = p.block_ptr(seq.blocks[t / c.block_tokens]) + layer * p.layer_bytes;
    const size_t slot = t % c.block_tokens;
    for (size_t h = 0; h < c.n_kv_heads; ++h) {
      const unsigned char* ks =
          load_row(c.k_format, kernels::kv_side::key, base + h * p.k_head, slot, p.k_row, c.head_dim, k_row.data());
      const unsigned char* vs = load_row(c.v_format, kernels::kv_side::value, base + p.k_bytes + h * p.v_head, slot,
                                         p.v_row, c.head_dim, v_row.data());
      float* ko = k + (t - begin) * row + h * c.head_dim;
      float* vo = v + (t - begin) * row + h * c.head_dim;
      if (kd) kd->fn(ks, ko, c.head_dim);
      else std::memcpy(ko, ks, c.head_dim * sizeof(float));
      if (vd) vd->fn(vs, vo, c.head_dim);
      else std::memcpy(vo, vs, c.head_dim * sizeof(float));
    }
  }
}

KvCache::layout KvCache::view(seq_id s, size_t layer) const {
  const auto& p = *p_;
  p.check_layer(layer, "view");
  const auto& seq = p.live_seq(s, "view");
  layout l;
  l.blocks.reserve(seq.blocks.size());
  for (uint32_t id : seq.blocks) l.blocks.push_back(p.block_ptr(id));
  l.block_tokens = p.cfg.block_tokens;
  l.k_offset = layer * p.layer_bytes;
  l.v_offset = layer * p.layer_bytes + p.k_bytes;
  l.k_head_bytes = p.k_head;
  l.v_head_bytes = p.v_head;
  l.k_row_bytes = p.k_row;
  l.v_row_bytes = p.v_row;
  return l;
}

}  // namespace lowbit
