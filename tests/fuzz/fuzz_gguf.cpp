// libFuzzer target for the GGUF reader.
//
// The reader's promise is that any byte string gives either a valid File or a
// lowbit::Error, so the target parses the input and, when that succeeds, reads
// every metadata value through every getter that applies and the first and
// last byte of every tensor: anything the reader accepted must be safe to use.
// Only lowbit::Error is caught; any other exception, crash or sanitizer report
// is a finding. The input is copied into a vector of exactly its size, so
// AddressSanitizer sees any read past its end. Build: tests/gguf.cmake
// (target lowbit-gguf-fuzz, Clang only); run: ci/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gguf/gguf.hpp"

namespace {

using lowbit::Error;
using lowbit::gguf::File;
using lowbit::gguf::tensor_info;
using lowbit::gguf::value;
using lowbit::gguf::value_type;

/// Calls `read` and swallows the Error a getter may rightly throw (a negative
/// integer read as unsigned, a wrong type).
template <typename Read>
uint64_t attempt(Read&& read) {
  try {
    return read();
  } catch (const Error&) {
    return 1;
  }
}

uint64_t touch_value(const File& file, std::string_view key, const value& v) {
  uint64_t sum = v.count + v.bytes + (v.bytes ? v.data[0] + v.data[v.bytes - 1] : 0);
  sum += attempt([&] { return file.get_uint(key); });
  sum += attempt([&] { return uint64_t(file.get_int(key)); });
  sum += attempt([&] { return uint64_t(file.get_float(key) != 0.0); });
  sum += attempt([&] { return uint64_t(file.get_bool(key)); });
  sum += attempt([&] { return uint64_t(file.get_string(key).size()); });
  sum += attempt([&] { return uint64_t(file.get_string_array(key).size()); });
  sum += attempt([&] {
    uint64_t total = 0;
    for (const int64_t n : file.get_int_array(key)) total += uint64_t(n);
    return total;
  });
  sum += attempt([&] { return uint64_t(file.get_float_array(key).size()); });
  if (v.type == value_type::array && v.element_type == value_type::string && v.count > 0) {
    sum += file.array_string(v, 0).size() + file.array_string(v, v.count - 1).size();
    const value copy = v;  // the walking path
    sum += file.array_string(copy, v.count - 1).size();
  }
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  try {
    const File file = File::from_bytes(std::move(bytes), "fuzz.gguf");
    volatile uint64_t sink = file.version() + file.alignment() + file.data_offset();
    for (size_t i = 0; i < file.metadata_count(); ++i) {
      const std::string_view key = file.key(i);
      if (file.find(key) != &file.metadata(i)) __builtin_trap();  // keys are unique
      sink = sink + touch_value(file, key, file.metadata(i));
    }
    for (const tensor_info& t : file.tensors()) {
      if (file.find_tensor(t.name) != &t) __builtin_trap();
      sink = sink + t.elements() + t.rows() + t.row_bytes() + t.data[0] + t.data[t.bytes - 1];
    }
  } catch (const Error&) {
    // A refused file: the expected outcome for most inputs.
  }
  return 0;
}
