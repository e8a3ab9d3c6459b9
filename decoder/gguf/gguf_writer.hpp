// GGUF writer: builds a version 3 file in memory, in ggml's order.
//
// The writer exists for tests, fuzz seeds and tools that emit small models; it
// is not a streaming converter, so it keeps every value and tensor in memory
// and lays the file out only in to_bytes(). The layout is exactly ggml's:
// header, metadata in insertion order, tensor infos, zero padding to the
// alignment, then tensor data where each tensor starts at the running sum of
// the previous sizes rounded up to the alignment (so ggml's strict reader
// accepts what we write). Each value is encoded when it is set, which lets the
// raw setters write any value type a test needs, byte for byte. write() goes
// through a temporary file and a rename, so a path holds either the old file
// or the complete new one, never half of one.
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "gguf/gguf.hpp"

namespace lowbit::gguf {

/// Builds a GGUF v3 file. Setting a key twice, an empty key, or a malformed
/// tensor throws Error(invalid_argument).
class Writer {
 public:
  /// `alignment` must be a non-zero power of two; when it is not GGUF's
  /// default of 32 it is recorded as general.alignment (uint32), the first key.
  explicit Writer(uint64_t alignment = limits::default_alignment);

  uint64_t alignment() const { return alignment_; }

  /// Scalar setters, one per GGUF value type.
  void set_u8(std::string key, uint8_t value);
  void set_i8(std::string key, int8_t value);
  void set_u16(std::string key, uint16_t value);
  void set_i16(std::string key, int16_t value);
  void set_u32(std::string key, uint32_t value);
  void set_i32(std::string key, int32_t value);
  void set_f32(std::string key, float value);
  void set_bool(std::string key, bool value);
  void set_u64(std::string key, uint64_t value);
  void set_i64(std::string key, int64_t value);
  void set_f64(std::string key, double value);
  void set_string(std::string key, std::string_view value);

  /// Array setters for the common element types.
  void set_string_array(std::string key, std::span<const std::string> values);
  void set_string_array(std::string key, std::span<const std::string_view> values);
  void set_i32_array(std::string key, std::span<const int32_t> values);
  void set_f32_array(std::string key, std::span<const float> values);

  /// An array of any fixed-size element type: uint8_t ... int64_t, float,
  /// double or bool, mapped to the matching GGUF element type.
  template <typename T>
  void set_array(std::string key, std::span<const T> values) {
    std::vector<uint8_t> payload;
    payload.reserve(values.size() * sizeof(T));
    for (const T& v : values) append_little_endian(payload, v);
    set_raw_array(std::move(key), element_type_of<T>(), values.size(), payload);
  }

  /// Any non-array value from its encoded bytes: for a fixed-size type,
  /// exactly its little-endian bytes; for a string, the string's bytes (the
  /// length is written for it). A bool must be 0 or 1.
  void set_raw(std::string key, value_type type, std::span<const uint8_t> payload);

  /// An array of `count` elements of `element_type` from the elements' encoded
  /// bytes, back to back (strings as uint64 length + bytes each). Nested
  /// arrays are refused.
  void set_raw_array(std::string key, value_type element_type, uint64_t count, std::span<const uint8_t> payload);

  /// Adds a tensor of ggml type `type` with dimensions `ne` (fastest first,
  /// 1 to 4 of them, none zero, ne[0] a whole number of blocks). `data` must
  /// hold exactly the tensor's byte size; it is copied.
  void add_tensor(std::string name, std::vector<uint64_t> ne, uint32_t type, std::span<const uint8_t> data);

  /// The complete file.
  std::vector<uint8_t> to_bytes() const;

  /// Writes the file to `path` through `path.tmp-XXXXXX` and a rename; throws
  /// Error(io_error) naming the path, leaving no temporary file behind.
  void write(const std::string& path) const;

 private:
  struct entry {
    std::string key;
    std::vector<uint8_t> encoded;  // value type code + value, as in the file
  };
  struct tensor_entry {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    uint64_t offset;
    std::vector<uint8_t> data;
  };

  template <typename T>
  static void append_little_endian(std::vector<uint8_t>& out, T v) {
    if constexpr (std::is_same_v<T, bool>) {
      out.push_back(v ? 1 : 0);
    } else {
      using bits_type = std::conditional_t<
          sizeof(T) == 1, uint8_t,
          std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
      const bits_type bits = std::bit_cast<bits_type>(v);
      for (size_t i = 0; i < sizeof(T); ++i) out.push_back(uint8_t(bits >> (8 * i)));
    }
  }

  template <typename T>
  static constexpr value_type element_type_of() {
    if constexpr (std::is_same_v<T, bool>) return value_type::boolean;
    else if constexpr (std::is_same_v<T, uint8_t>) return value_type::u8;
    else if constexpr (std::is_same_v<T, int8_t>) return value_type::i8;
    else if constexpr (std::is_same_v<T, uint16_t>) return value_type::u16;
    else if constexpr (std::is_same_v<T, int16_t>) return value_type::i16;
    else if constexpr (std::is_same_v<T, uint32_t>) return value_type::u32;
    else if constexpr (std::is_same_v<T, int32_t>) return value_type::i32;
    else if constexpr (std::is_same_v<T, uint64_t>) return value_type::u64;
    else if constexpr (std::is_same_v<T, int64_t>) return value_type::i64;
    else if constexpr (std::is_same_v<T, float>) return value_type::f32;
    else if constexpr (std::is_same_v<T, double>) return value_type::f64;
    else static_assert(sizeof(T) == 0, "set_array: no GGUF element type for this C++ type");
  }

  template <typename T>
  void set_scalar(std::string key, value_type type, T v) {
    std::vector<uint8_t> payload;
    append_little_endian(payload, v);
    set_raw(std::move(key), type, payload);
  }

  void add_entry(std::string key, std::vector<uint8_t> encoded);

  uint64_t alignment_;
  std::vector<entry> entries_;
  std::vector<tensor_entry> tensors_;
  uint64_t data_bytes_ = 0;  // running size of the data section (aligned)
};

}  // namespace lowbit::gguf
