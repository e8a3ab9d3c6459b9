// GGUF writer: validation at the setters, layout in to_bytes(), atomic write().
//
// Arguments are checked when they are given (a duplicate key, a tensor whose
// data does not match its shape), so a mistake is reported at the call that
// made it rather than as a file the reader later refuses. to_bytes() is then a
// plain concatenation. write() never leaves a partial file at `path`: the bytes
// go to a fresh temporary file beside it, which is flushed and renamed over the
// target only once complete, and removed on any failure.
#include "gguf/gguf_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace lowbit::gguf {

namespace {

using namespace limits;

[[noreturn]] void invalid(const std::string& problem) {
  throw Error(status::invalid_argument, "gguf::Writer: " + problem);
}

void append_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

void append_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

void append_string(std::vector<uint8_t>& out, std::string_view text) {
  append_u64(out, text.size());
  out.insert(out.end(), text.begin(), text.end());
}

uint64_t load_u64(const uint8_t* bytes) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(bytes[i]) << (8 * i);
  return v;
}

uint64_t align_up(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

}  // namespace

Writer::Writer(uint64_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > std::numeric_limits<uint32_t>::max()) {
    invalid("alignment " + std::to_string(alignment) + " is not a non-zero power of two that fits in uint32");
  }
  if (alignment != default_alignment) {
    std::vector<uint8_t> encoded;
    append_u32(encoded, uint32_t(value_type::u32));
    append_u32(encoded, uint32_t(alignment));
    entries_.push_back({"general.alignment", std::move(encoded)});
  }
}

void Writer::add_entry(std::string key, std::vector<uint8_t> encoded) {
  if (key.empty()) invalid("empty metadata key");
  if (key.size() > max_key_bytes) invalid("metadata key of " + std::to_string(key.size()) + " bytes is longer than 65535");
  if (key == "general.alignment") invalid("general.alignment is set through the Writer constructor");
  for (const entry& e : entries_) {
    if (e.key == key) invalid("metadata key '" + key + "' is set twice");
  }
  entries_.push_back({std::move(key), std::move(encoded)});
}

void Writer::set_u8(std::string key, uint8_t value) { set_scalar(std::move(key), value_type::u8, value); }
void Writer::set_i8(std::string key, int8_t value) { set_scalar(std::move(key), value_type::i8, value); }
void Writer::set_u16(std::string key, uint16_t value) { set_scalar(std::move(key), value_type::u16, value); }
void Writer::set_i16(std::string key, int16_t value) { set_scalar(std::move(key), value_type::i16, value); }
void Writer::set_u32(std::string key, uint32_t value) { set_scalar(std::move(key), value_type::u32, value); }
void Writer::set_i32(std::string key, int32_t value) { set_scalar(std::move(key), value_type::i32, value); }
void Writer::set_f32(std::string key, float value) { set_scalar(std::move(key), value_type::f32, value); }
void Writer::set_bool(std::string key, bool value) { set_scalar(std::move(key), value_type::boolean, value); }
void Writer::set_u64(std::string key, uint64_t value) { set_scalar(std::move(key), value_type::u64, value); }
void Writer::set_i64(std::string key, int64_t value) { set_scalar(std::move(key), value_type::i64, value); }
void Writer::set_f64(std::string key, double value) { set_scalar(std::move(key), value_type::f64, value); }

void Writer::set_string(std::string key, std::string_view value) {
  set_raw(std::move(key), value_type::string,
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(value.data()), value.size()));
}

void Writer::set_string_array(std::string key, std::span<const std::string> values) {
  std::vector<uint8_t> payload;
  for (const std::string& v : values) append_string(payload, v);
  set_raw_array(std::move(key), value_type::string, values.size(), payload);
}

void Writer::set_string_array(std::string key, std::span<const std::string_view> values) {
  std::vector<uint8_t> payload;
  for (const std::string_view v : values) append_string(payload, v);
  set_raw_array(std::move(key), value_type::string, values.size(), payload);
}

void Writer::set_i32_array(std::string key, std::span<const int32_t> values) { set_array(std::move(key), values); }
void Writer::set_f32_array(std::string key, std::span<const float> values) { set_array(std::move(key), values); }

void Writer::set_raw(std::string key, value_type type, std::span<const uint8_t> payload) {
  std::vector<uint8_t> encoded;
  append_u32(encoded, uint32_t(type));
  if (type == value_type::string) {
    if (payload.size() > max_string_bytes) invalid("string of more than 2^30 bytes (key '" + key + "')");
    append_u64(encoded, payload.size());
  } else if (type == value_type::array) {
    invalid("set_raw cannot write an array; use set_raw_array (key '" + key + "')");
  } else if (fixed_size(type) == 0) {
    invalid("unknown value type code " + std::to_string(uint32_t(type)) + " (key '" + key + "')");
  } else if (payload.size() != fixed_size(type)) {
    invalid("a " + std::string(type_name(type)) + " value is " + std::to_string(fixed_size(type)) +
            " bytes, got " + std::to_string(payload.size()) + " (key '" + key + "')");
  } else if (type == value_type::boolean && payload[0] > 1) {
    invalid("a bool value must be 0 or 1 (key '" + key + "')");
  }
  encoded.insert(encoded.end(), payload.begin(), payload.end());
  add_entry(std::move(key), std::move(encoded));
}

void Writer::set_raw_array(std::string key, value_type element_type, uint64_t count,
                           std::span<const uint8_t> payload) {
  if (element_type == value_type::array) invalid("nested arrays are not supported (key '" + key + "')");
  if (element_type != value_type::string && fixed_size(element_type) == 0) {
    invalid("unknown array element type code " + std::to_string(uint32_t(element_type)) + " (key '" + key + "')");
  }
  if (count > max_array_elements) invalid("array of more than 2^30 elements (key '" + key + "')");
  if (element_type == value_type::string) {
    uint64_t at = 0;
    for (uint64_t i = 0; i < count; ++i) {
      if (payload.size() - at < 8 || load_u64(payload.data() + at) > payload.size() - at - 8) {
        invalid("string array payload ends inside element " + std::to_string(i) + " (key '" + key + "')");
      }
      at += 8 + load_u64(payload.data() + at);
    }
    if (at != payload.size()) invalid("string array payload is longer than its elements (key '" + key + "')");
  } else {
    if (payload.size() != count * fixed_size(element_type)) {
      invalid("array of " + std::to_string(count) + " " + std::string(type_name(element_type)) + " needs " +
              std::to_string(count * fixed_size(element_type)) + " bytes, got " + std::to_string(payload.size()) +
              " (key '" + key + "')");
    }
    if (element_type == value_type::boolean) {
      for (const uint8_t b : payload) {
        if (b > 1) invalid("bool array elements must be 0 or 1 (key '" + key + "')");
      }
    }
  }
  std::vector<uint8_t> encoded;
  append_u32(encoded, uint32_t(value_type::array));
  append_u32(encoded, uint32_t(element_type));
  append_u64(encoded, count);
  encoded.insert(encoded.end(), payload.begin(), payload.end());
  add_entry(std::move(key), std::move(encoded));
}

void Writer::add_tensor(std::string name, std::vector<uint64_t> ne, uint32_t type, std::span<const uint8_t> data) {
  if (name.empty()) invalid("empty tensor name");
  if (name.size() > max_tensor_name_bytes) {
    invalid("tensor name '" + name + "' is longer than ggml's 63 bytes");
  }
  for (const tensor_entry& t : tensors_) {
    if (t.name == name) invalid("tensor '" + name + "' is added twice");
  }
  if (ne.empty() || ne.size() > 4) invalid("tensor '" + name + "' needs 1 to 4 dimensions, got " + std::to_string(ne.size()));
  const tensor_type_traits* traits = tensor_type(type);
  if (traits == nullptr) invalid("tensor '" + name + "': unknown or removed tensor type " + std::to_string(type));
  uint64_t bytes = 0;
  bool overflow = false;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] == 0 || ne[d] > uint64_t(std::numeric_limits<int64_t>::max())) {
      invalid("tensor '" + name + "': dimension " + std::to_string(d) + " is " + std::to_string(ne[d]));
    }
    if (d == 0) {
      if (ne[0] % traits->block_size != 0) {
        invalid("tensor '" + name + "': ne0 = " + std::to_string(ne[0]) + " is not a whole number of " +
                traits->name + " blocks");
      }
      overflow = __builtin_mul_overflow(ne[0] / traits->block_size, uint64_t(traits->type_size), &bytes);
    } else {
      overflow = __builtin_mul_overflow(bytes, ne[d], &bytes) || overflow;
    }
  }
  if (overflow) invalid("tensor '" + name + "': byte size overflows");
  if (data.size() != bytes) {
    invalid("tensor '" + name + "' of type " + traits->name + " needs " + std::to_string(bytes) + " bytes, got " +
            std::to_string(data.size()));
  }
  const uint64_t offset = data_bytes_;
  data_bytes_ = align_up(offset + bytes, alignment_);
  tensors_.push_back({std::move(name), std::move(ne), type, offset, std::vector<uint8_t>(data.begin(), data.end())});
}

std::vector<uint8_t> Writer::to_bytes() const {
  std::vector<uint8_t> out;
  for (const char c : {'G', 'G', 'U', 'F'}) out.push_back(uint8_t(c));
  append_u32(out, 3);
  append_u64(out, tensors_.size());
  append_u64(out, entries_.size());
  for (const entry& e : entries_) {
    append_string(out, e.key);
    out.insert(out.end(), e.encoded.begin(), e.encoded.end());
  }
  for (const tensor_entry& t : tensors_) {
    append_string(out, t.name);
    append_u32(out, uint32_t(t.ne.size()));
    for (const uint64_t n : t.ne) append_u64(out, n);
    append_u32(out, t.type);
    append_u64(out, t.offset);
  }
  const uint64_t data_start = align_up(out.size(), alignment_);
  out.resize(data_start + data_bytes_, 0);
  for (const tensor_entry& t : tensors_) {
    std::memcpy(out.data() + data_start + t.offset, t.data.data(), t.data.size());
  }
  return out;
}

void Writer::write(const std::string& path) const {
  const std::vector<uint8_t> bytes = to_bytes();
  std::string temporary = path + ".tmp-XXXXXX";
  const int descriptor = ::mkstemp(temporary.data());
  if (descriptor < 0) {
    const int error = errno;
    throw Error(status::io_error, "cannot write GGUF file '" + path + "': cannot create '" + temporary +
                                      "': " + std::strerror(error));
  }
  auto fail = [&](const char* step, int error) {
    ::close(descriptor);
    ::unlink(temporary.c_str());
    throw Error(status::io_error, "cannot write GGUF file '" + path + "': " + step + " '" + temporary +
                                      "' failed: " + std::strerror(error));
  };
  if (::fchmod(descriptor, 0644) != 0) fail("fchmod", errno);
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(descriptor, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write to", errno);
    }
    written += size_t(n);
  }
  if (::fsync(descriptor) != 0) fail("fsync of", errno);
  if (::close(descriptor) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw Error(status::io_error, "cannot write GGUF file '" + path + "': closing '" + temporary +
                                      "' failed: " + std::strerror(error));
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw Error(status::io_error, "cannot write GGUF file '" + path + "': rename from '" + temporary +
                                      "' failed: " + std::strerror(error));
  }
}

}  // namespace lowbit::gguf
