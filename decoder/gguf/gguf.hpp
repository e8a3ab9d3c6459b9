// GGUF reader: the model file format of ggml and llama.cpp, versions 2 and 3.
//
// A model file is mapped read-only and never copied: metadata values and tensor
// data are views into the mapping, so opening a multi-gigabyte model costs one
// pass over its header and nothing else. Because the file is untrusted input,
// the whole header is validated once, up front, in File's constructor: every
// count, length and offset is checked against the file size with
// overflow-checked arithmetic before anything is dereferenced. After that every
// accessor can trust the views it hands out, and a malformed file can only ever
// produce a lowbit::Error naming the file, the place and the problem — never a
// crash. The rules are ggml's where ggml is stricter than the specification
// (no nested arrays, alignment a power of two, tensor names under 64 bytes),
// and lenient where ggml is needlessly strict (tensor data need only be aligned
// and inside the file, not packed in tensor-info order).
//
// Byte order: GGUF is little-endian; big-endian files are detected and refused.
// Every multi-byte read goes through load_little_endian, so the reader itself
// also works on a big-endian host.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/error.hpp"

namespace lowbit::gguf {

/// Limits the reader enforces and the writer respects. Keys: the
/// specification's 65535 bytes. Tensor names: ggml's GGML_MAX_NAME of 64 bytes
/// including the terminator. Strings and arrays: ggml's 2^30 cap (every count
/// is also bounded by the file size). Alignment when general.alignment is absent.
namespace limits {
inline constexpr uint64_t max_key_bytes = 65535;
inline constexpr uint64_t max_tensor_name_bytes = 63;
inline constexpr uint64_t max_string_bytes = uint64_t{1} << 30;
inline constexpr uint64_t max_array_elements = uint64_t{1} << 30;
inline constexpr uint32_t max_dims = 4;
inline constexpr uint64_t default_alignment = 32;
}  // namespace limits

/// The metadata value type codes of GGUF (the numbering is the file format's).
enum class value_type : uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

/// The name of a value type as GGUF's documentation spells it ("uint32",
/// "string", ...); "unknown" for a code outside the table.
std::string_view type_name(value_type type);

/// Bytes one value of a fixed-size type occupies in the file; 0 for string and
/// array (variable size) and for unknown codes.
uint64_t fixed_size(value_type type);

/// Block size and bytes per block of one ggml tensor type.
struct tensor_type_traits {
  const char* name;      ///< ggml's name: "F32", "Q4_0", "Q6_K", "IQ4_XS", ...
  uint32_t block_size;   ///< elements per block (1 for plain types)
  uint32_t type_size;    ///< bytes per block
};

/// The traits of ggml tensor type `code` (FACTS.md table); nullptr for codes
/// that are unknown or were removed from ggml (4, 5, 31-33, 36-38).
const tensor_type_traits* tensor_type(uint32_t code);

/// ggml's old name of a removed tensor type code ("Q4_2", "Q4_0_4_4", ...);
/// nullptr when `code` is not one of the removed codes.
const char* removed_tensor_type_name(uint32_t code);

/// One metadata value: a view into the file, valid while its File lives.
struct value {
  value_type type;          ///< the value's type
  value_type element_type;  ///< for arrays, the element type; otherwise equal to type
  uint64_t count;           ///< array element count (1 for scalars and strings)
  const uint8_t* data;      ///< scalars: the value bytes (little-endian); strings: the
                            ///< bytes after the length; arrays: the first element
  uint64_t bytes;           ///< bytes at data: the value size, the string length, or
                            ///< the whole encoded array (strings with their lengths)
};

/// One tensor's description and data, as found in the file.
struct tensor_info {
  std::string name;
  uint32_t n_dims;              ///< dimensions stored in the file (0 to 4)
  std::array<uint64_t, 4> ne;   ///< ne[0] fastest (K for a linear weight); unused dims are 1
  uint32_t type;                ///< ggml tensor type code; always one tensor_type() knows
  uint64_t offset;              ///< offset from the start of the data section
  uint64_t bytes;               ///< exact byte size
  const uint8_t* data;          ///< into the file's mapping

  /// ne0 * ne1 * ne2 * ne3 (checked against overflow when the file was read).
  uint64_t elements() const;
  /// ne1 * ne2 * ne3: the number of rows of length ne0.
  uint64_t rows() const;
  /// Bytes of one row: ne0 / block_size * type_size.
  uint64_t row_bytes() const;
};

/// An open GGUF file: validated header, metadata and tensor table, with the
/// tensor data left in the read-only mapping.
class File {
 public:
  /// Maps `path` read-only and validates it. Throws Error(io_error) when the
  /// file cannot be opened or mapped, Error(bad_file) when it is malformed and
  /// Error(unsupported) for a valid file this reader does not handle (GGUF v1,
  /// newer versions, big-endian files, removed tensor types); every message
  /// names the path and what was wrong where.
  static File open(const std::string& path);

  /// The same checks over bytes in memory (tests, the fuzzer). `name` stands in
  /// for the path in error messages.
  static File from_bytes(std::vector<uint8_t> bytes, std::string name = "<memory>");

  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  /// The GGUF version: 2 or 3.
  uint32_t version() const { return version_; }
  /// general.alignment, or 32 when absent.
  uint64_t alignment() const { return alignment_; }
  /// File offset of the data section (the aligned end of the tensor infos).
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }
  /// The path given to open(), or the name given to from_bytes().
  const std::string& path() const { return path_; }

  /// Number of metadata entries.
  size_t metadata_count() const { return values_.size(); }
  /// Key of metadata entry `index` (file order); throws Error(invalid_argument) when out of range.
  std::string_view key(size_t index) const;
  /// Value of metadata entry `index` (file order); throws Error(invalid_argument) when out of range.
  const value& metadata(size_t index) const;
  /// The value stored under `key`, or nullptr if absent.
  const value* find(std::string_view key) const;

  /// The string under `key`; throws Error(bad_file) naming the key when it is
  /// absent or not a string. The other typed getters behave the same way.
  std::string_view get_string(std::string_view key) const;
  /// An integer of any width or signedness, as long as it is not negative.
  uint64_t get_uint(std::string_view key) const;
  /// An integer of any width or signedness that fits in int64.
  int64_t get_int(std::string_view key) const;
  /// A float32 or float64.
  double get_float(std::string_view key) const;
  /// A bool.
  bool get_bool(std::string_view key) const;

  /// Like get_uint, but returns `fallback` when the key is absent (a present
  /// value of the wrong type still throws). Likewise the other *_or getters.
  uint64_t get_uint_or(std::string_view key, uint64_t fallback) const;
  double get_float_or(std::string_view key, double fallback) const;
  bool get_bool_or(std::string_view key, bool fallback) const;
  std::string_view get_string_or(std::string_view key, std::string_view fallback) const;

  /// An array of strings, as views into the file.
  std::vector<std::string_view> get_string_array(std::string_view key) const;
  /// An array of any integer element type (each element must fit in int64).
  std::vector<int64_t> get_int_array(std::string_view key) const;
  /// An array of float32 or float64 elements (float64 is narrowed).
  std::vector<float> get_float_array(std::string_view key) const;
  /// Element `index` of an array of strings. O(1) for a value obtained from
  /// metadata() or find(); a copied value is walked from its start (O(index)).
  /// Throws Error(invalid_argument) when `array` is not an array of strings or
  /// `index` is out of range.
  std::string_view array_string(const value& array, uint64_t index) const;

  /// The tensors, in file order.
  const std::vector<tensor_info>& tensors() const { return tensors_; }
  /// The tensor named `name`, or nullptr.
  const tensor_info* find_tensor(std::string_view name) const;
  /// The tensor named `name`; throws Error(bad_file) "tensor 'x' not found in <path>".
  const tensor_info& tensor(std::string_view name) const;

 private:
  File() = default;
  void parse();
  void release() noexcept;
  void swap(File& other) noexcept;
  const value& require(std::string_view key) const;
  [[noreturn]] void wrong_type(std::string_view key, const value& found, const char* expected) const;

  std::string path_;
  void* mapping_ = nullptr;         // munmap'd in release(); null for from_bytes
  uint64_t mapping_size_ = 0;
  std::vector<uint8_t> owned_;      // the bytes of a from_bytes file
  const uint8_t* base_ = nullptr;   // start of the file's bytes (mapping or owned_)
  uint64_t size_ = 0;

  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;

  std::vector<std::string_view> keys_;   // views into the file
  std::vector<value> values_;
  std::unordered_map<std::string_view, size_t> key_index_;
  // For each metadata entry holding an array of strings: the file offset of
  // every element's length field (empty for all other entries).
  std::vector<std::vector<uint64_t>> string_offsets_;

  std::vector<tensor_info> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;  // names viewed in the file
};

}  // namespace lowbit::gguf
