// GGUF reader: validation of the whole header in one forward pass.
//
// parse() walks the file once with a cursor that refuses to step past the end:
// every read asks the cursor for N bytes and the cursor checks N against what
// is left before handing out a pointer, so no later code needs its own bounds
// check. Sizes derived from the file (array byte counts, tensor element and
// byte counts, data offsets) are computed with overflow-checked arithmetic.
// The cursor carries a context string ("metadata key 'x' (entry 3 at byte
// 120)", "tensor 'y'") so that every error says where it happened, and all
// errors funnel through one function that prefixes the file's name.
#include "gguf/gguf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

namespace lowbit::gguf {

namespace {

using namespace limits;
constexpr uint64_t largest_dimension = uint64_t(std::numeric_limits<int64_t>::max());

// The smallest encodings, used to refuse header counts the file cannot hold
// before any memory is reserved for them.
constexpr uint64_t smallest_metadata_entry = 8 + 1 + 4 + 1;   // length, 1-byte key, type, u8
constexpr uint64_t smallest_tensor_info = 8 + 1 + 4 + 4 + 8;  // length, 1-byte name, n_dims=0, type, offset

template <size_t Bytes>
using unsigned_of_size = std::conditional_t<
    Bytes == 1, uint8_t,
    std::conditional_t<Bytes == 2, uint16_t, std::conditional_t<Bytes == 4, uint32_t, uint64_t>>>;

/// Reads a little-endian T from unaligned bytes, on any host byte order.
template <typename T>
T load_little_endian(const uint8_t* bytes) {
  using bits_type = unsigned_of_size<sizeof(T)>;
  bits_type bits = 0;
  for (size_t i = 0; i < sizeof(T); ++i) bits = bits_type(bits | bits_type(bits_type(bytes[i]) << (8 * i)));
  return std::bit_cast<T>(bits);
}

bool valid_value_type(uint32_t code) { return code <= uint32_t(value_type::f64); }

bool is_integer_type(value_type type) {
  return fixed_size(type) != 0 && type != value_type::f32 && type != value_type::f64 && type != value_type::boolean;
}

uint32_t byte_swapped(uint32_t v) {
  return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

/// A key or name made safe to print: printable ASCII kept, other bytes as \xNN,
/// long strings cut short.
std::string quoted(std::string_view text) {
  constexpr size_t longest = 96;
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < longest; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += char(c);
    } else {
      static const char digits[] = "0123456789abcdef";
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  if (text.size() > longest) out += "...";
  out += "'";
  return out;
}

std::string hex32(uint32_t v) {
  static const char digits[] = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) out += digits[(v >> shift) & 15];
  return out;
}

std::string dims_text(const std::array<uint64_t, 4>& ne, uint32_t n_dims) {
  std::string out = "[";
  for (uint32_t d = 0; d < n_dims; ++d) {
    if (d) out += ", ";
    out += std::to_string(ne[d]);
  }
  return out + "]";
}

std::string prefix_for(status code, const std::string& path) {
  switch (code) {
    case status::unsupported: return "unsupported GGUF file '" + path + "': ";
    case status::io_error: return "cannot read GGUF file '" + path + "': ";
    case status::invalid_argument: return "GGUF file '" + path + "': ";
    default: return "bad GGUF file '" + path + "': ";
  }
}

/// A forward-only reader over the file's bytes that never steps past the end.
class cursor {
 public:
  cursor(const uint8_t* base, uint64_t size, const std::string& path) : base_(base), size_(size), path_(path) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return size_ - position_; }
  void set_context(std::string context) { context_ = std::move(context); }

  [[noreturn]] void fail(status code, const std::string& problem) const {
    throw Error(code, prefix_for(code, path_) + context_ + (context_.empty() ? "" : ": ") + problem);
  }

  /// The next `count` bytes; fails naming `what` when fewer are left.
  const uint8_t* take(uint64_t count, const char* what) {
    if (count > remaining()) {
      fail(status::bad_file, std::string(what) + " (" + std::to_string(count) + " bytes at byte " +
                                 std::to_string(position_) + ") runs past the end of the file (size " +
                                 std::to_string(size_) + ")");
    }
    const uint8_t* at = base_ + position_;
    position_ += count;
    return at;
  }

  uint32_t read_u32(const char* what) { return load_little_endian<uint32_t>(take(4, what)); }
  uint64_t read_u64(const char* what) { return load_little_endian<uint64_t>(take(8, what)); }

  /// A GGUF string (uint64 length, bytes) of at most `longest` bytes.
  std::string_view read_string(const char* what, uint64_t longest) {
    const uint64_t length = read_u64(what);
    if (length > longest) {
      fail(status::bad_file, std::string(what) + " is " + std::to_string(length) +
                                 " bytes long, more than the limit of " + std::to_string(longest));
    }
    return {reinterpret_cast<const char*>(take(length, what)), size_t(length)};
  }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t position_ = 0;
  const std::string& path_;
  std::string context_;
};

/// Reads one metadata value of type `code` at the cursor. For an array of
/// strings, the file offset of each element's length goes to `string_offsets`.
value read_value(cursor& in, uint32_t code, std::vector<uint64_t>& string_offsets) {
  if (!valid_value_type(code)) in.fail(status::bad_file, "unknown value type code " + std::to_string(code));
  value v{};
  v.type = value_type(code);
  v.element_type = v.type;
  v.count = 1;
  switch (v.type) {
    case value_type::string: {
      const std::string_view text = in.read_string("string value", max_string_bytes);
      v.data = reinterpret_cast<const uint8_t*>(text.data());
      v.bytes = text.size();
      return v;
    }
    case value_type::array: {
      const uint32_t element_code = in.read_u32("array element type");
      if (!valid_value_type(element_code)) {
        in.fail(status::bad_file, "unknown array element type code " + std::to_string(element_code));
      }
      v.element_type = value_type(element_code);
      if (v.element_type == value_type::array) {
        in.fail(status::unsupported, "nested array (an array of arrays): the GGUF specification allows it, "
                                     "but ggml refuses it and so does lowbit");
      }
      v.count = in.read_u64("array element count");
      if (v.count > max_array_elements) {
        in.fail(status::bad_file, "array of " + std::to_string(v.count) + " elements exceeds the limit of 2^30");
      }
      if (v.element_type != value_type::string) {
        const uint64_t element_bytes = fixed_size(v.element_type);
        v.bytes = v.count * element_bytes;  // at most 2^33: cannot overflow
        v.data = in.take(v.bytes, "array data");
        if (v.element_type == value_type::boolean) {
          for (uint64_t i = 0; i < v.count; ++i) {
            if (v.data[i] > 1) {
              in.fail(status::bad_file, "bool array element " + std::to_string(i) + " holds " +
                                            std::to_string(v.data[i]) + ", expected 0 or 1");
            }
          }
        }
        return v;
      }
      // An array of strings: each element is a length and bytes, at least 8 bytes.
      if (v.count > in.remaining() / 8) {
        in.fail(status::bad_file, "array of " + std::to_string(v.count) + " strings cannot fit in the " +
                                      std::to_string(in.remaining()) + " bytes left in the file");
      }
      const uint64_t start = in.position();
      string_offsets.reserve(size_t(v.count));
      for (uint64_t i = 0; i < v.count; ++i) {
        string_offsets.push_back(in.position());
        if (in.remaining() < 8) {
          in.fail(status::bad_file, "length of string element " + std::to_string(i) + " (at byte " +
                                        std::to_string(in.position()) + ") runs past the end of the file");
        }
        const uint64_t length = in.read_u64("string element length");
        if (length > max_string_bytes) {
          in.fail(status::bad_file, "string element " + std::to_string(i) + " is " + std::to_string(length) +
                                        " bytes long, more than the limit of 2^30");
        }
        if (length > in.remaining()) {
          in.fail(status::bad_file, "string element " + std::to_string(i) + " (" + std::to_string(length) +
                                        " bytes at byte " + std::to_string(in.position()) +
                                        ") runs past the end of the file");
        }
        in.take(length, "string element");
      }
      v.bytes = in.position() - start;
      v.data = in.take(0, "array data") - v.bytes;
      return v;
    }
    default: {
      v.bytes = fixed_size(v.type);
      v.data = in.take(v.bytes, "value");
      if (v.type == value_type::boolean && v.data[0] > 1) {
        in.fail(status::bad_file, "bool value holds " + std::to_string(v.data[0]) + ", expected 0 or 1");
      }
      return v;
    }
  }
}

struct integer {
  bool is_signed;
  int64_t signed_value;
  uint64_t unsigned_value;
};

/// The integer stored at `bytes` if `type` is an integer type.
std::optional<integer> load_integer(value_type type, const uint8_t* bytes) {
  switch (type) {
    case value_type::u8: return integer{false, 0, bytes[0]};
    case value_type::u16: return integer{false, 0, load_little_endian<uint16_t>(bytes)};
    case value_type::u32: return integer{false, 0, load_little_endian<uint32_t>(bytes)};
    case value_type::u64: return integer{false, 0, load_little_endian<uint64_t>(bytes)};
    case value_type::i8: return integer{true, load_little_endian<int8_t>(bytes), 0};
    case value_type::i16: return integer{true, load_little_endian<int16_t>(bytes), 0};
    case value_type::i32: return integer{true, load_little_endian<int32_t>(bytes), 0};
    case value_type::i64: return integer{true, load_little_endian<int64_t>(bytes), 0};
    default: return std::nullopt;
  }
}

std::optional<double> load_float(value_type type, const uint8_t* bytes) {
  if (type == value_type::f32) return double(load_little_endian<float>(bytes));
  if (type == value_type::f64) return load_little_endian<double>(bytes);
  return std::nullopt;
}

std::string describe(const value& v) {
  if (v.type == value_type::array) return "array of " + std::string(type_name(v.element_type));
  return std::string(type_name(v.type));
}

// ggml's tensor types, indexed by code. Removed codes have a null name.
constexpr tensor_type_traits tensor_types[] = {
    {"F32", 1, 4},        // 0
    {"F16", 1, 2},        // 1
    {"Q4_0", 32, 18},     // 2
    {"Q4_1", 32, 20},     // 3
    {nullptr, 0, 0},      // 4  Q4_2, removed
    {nullptr, 0, 0},      // 5  Q4_3, removed
    {"Q5_0", 32, 22},     // 6
    {"Q5_1", 32, 24},     // 7
    {"Q8_0", 32, 34},     // 8
    {"Q8_1", 32, 36},     // 9
    {"Q2_K", 256, 84},    // 10
    {"Q3_K", 256, 110},   // 11
    {"Q4_K", 256, 144},   // 12
    {"Q5_K", 256, 176},   // 13
    {"Q6_K", 256, 210},   // 14
    {"Q8_K", 256, 292},   // 15
    {"IQ2_XXS", 256, 66}, // 16
    {"IQ2_XS", 256, 74},  // 17
    {"IQ3_XXS", 256, 98}, // 18
    {"IQ1_S", 256, 50},   // 19
    {"IQ4_NL", 32, 18},   // 20
    {"IQ3_S", 256, 110},  // 21
    {"IQ2_S", 256, 82},   // 22
    {"IQ4_XS", 256, 136}, // 23
    {"I8", 1, 1},         // 24
    {"I16", 1, 2},        // 25
    {"I32", 1, 4},        // 26
    {"I64", 1, 8},        // 27
    {"F64", 1, 8},        // 28
    {"IQ1_M", 256, 56},   // 29
    {"BF16", 1, 2},       // 30
    {nullptr, 0, 0},      // 31 Q4_0_4_4, removed
    {nullptr, 0, 0},      // 32 Q4_0_4_8, removed
    {nullptr, 0, 0},      // 33 Q4_0_8_8, removed
    {"TQ1_0", 256, 54},   // 34
    {"TQ2_0", 256, 66},   // 35
    {nullptr, 0, 0},      // 36 IQ4_NL_4_4, removed
    {nullptr, 0, 0},      // 37 IQ4_NL_4_8, removed
    {nullptr, 0, 0},      // 38 IQ4_NL_8_8, removed
    {"MXFP4", 32, 17},    // 39
};

}  // namespace

std::string_view type_name(value_type type) {
  switch (type) {
    case value_type::u8: return "uint8";
    case value_type::i8: return "int8";
    case value_type::u16: return "uint16";
    case value_type::i16: return "int16";
    case value_type::u32: return "uint32";
    case value_type::i32: return "int32";
    case value_type::f32: return "float32";
    case value_type::boolean: return "bool";
    case value_type::string: return "string";
    case value_type::array: return "array";
    case value_type::u64: return "uint64";
    case value_type::i64: return "int64";
    case value_type::f64: return "float64";
  }
  return "unknown";
}

uint64_t fixed_size(value_type type) {
  switch (type) {
    case value_type::u8:
    case value_type::i8:
    case value_type::boolean: return 1;
    case value_type::u16:
    case value_type::i16: return 2;
    case value_type::u32:
    case value_type::i32:
    case value_type::f32: return 4;
    case value_type::u64:
    case value_type::i64:
    case value_type::f64: return 8;
    case value_type::string:
    case value_type::array: return 0;
  }
  return 0;
}

const tensor_type_traits* tensor_type(uint32_t code) {
  if (code >= std::size(tensor_types) || tensor_types[code].name == nullptr) return nullptr;
  return &tensor_types[code];
}

const char* removed_tensor_type_name(uint32_t code) {
  switch (code) {
    case 4: return "Q4_2";
    case 5: return "Q4_3";
    case 31: return "Q4_0_4_4";
    case 32: return "Q4_0_4_8";
    case 33: return "Q4_0_8_8";
    case 36: return "IQ4_NL_4_4";
    case 37: return "IQ4_NL_4_8";
    case 38: return "IQ4_NL_8_8";
    default: return nullptr;
  }
}

uint64_t tensor_info::elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
uint64_t tensor_info::rows() const { return ne[1] * ne[2] * ne[3]; }
uint64_t tensor_info::row_bytes() const {
  const tensor_type_traits* traits = tensor_type(type);
  return traits ? ne[0] / traits->block_size * traits->type_size : 0;
}

// ---- construction --------------------------------------------------------------

File File::open(const std::string& path) {
  const int descriptor = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) {
    const int error = errno;
    throw Error(status::io_error, "cannot open GGUF file '" + path + "': " + std::strerror(error));
  }
  struct stat info {};
  if (::fstat(descriptor, &info) != 0) {
    const int error = errno;
    ::close(descriptor);
    throw Error(status::io_error, "cannot stat GGUF file '" + path + "': " + std::strerror(error));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(descriptor);
    throw Error(status::io_error, "cannot open GGUF file '" + path + "': " +
                                      (S_ISDIR(info.st_mode) ? "it is a directory" : "it is not a regular file"));
  }
  File file;
  file.path_ = path;
  file.size_ = uint64_t(info.st_size);
  if (file.size_ > 0) {
    void* mapping = ::mmap(nullptr, size_t(file.size_), PROT_READ, MAP_PRIVATE, descriptor, 0);
    const int error = errno;
    ::close(descriptor);
    if (mapping == MAP_FAILED) {
      throw Error(status::io_error, "cannot map GGUF file '" + path + "': " + std::strerror(error));
    }
    file.mapping_ = mapping;
    file.mapping_size_ = file.size_;
    file.base_ = static_cast<const uint8_t*>(mapping);
  } else {
    ::close(descriptor);
  }
  file.parse();
  return file;
}

File File::from_bytes(std::vector<uint8_t> bytes, std::string name) {
  File file;
  file.path_ = std::move(name);
  file.owned_ = std::move(bytes);
  file.base_ = file.owned_.data();
  file.size_ = file.owned_.size();
  file.parse();
  return file;
}

File::File(File&& other) noexcept { swap(other); }

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    release();
    File empty;
    swap(empty);
    swap(other);
  }
  return *this;
}

File::~File() { release(); }

void File::release() noexcept {
  if (mapping_) ::munmap(mapping_, size_t(mapping_size_));
  mapping_ = nullptr;
  mapping_size_ = 0;
}

void File::swap(File& other) noexcept {
  using std::swap;
  swap(path_, other.path_);
  swap(mapping_, other.mapping_);
  swap(mapping_size_, other.mapping_size_);
  swap(owned_, other.owned_);  // swaps buffers: views into them stay valid
  swap(base_, other.base_);
  swap(size_, other.size_);
  swap(version_, other.version_);
  swap(alignment_, other.alignment_);
  swap(data_offset_, other.data_offset_);
  swap(keys_, other.keys_);
  swap(values_, other.values_);
  swap(key_index_, other.key_index_);
  swap(string_offsets_, other.string_offsets_);
  swap(tensors_, other.tensors_);
  swap(tensor_index_, other.tensor_index_);
}

void File::parse() {
  cursor in(base_, size_, path_);

  // ---- header ----
  in.set_context("header");
  if (size_ < 4) {
    in.fail(status::bad_file, "not a GGUF file: it is " + std::to_string(size_) +
                                  " bytes long, too short to hold the 4-byte magic 'GGUF'");
  }
  const uint8_t* magic = in.take(4, "magic");
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    in.fail(status::bad_file, "not a GGUF file: the magic is " +
                                  quoted(std::string_view(reinterpret_cast<const char*>(magic), 4)) +
                                  ", expected 'GGUF'");
  }
  const uint32_t version = in.read_u32("version");
  if (version != 0 && (version & 0xffffu) == 0) {
    in.fail(status::unsupported, "the file is big-endian (the version field reads " + hex32(version) +
                                     ", version " + std::to_string(byte_swapped(version)) +
                                     " byte-swapped); only little-endian GGUF files are supported");
  }
  if (version == 1) {
    in.fail(status::unsupported, "GGUF version 1 is not supported (only versions 2 and 3); "
                                 "convert the model again with a current llama.cpp");
  }
  if (version == 0) in.fail(status::bad_file, "GGUF version 0 does not exist");
  if (version > 3) {
    in.fail(status::unsupported, "GGUF version " + std::to_string(version) +
                                     " is newer than this reader supports (versions 2 and 3)");
  }
  version_ = version;
  const uint64_t tensor_count = in.read_u64("tensor count");
  const uint64_t metadata_count = in.read_u64("metadata count");
  if (metadata_count > in.remaining() / smallest_metadata_entry) {
    in.fail(status::bad_file, "the header claims " + std::to_string(metadata_count) +
                                  " metadata entries, more than the file (size " + std::to_string(size_) +
                                  ") can hold");
  }
  if (tensor_count > in.remaining() / smallest_tensor_info ||
      metadata_count * smallest_metadata_entry + tensor_count * smallest_tensor_info > in.remaining()) {
    in.fail(status::bad_file, "the header claims " + std::to_string(tensor_count) + " tensors and " +
                                  std::to_string(metadata_count) + " metadata entries, more than the file (size " +
                                  std::to_string(size_) + ") can hold");
  }

  // ---- metadata ----
  keys_.reserve(size_t(metadata_count));
  values_.reserve(size_t(metadata_count));
  string_offsets_.resize(size_t(metadata_count));
  alignment_ = default_alignment;
  for (uint64_t i = 0; i < metadata_count; ++i) {
    const uint64_t entry_start = in.position();
    const std::string where = "entry " + std::to_string(i) + " at byte " + std::to_string(entry_start);
    in.set_context("metadata " + where);
    const std::string_view key = in.read_string("key", max_key_bytes);
    if (key.empty()) in.fail(status::bad_file, "empty key");
    in.set_context("metadata key " + quoted(key) + " (" + where + ")");
    const auto [existing, inserted] = key_index_.emplace(key, size_t(i));
    if (!inserted) {
      in.fail(status::bad_file, "duplicate key (first defined as entry " + std::to_string(existing->second) + ")");
    }
    const uint32_t code = in.read_u32("value type");
    const value v = read_value(in, code, string_offsets_[size_t(i)]);
    if (key == "general.alignment") {
      if (v.type != value_type::u32) {
        in.fail(status::bad_file, "general.alignment has type " + describe(v) + ", it must be uint32");
      }
      const uint32_t alignment = load_little_endian<uint32_t>(v.data);
      if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        in.fail(status::bad_file, "general.alignment is " + std::to_string(alignment) +
                                      ", it must be a non-zero power of two");
      }
      alignment_ = alignment;
    }
    keys_.push_back(key);
    values_.push_back(v);
  }

  // ---- tensor infos ----
  tensors_.reserve(size_t(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    const std::string where = "info " + std::to_string(i) + " at byte " + std::to_string(in.position());
    in.set_context("tensor " + where);
    const uint64_t name_length = in.read_u64("tensor name length");
    if (name_length > max_tensor_name_bytes) {
      in.fail(status::bad_file, "tensor name is " + std::to_string(name_length) +
                                    " bytes long; ggml allows at most 63 (GGML_MAX_NAME 64 with the terminator)");
    }
    const std::string_view name(reinterpret_cast<const char*>(in.take(name_length, "tensor name")),
                                size_t(name_length));
    if (name.empty()) in.fail(status::bad_file, "empty tensor name");
    in.set_context("tensor " + quoted(name) + " (" + where + ")");
    const auto [existing, inserted] = tensor_index_.emplace(name, size_t(i));
    if (!inserted) {
      in.fail(status::bad_file, "duplicate tensor name (first defined as tensor " +
                                    std::to_string(existing->second) + ")");
    }

    tensor_info t{};
    t.name = std::string(name);
    t.n_dims = in.read_u32("n_dims");
    if (t.n_dims > max_dims) {
      in.fail(status::bad_file, "n_dims is " + std::to_string(t.n_dims) + ", at most 4 are allowed");
    }
    t.ne = {1, 1, 1, 1};
    for (uint32_t d = 0; d < t.n_dims; ++d) t.ne[d] = in.read_u64("dimension");
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      if (t.ne[d] == 0) {
        in.fail(status::bad_file, "dimension " + std::to_string(d) + " is zero (ne = " + dims_text(t.ne, t.n_dims) +
                                      "); empty tensors are refused");
      }
      if (t.ne[d] > largest_dimension) {
        in.fail(status::bad_file, "dimension " + std::to_string(d) + " is " + std::to_string(t.ne[d]) +
                                      ", more than ggml's int64 limit");
      }
    }
    t.type = in.read_u32("tensor type");
    const tensor_type_traits* traits = tensor_type(t.type);
    if (traits == nullptr) {
      if (const char* removed = removed_tensor_type_name(t.type)) {
        in.fail(status::unsupported,
                "type " + std::to_string(t.type) + " (" + removed + ", removed) is no longer a ggml type: "
                "convert the model to a current type (for a repacked layout, store the plain type and "
                "repack at load instead)");
      }
      in.fail(status::unsupported, "unknown tensor type code " + std::to_string(t.type));
    }
    if (t.ne[0] % traits->block_size != 0) {
      in.fail(status::bad_file, "row length ne0 = " + std::to_string(t.ne[0]) + " is not a whole number of " +
                                    traits->name + " blocks (" + std::to_string(traits->block_size) +
                                    " elements each)");
    }
    uint64_t elements = t.ne[0];
    uint64_t bytes = t.ne[0] / traits->block_size;
    bool overflow = __builtin_mul_overflow(bytes, uint64_t(traits->type_size), &bytes);
    for (int d = 1; d < 4; ++d) {
      overflow = __builtin_mul_overflow(elements, t.ne[d], &elements) || overflow;
      overflow = __builtin_mul_overflow(bytes, t.ne[d], &bytes) || overflow;
    }
    if (overflow || elements > largest_dimension) {
      in.fail(status::bad_file, "shape " + dims_text(t.ne, t.n_dims) + " overflows the element or byte count");
    }
    t.bytes = bytes;
    t.offset = in.read_u64("tensor data offset");
    tensors_.push_back(std::move(t));
  }

  // ---- data section ----
  in.set_context("data section");
  uint64_t padded = 0;
  if (__builtin_add_overflow(in.position(), alignment_ - 1, &padded)) {
    in.fail(status::bad_file, "the aligned start of the data section overflows");
  }
  data_offset_ = padded / alignment_ * alignment_;
  for (tensor_info& t : tensors_) {
    in.set_context("tensor " + quoted(t.name));
    if (t.offset % alignment_ != 0) {
      in.fail(status::bad_file, "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                                    std::to_string(alignment_));
    }
    uint64_t start = 0;
    uint64_t end = 0;
    if (__builtin_add_overflow(data_offset_, t.offset, &start) || __builtin_add_overflow(start, t.bytes, &end)) {
      in.fail(status::bad_file, "data offset " + std::to_string(t.offset) + " plus " + std::to_string(t.bytes) +
                                    " bytes overflows");
    }
    if (end > size_) {
      in.fail(status::bad_file, "data [" + std::to_string(start) + ", " + std::to_string(end) +
                                    ") lies past the end of the file (size " + std::to_string(size_) + ")");
    }
    t.data = base_ + start;
  }
}

// ---- metadata access -------------------------------------------------------------

std::string_view File::key(size_t index) const {
  if (index >= keys_.size()) {
    throw Error(status::invalid_argument, prefix_for(status::invalid_argument, path_) + "metadata index " +
                                              std::to_string(index) + " is out of range (" +
                                              std::to_string(keys_.size()) + " entries)");
  }
  return keys_[index];
}

const value& File::metadata(size_t index) const {
  key(index);  // range check
  return values_[index];
}

const value* File::find(std::string_view key) const {
  const auto found = key_index_.find(key);
  return found == key_index_.end() ? nullptr : &values_[found->second];
}

const value& File::require(std::string_view key) const {
  const value* v = find(key);
  if (v == nullptr) {
    throw Error(status::bad_file, prefix_for(status::bad_file, path_) + "metadata key " +
                                      quoted(key) + " is missing");
  }
  return *v;
}

void File::wrong_type(std::string_view key, const value& found, const char* expected) const {
  throw Error(status::bad_file, prefix_for(status::bad_file, path_) + "metadata key " + quoted(key) +
                                    " has type " + describe(found) + ", expected " + expected);
}

std::string_view File::get_string(std::string_view key) const {
  const value& v = require(key);
  if (v.type != value_type::string) wrong_type(key, v, "string");
  return {reinterpret_cast<const char*>(v.data), size_t(v.bytes)};
}

uint64_t File::get_uint(std::string_view key) const {
  const value& v = require(key);
  const std::optional<integer> n = load_integer(v.type, v.data);
  if (!n) wrong_type(key, v, "an integer");
  if (!n->is_signed) return n->unsigned_value;
  if (n->signed_value < 0) {
    throw Error(status::bad_file, prefix_for(status::bad_file, path_) + "metadata key " + quoted(key) +
                                      " holds " + std::to_string(n->signed_value) +
                                      ", expected a non-negative integer");
  }
  return uint64_t(n->signed_value);
}

int64_t File::get_int(std::string_view key) const {
  const value& v = require(key);
  const std::optional<integer> n = load_integer(v.type, v.data);
  if (!n) wrong_type(key, v, "an integer");
  if (n->is_signed) return n->signed_value;
  if (n->unsigned_value > largest_dimension) {
    throw Error(status::bad_file, prefix_for(status::bad_file, path_) + "metadata key " + quoted(key) +
                                      " holds " + std::to_string(n->unsigned_value) +
                                      ", too large for a signed 64-bit integer");
  }
  return int64_t(n->unsigned_value);
}

double File::get_float(std::string_view key) const {
  const value& v = require(key);
  const std::optional<double> x = load_float(v.type, v.data);
  if (!x) wrong_type(key, v, "float32 or float64");
  return *x;
}

bool File::get_bool(std::string_view key) const {
  const value& v = require(key);
  if (v.type != value_type::boolean) wrong_type(key, v, "bool");
  return v.data[0] != 0;
}

uint64_t File::get_uint_or(std::string_view key, uint64_t fallback) const {
  return find(key) ? get_uint(key) : fallback;
}

double File::get_float_or(std::string_view key, double fallback) const {
  return find(key) ? get_float(key) : fallback;
}

bool File::get_bool_or(std::string_view key, bool fallback) const {
  return find(key) ? get_bool(key) : fallback;
}

std::string_view File::get_string_or(std::string_view key, std::string_view fallback) const {
  return find(key) ? get_string(key) : fallback;
}

std::vector<std::string_view> File::get_string_array(std::string_view key) const {
  const value& v = require(key);
  if (v.type != value_type::array || v.element_type != value_type::string) wrong_type(key, v, "array of string");
  const std::vector<uint64_t>& offsets = string_offsets_[size_t(&v - values_.data())];
  std::vector<std::string_view> out;
  out.reserve(offsets.size());
  for (const uint64_t offset : offsets) {
    const uint64_t length = load_little_endian<uint64_t>(base_ + offset);
    out.emplace_back(reinterpret_cast<const char*>(base_ + offset + 8), size_t(length));
  }
  return out;
}

std::vector<int64_t> File::get_int_array(std::string_view key) const {
  const value& v = require(key);
  if (v.type != value_type::array || !is_integer_type(v.element_type)) wrong_type(key, v, "array of integers");
  const uint64_t element_bytes = fixed_size(v.element_type);
  std::vector<int64_t> out;
  out.reserve(size_t(v.count));
  for (uint64_t i = 0; i < v.count; ++i) {
    const integer n = *load_integer(v.element_type, v.data + i * element_bytes);
    if (n.is_signed) {
      out.push_back(n.signed_value);
    } else if (n.unsigned_value <= largest_dimension) {
      out.push_back(int64_t(n.unsigned_value));
    } else {
      throw Error(status::bad_file, prefix_for(status::bad_file, path_) + "metadata key " + quoted(key) +
                                        " element " + std::to_string(i) + " holds " +
                                        std::to_string(n.unsigned_value) + ", too large for a signed 64-bit integer");
    }
  }
  return out;
}

std::vector<float> File::get_float_array(std::string_view key) const {
  const value& v = require(key);
  if (v.type != value_type::array || (v.element_type != value_type::f32 && v.element_type != value_type::f64)) {
    wrong_type(key, v, "array of float32 or float64");
  }
  const uint64_t element_bytes = fixed_size(v.element_type);
  std::vector<float> out;
  out.reserve(size_t(v.count));
  for (uint64_t i = 0; i < v.count; ++i) out.push_back(float(*load_float(v.element_type, v.data + i * element_bytes)));
  return out;
}

std::string_view File::array_string(const value& array, uint64_t index) const {
  const std::string invalid = prefix_for(status::invalid_argument, path_);
  if (array.type != value_type::array || array.element_type != value_type::string) {
    throw Error(status::invalid_argument, invalid + "array_string needs an array of string, got " + describe(array));
  }
  if (index >= array.count) {
    throw Error(status::invalid_argument, invalid + "string index " + std::to_string(index) +
                                              " is out of range (array of " + std::to_string(array.count) + ")");
  }
  // A value held by this file: use the offsets recorded while parsing.
  if (!values_.empty() && &array >= values_.data() && &array < values_.data() + values_.size()) {
    const uint64_t offset = string_offsets_[size_t(&array - values_.data())][size_t(index)];
    const uint64_t length = load_little_endian<uint64_t>(base_ + offset);
    return {reinterpret_cast<const char*>(base_ + offset + 8), size_t(length)};
  }
  // A copy: walk from the first element, staying inside the value's bytes,
  // which must lie inside this file.
  const uint8_t* begin = array.data;
  const uintptr_t first = reinterpret_cast<uintptr_t>(begin);
  const uintptr_t file_start = reinterpret_cast<uintptr_t>(base_);
  if (size_ == 0 || first < file_start || array.bytes > size_ || first - file_start > size_ - array.bytes) {
    throw Error(status::invalid_argument, invalid + "array_string was given a value from another file");
  }
  uint64_t at = 0;
  for (uint64_t i = 0;; ++i) {
    if (array.bytes - at < 8) break;
    const uint64_t length = load_little_endian<uint64_t>(begin + at);
    if (length > array.bytes - at - 8) break;
    if (i == index) return {reinterpret_cast<const char*>(begin + at + 8), size_t(length)};
    at += 8 + length;
  }
  throw Error(status::invalid_argument, invalid + "array_string was given a value whose bytes are not an array of strings");
}

// ---- tensors ----------------------------------------------------------------------

const tensor_info* File::find_tensor(std::string_view name) const {
  const auto found = tensor_index_.find(name);
  return found == tensor_index_.end() ? nullptr : &tensors_[found->second];
}

const tensor_info& File::tensor(std::string_view name) const {
  const tensor_info* t = find_tensor(name);
  if (t == nullptr) {
    throw Error(status::bad_file, "tensor " + quoted(name) + " not found in " + path_);
  }
  return *t;
}

}  // namespace lowbit::gguf
