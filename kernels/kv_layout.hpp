// The KV cache's grouped layout for q8_0 rows.
//
// f32, f16 and q4_0 rows sit one token after another. q8_0 rows (K and V)
// sit in groups of kv_group_tokens tokens, laid out for the integer kernels:
// vpdpbusd multiplies four bytes by four bytes and adds them to one 32-bit
// lane, so a group keeps together, in 64 bytes, the four bytes each of its
// sixteen tokens contribute to one such step. A group of one KV head's
// tokens, head_dim = 32 * nb, takes exactly the bytes of its sixteen rows
// (16 * nb * 34):
//
//   scales  f16 [nb][16]          block b's scale of lane (token) i at (b * 16 + i) * 2
//   keys    u8 [nb][8][16][4]     value e of block b, lane i at b * 512 + (e / 4) * 64 + i * 4 + e % 4
//   values  int8 [nb][4][32][4]   value e of block b, lane i at b * 512 + (i / 4) * 128 + e * 4 + i % 4
//
// (quants after the nb * 32 bytes of scales). So for keys, one vector holds
// four consecutive values of every lane (the score of sixteen keys is eight
// vpdpbusd per block, no shuffle), each stored plus 128 (q ^ 0x80: the
// unsigned operand vpdpbusd takes; the query's sum times 128 comes off
// again); for values, one holds four keys' bytes of consecutive columns
// (P . V adds four keys at a time into the columns, in order). A block of
// the cache pads each head's tokens to whole groups; lanes no token was
// written to hold zeros (scale 0), which every kernel reads as a finite
// value it then masks.
//
// Lane i of a group stands where a plain row would (group base + i * row
// bytes), so a pointer computed as if rows were plain, and prefetching by
// rows, stay right; kv_group_of turns such a pointer into its group and lane.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lowbit/formats.hpp"

namespace lowbit::kernels {

/// Tokens per group of the grouped q8_0 layout.
inline constexpr size_t kv_group_tokens = 16;

/// Which of the two grouped layouts (they differ in the quants' order).
enum class kv_side { key, value };

/// Bytes of one q8_0 row of head_dim d (and a group's, per token).
inline constexpr size_t q8_row_bytes(size_t d) { return d / qk8_0 * sizeof(block_q8_0); }

/// Bytes of one group of head_dim d (16 q8_0 rows).
inline constexpr size_t kv_group_bytes(size_t d) { return kv_group_tokens * q8_row_bytes(d); }

/// Byte offset, in a group of `blocks` blocks, of block b's quants (after
/// every block's scales; kv_group_tokens * 32 bytes a block).
inline constexpr size_t kv_group_block(size_t blocks, size_t b) {
  return blocks * kv_group_tokens * sizeof(f16_bits) + b * kv_group_tokens * qk8_0;
}

/// Bytes from one vector of a block's keys to the next (four values of each
/// lane), and from one key quad's values to the next (32 columns of four keys).
inline constexpr size_t kv_key_vector_bytes = kv_group_tokens * 4, kv_value_quad_bytes = 4 * qk8_0;

/// Byte offset, in a group, of value e (0..31) of block b for lane i.
inline size_t kv_group_quant(kv_side side, size_t blocks, size_t b, size_t lane, size_t e) {
  const size_t base = kv_group_block(blocks, b);
  return side == kv_side::key ? base + e / 4 * kv_key_vector_bytes + lane * 4 + e % 4
                              : base + lane / 4 * kv_value_quad_bytes + e * 4 + lane % 4;
}

/// Byte offset, in a group, of block b's scale for lane i.
inline size_t kv_group_scale(size_t b, size_t lane) { return (b * kv_group_tokens + lane) * sizeof(f16_bits); }

/// What a quant is stored as (keys: plus 128, as an unsigned byte), and back.
inline unsigned char kv_group_byte(kv_side side, int8_t q) {
  return static_cast<unsigned char>(static_cast<unsigned char>(q) ^ (side == kv_side::key ? 0x80 : 0));
}
inline int8_t kv_group_quant_of(kv_side side, unsigned char x) {
  return static_cast<int8_t>(x ^ (side == kv_side::key ? 0x80 : 0));
}

/// Writes a plain q8_0 block as block b of lane `lane` of `group` (of `blocks` blocks).
inline void kv_group_put_block(kv_side side, unsigned char* group, size_t lane, size_t blocks, size_t b,
                               const block_q8_0& in) {
  std::memcpy(group + kv_group_scale(b, lane), &in.d, sizeof(f16_bits));
  for (size_t e = 0; e < qk8_0; ++e) group[kv_group_quant(side, blocks, b, lane, e)] = kv_group_byte(side, in.qs[e]);
}

/// Writes the q8_0 row `row` (d / 32 blocks) as lane `lane` of `group`.
inline void kv_group_put(kv_side side, unsigned char* group, size_t lane, size_t d, const void* row) {
  const auto* in = static_cast<const block_q8_0*>(row);
  for (size_t b = 0; b < d / qk8_0; ++b) kv_group_put_block(side, group, lane, d / qk8_0, b, in[b]);
}

/// Block b of lane `lane` of `group` (of `blocks` blocks) as a plain q8_0 block.
inline void kv_group_get_block(kv_side side, const unsigned char* group, size_t lane, size_t blocks, size_t b,
                               block_q8_0& out) {
  std::memcpy(&out.d, group + kv_group_scale(b, lane), sizeof(f16_bits));
  for (size_t e = 0; e < qk8_0; ++e)
    out.qs[e] = kv_group_quant_of(side, group[kv_group_quant(side, blocks, b, lane, e)]);
}

/// Reads lane `lane` of `group` back as a plain q8_0 row.
inline void kv_group_get(kv_side side, const unsigned char* group, size_t lane, size_t d, void* row) {
  auto* out = static_cast<block_q8_0*>(row);
  for (size_t b = 0; b < d / qk8_0; ++b) kv_group_get_block(side, group, lane, d / qk8_0, b, out[b]);
}

/// The group and lane of the token whose plain-row pointer is `row` and
/// whose slot in its cache block is `slot` (groups start at slot 0).
struct kv_group_at {
  const unsigned char* group;
  size_t lane;
};
inline kv_group_at kv_group_of(const unsigned char* row, size_t slot, size_t row_bytes) {
  const size_t lane = slot % kv_group_tokens;
  return {row - lane * row_bytes, lane};
}

/// Token i of a run that starts at lane `lane` of `group` (the groups after
/// it follow in memory within a cache block): its group and lane.
inline kv_group_at kv_group_step(const unsigned char* group, size_t lane, size_t i, size_t row_bytes) {
  const size_t at = lane + i;
  return {group + at / kv_group_tokens * kv_group_tokens * row_bytes, at % kv_group_tokens};
}

/// Copies n (<= 16) tokens of a run from lane `lane` of `group` on into
/// lanes 0..n-1 of the group `out`, its other lanes zero: for a kernel that
/// reads whole groups and meets a run that does not start at a group's (or
/// its vectors') first lane.
inline void kv_group_regroup(kv_side side, const unsigned char* group, size_t lane, size_t n, size_t d,
                             unsigned char* out) {
  const size_t row_bytes = q8_row_bytes(d), blocks = d / qk8_0;
  std::memset(out, 0, kv_group_bytes(d));
  for (size_t i = 0; i < n; ++i) {
    const kv_group_at from = kv_group_step(group, lane, i, row_bytes);
    for (size_t b = 0; b < blocks; ++b) {
      block_q8_0 block;
      kv_group_get_block(side, from.group, from.lane, blocks, b, block);
      kv_group_put_block(side, out, i, blocks, b, block);
    }
  }
}

}  // namespace lowbit::kernels
