// GGUF-compatible block formats.
//
// The structs below are GGUF's quantization blocks, byte for byte, so a runtime
// can hand lowbit the tensors it already has (mmap'd GGUF data included). The
// `format` enum uses GGUF's ggml type codes as its values. A constexpr traits
// table gives each format's block length, byte size, name and the activation
// format its dot product pairs with. Half and bfloat16 conversions are exact
// round-to-nearest-even and portable (no F16C needed), so baseline code can use
// them anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "lowbit/detail/codegen.hpp"

namespace lowbit {

/// Storage formats, valued as GGUF's ggml type codes.
enum class format : uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q8_0 = 8,
  q8_1 = 9,
  q4_k = 12,
  q6_k = 14,
  q8_k = 15,
  bf16 = 30,
};

inline constexpr size_t qk4_0 = 32;
inline constexpr size_t qk4_1 = 32;
inline constexpr size_t qk8_0 = 32;
inline constexpr size_t qk8_1 = 32;
inline constexpr size_t qk_k = 256;       ///< super-block length of the K-quants
inline constexpr size_t k_scale_size = 12;

/// IEEE binary16 stored as raw bits.
using f16_bits = uint16_t;
/// bfloat16 stored as raw bits.
using bf16_bits = uint16_t;

/// Q4_0: value = (nibble - 8) * d. Byte j holds element j (low) and j+16 (high).
struct block_q4_0 {
  f16_bits d;
  uint8_t qs[qk4_0 / 2];
};
/// Q4_1: value = nibble * d + m. Same nibble placement as Q4_0.
struct block_q4_1 {
  f16_bits d;
  f16_bits m;
  uint8_t qs[qk4_1 / 2];
};
/// Q8_0: value = q * d.
struct block_q8_0 {
  f16_bits d;
  int8_t qs[qk8_0];
};
/// Q8_1: Q8_0 plus s = d * sum(q), the activation partner of Q4_1.
struct block_q8_1 {
  f16_bits d;
  f16_bits s;
  int8_t qs[qk8_1];
};
/// Q4_K: 8 sub-blocks of 32; value = d*sc[s]*nibble - dmin*mn[s].
struct block_q4_k {
  f16_bits d;
  f16_bits dmin;
  uint8_t scales[k_scale_size];
  uint8_t qs[qk_k / 2];
};
/// Q6_K: 16 sub-blocks of 16; value = d*scales[s]*(code - 32). Note d is last.
struct block_q6_k {
  uint8_t ql[qk_k / 2];
  uint8_t qh[qk_k / 4];
  int8_t scales[qk_k / 16];
  f16_bits d;
};
/// Q8_K: activation partner of the K-quants; f32 scale and 16-element sums.
struct block_q8_k {
  float d;
  int8_t qs[qk_k];
  int16_t bsums[qk_k / 16];
};

static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must be 18 bytes");
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 must be 20 bytes");
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must be 34 bytes");
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 must be 36 bytes");
static_assert(sizeof(block_q4_k) == 144, "block_q4_k must be 144 bytes");
static_assert(sizeof(block_q6_k) == 210, "block_q6_k must be 210 bytes");
static_assert(sizeof(block_q8_k) == 292, "block_q8_k must be 292 bytes");
static_assert(alignof(block_q4_0) == 2 && alignof(block_q8_k) == 4);

/// What the traits table knows about one format.
struct format_traits {
  format id;
  std::string_view name;     ///< GGUF's lower-case name: "q4_0", "f16", ...
  uint32_t block_length;     ///< elements per block (1 for plain types)
  uint32_t block_bytes;      ///< bytes per block
  format activation;         ///< the format activations are quantized to for a dot with this one
  bool is_weight;            ///< usable as the weight operand of linear()
  bool is_quantized;
};

inline constexpr format_traits format_table[] = {
    {format::f32, "f32", 1, 4, format::f32, false, false},
    {format::f16, "f16", 1, 2, format::f16, false, false},
    {format::bf16, "bf16", 1, 2, format::bf16, false, false},
    {format::q4_0, "q4_0", qk4_0, sizeof(block_q4_0), format::q8_0, true, true},
    {format::q4_1, "q4_1", qk4_1, sizeof(block_q4_1), format::q8_1, true, true},
    {format::q8_0, "q8_0", qk8_0, sizeof(block_q8_0), format::q8_0, true, true},
    {format::q8_1, "q8_1", qk8_1, sizeof(block_q8_1), format::q8_1, false, true},
    {format::q4_k, "q4_k", qk_k, sizeof(block_q4_k), format::q8_k, true, true},
    {format::q6_k, "q6_k", qk_k, sizeof(block_q6_k), format::q8_k, true, true},
    {format::q8_k, "q8_k", qk_k, sizeof(block_q8_k), format::q8_k, false, true},
};

/// Traits of `f`, or nullptr when `f` is not a format lowbit knows.
constexpr const format_traits* find_format(format f) noexcept {
  for (const auto& t : format_table)
    if (t.id == f) return &t;
  return nullptr;
}

/// Traits of a format given by name ("q4_0", "Q4_K", ...), or nullptr.
constexpr const format_traits* find_format(std::string_view name) noexcept {
  for (const auto& t : format_table) {
    if (t.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size(); ++i) {
      char c = name[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != t.name[i]) same = false;
    }
    if (same) return &t;
  }
  return nullptr;
}

/// Traits of a known format. Throws lowbit::Error for an unknown value.
const format_traits& traits(format f);

/// Bytes of one row of `k` elements; `k` must be a multiple of the block length.
inline size_t row_bytes(const format_traits& t, size_t k) noexcept {
  return k / t.block_length * t.block_bytes;
}

LOWBIT_CODEGEN_BEGIN

/// binary16 -> binary32, exact for every input including subnormals, Inf, NaN.
inline float fp16_to_fp32(f16_bits h) noexcept {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // Subnormal: shift the mantissa up until its leading 1 reaches bit 10.
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// binary32 -> binary16 with round-to-nearest-even (as F16C's vcvtps2ph with
/// imm 0 and as GGUF writers do). Overflow gives Inf; NaN stays NaN.
inline f16_bits fp32_to_fp16(float f) noexcept {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<f16_bits>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  if (abs >= 0x477ff000u) return static_cast<f16_bits>(sign | 0x7c00u);  // rounds past 65504
  if (abs < 0x38800000u) {
    // Result is subnormal or zero: value = abs * 2^24 rounded to an integer.
    if (abs < 0x33000000u) return sign;  // below half the smallest subnormal
    const uint32_t exponent = abs >> 23;
    const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // 14..24
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t midpoint = 1u << (shift - 1);
    if (rest > midpoint || (rest == midpoint && (half & 1u))) ++half;
    return static_cast<f16_bits>(sign | half);
  }
  uint32_t half = ((abs >> 13) - (112u << 10));
  const uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
  return static_cast<f16_bits>(sign | half);
}

/// bfloat16 -> binary32 (exact).
inline float bf16_to_fp32(bf16_bits h) noexcept {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// binary32 -> bfloat16 with round-to-nearest-even; NaN stays a quiet NaN.
inline bf16_bits fp32_to_bf16(float f) noexcept {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_bits>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<bf16_bits>(bits >> 16);
}

LOWBIT_CODEGEN_END

}  // namespace lowbit
