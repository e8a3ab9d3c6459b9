// GGUF reader and writer.
//
// Valid files come from the Writer, so every value type and tensor layout is
// checked as a round trip. Malformed files are built byte by byte with a small
// builder, one per hardening rule, and each test asserts that the error names
// the file and the problem (a substring of the message) and carries the right
// status. Truncation at every byte and a few thousand seeded random byte flips
// check the promise that matters most for untrusted input: an Error or a valid
// parse, never a crash (run these under the ASan/UBSan build). The fuzz seed
// corpus is generated here too (LOWBIT_GGUF_WRITE_SEEDS=1 rewrites it), and a
// test keeps the committed seeds parseable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gguf/gguf.hpp"
#include "gguf/gguf_writer.hpp"
#include "lowbit/formats.hpp"
#include "tester/default_model.hpp"

namespace lowbit::gguf {
namespace {

// ---- helpers -----------------------------------------------------------------------

/// Builds a file byte by byte, little-endian.
class builder {
 public:
  builder& u8(uint8_t v) {
    bytes.push_back(v);
    return *this;
  }
  builder& u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(uint8_t(v >> (8 * i)));
    return *this;
  }
  builder& u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.push_back(uint8_t(v >> (8 * i)));
    return *this;
  }
  builder& text(std::string_view s) {
    for (const char c : s) bytes.push_back(uint8_t(c));
    return *this;
  }
  builder& str(std::string_view s) { return u64(s.size()).text(s); }
  builder& pad_to(uint64_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
    return *this;
  }
  builder& zeros(uint64_t count) {
    bytes.insert(bytes.end(), size_t(count), 0);
    return *this;
  }

  std::vector<uint8_t> bytes;
};

builder header(uint64_t tensors, uint64_t entries, uint32_t version = 3) {
  builder b;
  b.text("GGUF").u32(version).u64(tensors).u64(entries);
  return b;
}

/// One metadata entry holding a uint32, the smallest valid filler.
builder& add_u32_entry(builder& b, std::string_view key, uint32_t v) {
  return b.str(key).u32(uint32_t(value_type::u32)).u32(v);
}

struct raw_tensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type;
  uint64_t offset;
};

/// A file with the given tensor infos, no metadata, padding to 32 and
/// `data_bytes` of zero data.
std::vector<uint8_t> file_with_tensors(const std::vector<raw_tensor>& tensors, uint64_t data_bytes) {
  builder b = header(tensors.size(), 0);
  for (const raw_tensor& t : tensors) {
    b.str(t.name).u32(uint32_t(t.ne.size()));
    for (const uint64_t n : t.ne) b.u64(n);
    b.u32(t.type).u64(t.offset);
  }
  b.pad_to(32).zeros(data_bytes);
  return b.bytes;
}

/// Asserts that parsing `file` throws Error with `code` and a message naming
/// the file and containing every fragment.
::testing::AssertionResult refused(const std::vector<uint8_t>& file, status code,
                                   std::initializer_list<std::string_view> fragments) {
  try {
    File::from_bytes(file, "corrupt.gguf");
  } catch (const Error& e) {
    const std::string message = e.what();
    if (e.code() != code) {
      return ::testing::AssertionFailure() << "status " << int(e.code()) << ", expected " << int(code)
                                           << "; message: " << message;
    }
    if (message.find("'corrupt.gguf'") == std::string::npos) {
      return ::testing::AssertionFailure() << "message does not name the file: " << message;
    }
    for (const std::string_view fragment : fragments) {
      if (message.find(fragment) == std::string::npos) {
        return ::testing::AssertionFailure() << "message lacks \"" << fragment << "\": " << message;
      }
    }
    return ::testing::AssertionSuccess() << message;
  }
  return ::testing::AssertionFailure() << "the file was accepted";
}

/// Calls `action` and checks it throws Error with `code` and `fragment`.
template <typename Action>
::testing::AssertionResult throws(Action&& action, status code, std::string_view fragment) {
  try {
    action();
  } catch (const Error& e) {
    const std::string message = e.what();
    if (e.code() != code) {
      return ::testing::AssertionFailure() << "status " << int(e.code()) << ", expected " << int(code)
                                           << "; message: " << message;
    }
    if (message.find(fragment) == std::string::npos) {
      return ::testing::AssertionFailure() << "message lacks \"" << fragment << "\": " << message;
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "nothing was thrown";
}

std::vector<uint8_t> sequence(size_t count, uint8_t start = 0) {
  std::vector<uint8_t> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = uint8_t(start + i * 7);
  return out;
}

/// Reads every metadata value through the getters and every tensor's first and
/// last byte; a parse that succeeded must make all of this safe.
uint64_t touch_everything(const File& file) {
  uint64_t checksum = file.version() + file.alignment() + file.data_offset();
  for (size_t i = 0; i < file.metadata_count(); ++i) {
    const std::string_view key = file.key(i);
    const value& v = file.metadata(i);
    checksum += key.size() + v.count;
    try {
      switch (v.type) {
        case value_type::string: checksum += file.get_string(key).size(); break;
        case value_type::boolean: checksum += file.get_bool(key); break;
        case value_type::f32:
        case value_type::f64: checksum += std::isnan(file.get_float(key)) ? 1 : 0; break;
        case value_type::array:
          if (v.element_type == value_type::string) {
            for (const std::string_view s : file.get_string_array(key)) checksum += s.size();
            if (v.count > 0) checksum += file.array_string(v, v.count - 1).size();
          } else if (v.element_type == value_type::f32 || v.element_type == value_type::f64) {
            checksum += file.get_float_array(key).size();
          } else if (v.element_type != value_type::boolean) {
            for (const int64_t n : file.get_int_array(key)) checksum += uint64_t(n);
          }
          break;
        default: checksum += file.get_uint(key); break;
      }
    } catch (const Error&) {
      checksum += 1;  // e.g. a negative integer read as unsigned
    }
  }
  for (const tensor_info& t : file.tensors()) {
    checksum += t.elements() + t.rows() + t.row_bytes();
    checksum += t.data[0] + t.data[t.bytes - 1];
  }
  return checksum;
}

std::filesystem::path fresh_directory(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("lowbit-gguf-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// ---- seed files: the fuzz corpus and the sample for truncation and flips ------------

const bool some_bools[] = {true, false, true};

/// Every value type as a scalar and as an array element type.
std::vector<uint8_t> all_types_file() {
  Writer w;
  w.set_u8("t.u8", 200);
  w.set_i8("t.i8", -100);
  w.set_u16("t.u16", 60000);
  w.set_i16("t.i16", -30000);
  w.set_u32("t.u32", 4000000000u);
  w.set_i32("t.i32", -2000000000);
  w.set_f32("t.f32", 1.5f);
  w.set_bool("t.bool", true);
  w.set_string("t.string", "h\xc3\xa9llo");
  w.set_u64("t.u64", (uint64_t{1} << 63) + 5);
  w.set_i64("t.i64", -(int64_t{1} << 62));
  w.set_f64("t.f64", 3.25);
  w.set_array<uint8_t>("a.u8", std::vector<uint8_t>{0, 1, 255});
  w.set_array<int8_t>("a.i8", std::vector<int8_t>{-128, 0, 127});
  w.set_array<uint16_t>("a.u16", std::vector<uint16_t>{0, 65535});
  w.set_array<int16_t>("a.i16", std::vector<int16_t>{-32768, 32767});
  w.set_array<uint32_t>("a.u32", std::vector<uint32_t>{7, 4294967295u});
  w.set_i32_array("a.i32", std::vector<int32_t>{-1, 2, -3});
  w.set_f32_array("a.f32", std::vector<float>{0.5f, -2.0f});
  w.set_array<bool>("a.bool", std::span<const bool>(some_bools));
  w.set_string_array("a.string", std::vector<std::string>{"alpha", "", "g\xc3\xa4mma"});
  w.set_array<uint64_t>("a.u64", std::vector<uint64_t>{0, ~uint64_t{0}});
  w.set_array<int64_t>("a.i64", std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 42});
  w.set_array<double>("a.f64", std::vector<double>{-0.25, 1e300});
  w.set_i32_array("a.empty", std::vector<int32_t>{});
  return w.to_bytes();
}

/// A small model-like file: architecture keys, a tokenizer and five tensors.
std::vector<uint8_t> tensors_file(uint64_t alignment = 32) {
  Writer w(alignment);
  w.set_string("general.architecture", "llama");
  w.set_u32("general.quantization_version", 2);
  w.set_u32("llama.block_count", 1);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_string_array("tokenizer.ggml.tokens", std::vector<std::string>{"<s>", "a", "b", "ab"});
  w.set_string_array("tokenizer.ggml.merges", std::vector<std::string>{"a b"});
  w.set_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>{3, 1, 1, 1});
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  w.add_tensor("token_embd.weight", {4, 2}, 0, sequence(4 * 2 * 4, 1));
  w.add_tensor("blk.0.attn_q.weight", {32, 2}, 8, sequence(2 * 34, 2));
  w.add_tensor("blk.0.ffn_up.weight", {32, 1, 2}, 3, sequence(2 * 20, 3));
  w.add_tensor("blk.0.ffn_down.weight", {256}, 12, sequence(144, 4));
  w.add_tensor("output_norm.weight", {5}, 24, sequence(5, 5));
  return w.to_bytes();
}

std::vector<std::pair<std::string, std::vector<uint8_t>>> seed_files() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> seeds;
  Writer minimal;
  minimal.set_string("general.architecture", "llama");
  seeds.emplace_back("minimal.gguf", minimal.to_bytes());
  seeds.emplace_back("all_types.gguf", all_types_file());
  seeds.emplace_back("tensors.gguf", tensors_file());
  std::vector<uint8_t> version2 = tensors_file(64);
  version2[4] = 2;
  seeds.emplace_back("aligned64_v2.gguf", version2);
  return seeds;
}

// ---- the type tables -----------------------------------------------------------------

TEST(GgufTypes, ValueTypeNamesAndSizes) {
  EXPECT_EQ(type_name(value_type::u8), "uint8");
  EXPECT_EQ(type_name(value_type::boolean), "bool");
  EXPECT_EQ(type_name(value_type::f64), "float64");
  EXPECT_EQ(type_name(value_type(13)), "unknown");
  EXPECT_EQ(fixed_size(value_type::i16), 2u);
  EXPECT_EQ(fixed_size(value_type::f32), 4u);
  EXPECT_EQ(fixed_size(value_type::i64), 8u);
  EXPECT_EQ(fixed_size(value_type::string), 0u);
  EXPECT_EQ(fixed_size(value_type::array), 0u);
}

TEST(GgufTypes, TensorTypeTableMatchesGgmlBlockLayouts) {
  // Sizes derived from ggml's block structs, field by field (QK_K = 256), so a
  // typo in the table's literal numbers shows up here.
  constexpr uint32_t k = 256;
  struct expected {
    uint32_t code;
    const char* name;
    uint32_t block_size;
    uint32_t type_size;
  };
  const expected table[] = {
      {0, "F32", 1, 4},
      {1, "F16", 1, 2},
      {2, "Q4_0", 32, 2 + 16},
      {3, "Q4_1", 32, 2 + 2 + 16},
      {6, "Q5_0", 32, 2 + 4 + 16},
      {7, "Q5_1", 32, 2 + 2 + 4 + 16},
      {8, "Q8_0", 32, 2 + 32},
      {9, "Q8_1", 32, 2 + 2 + 32},
      {10, "Q2_K", k, k / 16 + k / 4 + 2 + 2},
      {11, "Q3_K", k, k / 8 + k / 4 + 12 + 2},
      {12, "Q4_K", k, 2 + 2 + 12 + k / 2},
      {13, "Q5_K", k, 2 + 2 + 12 + k / 8 + k / 2},
      {14, "Q6_K", k, k / 2 + k / 4 + k / 16 + 2},
      {15, "Q8_K", k, 4 + k + (k / 16) * 2},
      {16, "IQ2_XXS", k, 2 + (k / 8) * 2},
      {17, "IQ2_XS", k, 2 + (k / 8) * 2 + k / 32},
      {18, "IQ3_XXS", k, 2 + 3 * (k / 8)},
      {19, "IQ1_S", k, 2 + k / 8 + (k / 32) * 2},
      {20, "IQ4_NL", 32, 2 + 16},
      {21, "IQ3_S", k, 2 + k / 4 + k / 32 + k / 8 + k / 64},
      {22, "IQ2_S", k, 2 + k / 4 + k / 32 + k / 32},
      {23, "IQ4_XS", k, 2 + 2 + k / 64 + k / 2},
      {24, "I8", 1, 1},
      {25, "I16", 1, 2},
      {26, "I32", 1, 4},
      {27, "I64", 1, 8},
      {28, "F64", 1, 8},
      {29, "IQ1_M", k, k / 8 + k / 16 + k / 32},
      {30, "BF16", 1, 2},
      {34, "TQ1_0", k, (k - 4 * k / 64) / 5 + k / 64 + 2},
      {35, "TQ2_0", k, k / 4 + 2},
      {39, "MXFP4", 32, 1 + 16},
  };
  uint32_t known = 0;
  for (uint32_t code = 0; code < 64; ++code) known += tensor_type(code) != nullptr;
  EXPECT_EQ(known, std::size(table));
  for (const expected& e : table) {
    SCOPED_TRACE(e.name);
    const tensor_type_traits* t = tensor_type(e.code);
    ASSERT_NE(t, nullptr);
    EXPECT_STREQ(t->name, e.name);
    EXPECT_EQ(t->block_size, e.block_size);
    EXPECT_EQ(t->type_size, e.type_size);
  }
  // And against lowbit's own block structs.
  EXPECT_EQ(tensor_type(2)->type_size, sizeof(block_q4_0));
  EXPECT_EQ(tensor_type(3)->type_size, sizeof(block_q4_1));
  EXPECT_EQ(tensor_type(8)->type_size, sizeof(block_q8_0));
  EXPECT_EQ(tensor_type(9)->type_size, sizeof(block_q8_1));
  EXPECT_EQ(tensor_type(12)->type_size, sizeof(block_q4_k));
  EXPECT_EQ(tensor_type(14)->type_size, sizeof(block_q6_k));
  EXPECT_EQ(tensor_type(15)->type_size, sizeof(block_q8_k));
  for (const uint32_t removed : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u}) {
    EXPECT_EQ(tensor_type(removed), nullptr) << removed;
    EXPECT_NE(removed_tensor_type_name(removed), nullptr) << removed;
  }
  EXPECT_STREQ(removed_tensor_type_name(4), "Q4_2");
  EXPECT_STREQ(removed_tensor_type_name(33), "Q4_0_8_8");
  EXPECT_EQ(removed_tensor_type_name(2), nullptr);
  EXPECT_EQ(tensor_type(40), nullptr);
  EXPECT_EQ(tensor_type(~0u), nullptr);
}

// ---- round trips -----------------------------------------------------------------------

TEST(GgufRoundTrip, EveryScalarType) {
  const File f = File::from_bytes(all_types_file(), "all_types.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.path(), "all_types.gguf");
  ASSERT_EQ(f.metadata_count(), 25u);
  EXPECT_EQ(f.key(0), "t.u8");
  EXPECT_EQ(f.key(24), "a.empty");

  const std::pair<const char*, value_type> types[] = {
      {"t.u8", value_type::u8},   {"t.i8", value_type::i8},         {"t.u16", value_type::u16},
      {"t.i16", value_type::i16}, {"t.u32", value_type::u32},       {"t.i32", value_type::i32},
      {"t.f32", value_type::f32}, {"t.bool", value_type::boolean},  {"t.string", value_type::string},
      {"t.u64", value_type::u64}, {"t.i64", value_type::i64},       {"t.f64", value_type::f64},
      {"a.u8", value_type::array}};
  for (const auto& [key, type] : types) {
    const value* v = f.find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, type) << key;
  }
  EXPECT_EQ(f.get_uint("t.u8"), 200u);
  EXPECT_EQ(f.get_int("t.i8"), -100);
  EXPECT_EQ(f.get_uint("t.u16"), 60000u);
  EXPECT_EQ(f.get_int("t.i16"), -30000);
  EXPECT_EQ(f.get_uint("t.u32"), 4000000000u);
  EXPECT_EQ(f.get_int("t.i32"), -2000000000);
  EXPECT_EQ(f.get_float("t.f32"), 1.5);
  EXPECT_TRUE(f.get_bool("t.bool"));
  EXPECT_EQ(f.get_string("t.string"), "h\xc3\xa9llo");
  EXPECT_EQ(f.get_uint("t.u64"), (uint64_t{1} << 63) + 5);
  EXPECT_EQ(f.get_int("t.i64"), -(int64_t{1} << 62));
  EXPECT_EQ(f.get_float("t.f64"), 3.25);
  // Integer getters accept any width that holds the value.
  EXPECT_EQ(f.get_int("t.u32"), 4000000000);
  // Raw views: scalars point at their little-endian bytes.
  const value& u16 = *f.find("t.u16");
  EXPECT_EQ(u16.count, 1u);
  EXPECT_EQ(u16.bytes, 2u);
  EXPECT_EQ(u16.data[0] | (u16.data[1] << 8), 60000);
  const value& text = *f.find("t.string");
  EXPECT_EQ(text.bytes, 6u);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(text.data), 6), "h\xc3\xa9llo");
}

TEST(GgufRoundTrip, ArraysOfEveryElementType) {
  const File f = File::from_bytes(all_types_file());
  const std::pair<const char*, value_type> arrays[] = {
      {"a.u8", value_type::u8},     {"a.i8", value_type::i8},   {"a.u16", value_type::u16},
      {"a.i16", value_type::i16},   {"a.u32", value_type::u32}, {"a.i32", value_type::i32},
      {"a.f32", value_type::f32},   {"a.bool", value_type::boolean}, {"a.string", value_type::string},
      {"a.u64", value_type::u64},   {"a.i64", value_type::i64}, {"a.f64", value_type::f64}};
  for (const auto& [key, element] : arrays) {
    const value* v = f.find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, value_type::array) << key;
    EXPECT_EQ(v->element_type, element) << key;
  }
  EXPECT_EQ(f.get_int_array("a.u8"), (std::vector<int64_t>{0, 1, 255}));
  EXPECT_EQ(f.get_int_array("a.i8"), (std::vector<int64_t>{-128, 0, 127}));
  EXPECT_EQ(f.get_int_array("a.u16"), (std::vector<int64_t>{0, 65535}));
  EXPECT_EQ(f.get_int_array("a.i16"), (std::vector<int64_t>{-32768, 32767}));
  EXPECT_EQ(f.get_int_array("a.u32"), (std::vector<int64_t>{7, 4294967295}));
  EXPECT_EQ(f.get_int_array("a.i32"), (std::vector<int64_t>{-1, 2, -3}));
  EXPECT_EQ(f.get_int_array("a.i64"), (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 42}));
  EXPECT_EQ(f.get_float_array("a.f32"), (std::vector<float>{0.5f, -2.0f}));
  EXPECT_EQ(f.get_float_array("a.f64"), (std::vector<float>{-0.25f, float(1e300)}));
  const value& bools = *f.find("a.bool");
  ASSERT_EQ(bools.count, 3u);
  EXPECT_EQ(bools.data[0], 1);
  EXPECT_EQ(bools.data[1], 0);
  EXPECT_EQ(bools.data[2], 1);
  const value& u64 = *f.find("a.u64");
  EXPECT_EQ(u64.bytes, 16u);
  EXPECT_EQ(u64.data[15], 0xff);
  // Every uint64 element is readable raw; one above int64 cannot be a signed integer.
  EXPECT_TRUE(throws([&] { f.get_int_array("a.u64"); }, status::bad_file, "element 1 holds 18446744073709551615"));

  const std::vector<std::string_view> strings = f.get_string_array("a.string");
  EXPECT_EQ(strings, (std::vector<std::string_view>{"alpha", "", "g\xc3\xa4mma"}));
  const value& array = *f.find("a.string");
  EXPECT_EQ(f.array_string(array, 0), "alpha");
  EXPECT_EQ(f.array_string(array, 2), "g\xc3\xa4mma");
  const value copy = array;  // not held by the file: walked from the start
  EXPECT_EQ(f.array_string(copy, 1), "");
  EXPECT_EQ(f.array_string(copy, 2), "g\xc3\xa4mma");
  EXPECT_TRUE(throws([&] { f.array_string(array, 3); }, status::invalid_argument, "out of range"));
  EXPECT_TRUE(throws([&] { f.array_string(*f.find("a.u8"), 0); }, status::invalid_argument, "array of string"));

  const value& empty = *f.find("a.empty");
  EXPECT_EQ(empty.count, 0u);
  EXPECT_TRUE(f.get_int_array("a.empty").empty());
}

TEST(GgufGetters, WrongTypesMissingKeysAndFallbacks) {
  const File f = File::from_bytes(all_types_file(), "getters.gguf");
  EXPECT_TRUE(throws([&] { f.get_string("nope"); }, status::bad_file, "getters.gguf': metadata key 'nope' is missing"));
  EXPECT_TRUE(throws([&] { f.get_string("t.u32"); }, status::bad_file, "'t.u32' has type uint32, expected string"));
  EXPECT_TRUE(throws([&] { f.get_uint("t.i8"); }, status::bad_file, "holds -100, expected a non-negative integer"));
  EXPECT_TRUE(throws([&] { f.get_uint("t.f32"); }, status::bad_file, "has type float32, expected an integer"));
  EXPECT_TRUE(throws([&] { f.get_uint("t.bool"); }, status::bad_file, "expected an integer"));
  EXPECT_TRUE(throws([&] { f.get_int("t.u64"); }, status::bad_file, "too large for a signed 64-bit integer"));
  EXPECT_TRUE(throws([&] { f.get_float("t.i32"); }, status::bad_file, "expected float32 or float64"));
  EXPECT_TRUE(throws([&] { f.get_bool("t.u8"); }, status::bad_file, "expected bool"));
  EXPECT_TRUE(throws([&] { f.get_string_array("a.i32"); }, status::bad_file, "has type array of int32"));
  EXPECT_TRUE(throws([&] { f.get_int_array("a.f32"); }, status::bad_file, "expected array of integers"));
  EXPECT_TRUE(throws([&] { f.get_int_array("a.bool"); }, status::bad_file, "expected array of integers"));
  EXPECT_TRUE(throws([&] { f.get_float_array("t.f32"); }, status::bad_file, "expected array of float32"));
  EXPECT_TRUE(throws([&] { f.key(25); }, status::invalid_argument, "out of range"));
  EXPECT_TRUE(throws([&] { f.metadata(99); }, status::invalid_argument, "out of range"));

  EXPECT_EQ(f.get_uint_or("absent", 7), 7u);
  EXPECT_EQ(f.get_uint_or("t.u16", 7), 60000u);
  EXPECT_EQ(f.get_float_or("absent", 0.5), 0.5);
  EXPECT_EQ(f.get_float_or("t.f64", 0.5), 3.25);
  EXPECT_TRUE(f.get_bool_or("absent", true));
  EXPECT_TRUE(f.get_bool_or("t.bool", false));
  EXPECT_EQ(f.get_string_or("absent", "x"), "x");
  EXPECT_EQ(f.get_string_or("t.string", "x"), "h\xc3\xa9llo");
  // A present value of the wrong type is still an error.
  EXPECT_TRUE(throws([&] { f.get_uint_or("t.string", 1); }, status::bad_file, "expected an integer"));
  EXPECT_TRUE(throws([&] { f.get_float_or("t.u8", 1); }, status::bad_file, "expected float32"));
  EXPECT_TRUE(throws([&] { f.get_bool_or("t.u8", true); }, status::bad_file, "expected bool"));
  EXPECT_TRUE(throws([&] { f.get_string_or("t.u8", ""); }, status::bad_file, "expected string"));
  EXPECT_EQ(f.find("absent"), nullptr);
}

TEST(GgufRoundTrip, TensorsAndTheirData) {
  const File f = File::from_bytes(tensors_file(), "model.gguf");
  ASSERT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.tensors()[0].name, "token_embd.weight");
  EXPECT_EQ(f.tensors()[4].name, "output_norm.weight");
  EXPECT_EQ(f.data_offset() % 32, 0u);
  struct expected {
    const char* name;
    uint32_t type;
    uint32_t n_dims;
    std::array<uint64_t, 4> ne;
    uint64_t bytes;
    uint64_t rows;
    uint64_t row_bytes;
    std::vector<uint8_t> data;
  };
  const expected all[] = {
      {"token_embd.weight", 0, 2, {4, 2, 1, 1}, 32, 2, 16, sequence(32, 1)},
      {"blk.0.attn_q.weight", 8, 2, {32, 2, 1, 1}, 68, 2, 34, sequence(68, 2)},
      {"blk.0.ffn_up.weight", 3, 3, {32, 1, 2, 1}, 40, 2, 20, sequence(40, 3)},
      {"blk.0.ffn_down.weight", 12, 1, {256, 1, 1, 1}, 144, 1, 144, sequence(144, 4)},
      {"output_norm.weight", 24, 1, {5, 1, 1, 1}, 5, 1, 5, sequence(5, 5)},
  };
  uint64_t expected_offset = 0;
  for (const expected& e : all) {
    SCOPED_TRACE(e.name);
    const tensor_info& t = f.tensor(e.name);
    EXPECT_EQ(f.find_tensor(e.name), &t);
    EXPECT_EQ(t.type, e.type);
    EXPECT_EQ(t.n_dims, e.n_dims);
    EXPECT_EQ(t.ne, e.ne);
    EXPECT_EQ(t.bytes, e.bytes);
    EXPECT_EQ(t.elements(), e.ne[0] * e.ne[1] * e.ne[2] * e.ne[3]);
    EXPECT_EQ(t.rows(), e.rows);
    EXPECT_EQ(t.row_bytes(), e.row_bytes);
    // ggml's order: each offset is the running sum rounded up to the alignment.
    EXPECT_EQ(t.offset, expected_offset);
    expected_offset = (t.offset + t.bytes + 31) / 32 * 32;
    EXPECT_EQ(std::vector<uint8_t>(t.data, t.data + t.bytes), e.data);
  }
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  EXPECT_TRUE(throws([&] { f.tensor("output.weight"); }, status::bad_file, "tensor 'output.weight' not found in model.gguf"));
  // The metadata of the same file.
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 4u);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type"), (std::vector<int64_t>{3, 1, 1, 1}));
  EXPECT_FLOAT_EQ(float(f.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
}

TEST(GgufRoundTrip, AlignmentVariations) {
  for (const uint64_t alignment : {1u, 8u, 32u, 64u, 256u, 4096u}) {
    SCOPED_TRACE(alignment);
    const File f = File::from_bytes(tensors_file(alignment));
    EXPECT_EQ(f.alignment(), alignment);
    EXPECT_EQ(f.data_offset() % alignment, 0u);
    // general.alignment is written only when it differs from the default.
    EXPECT_EQ(f.find("general.alignment") != nullptr, alignment != 32);
    if (alignment != 32) {
      EXPECT_EQ(f.find("general.alignment")->type, value_type::u32);
    }
    ASSERT_EQ(f.tensors().size(), 5u);
    for (size_t i = 0; i < f.tensors().size(); ++i) {
      const tensor_info& t = f.tensors()[i];
      EXPECT_EQ(t.offset % alignment, 0u) << t.name;
      EXPECT_EQ(std::vector<uint8_t>(t.data, t.data + t.bytes), sequence(size_t(t.bytes), uint8_t(i + 1))) << t.name;
    }
  }
  // The same file compacts as the alignment shrinks: with alignment 1 there is no padding.
  EXPECT_LT(tensors_file(1).size(), tensors_file(64).size());
}

TEST(GgufRoundTrip, MovedFileKeepsItsViews) {
  File f = File::from_bytes(tensors_file());
  const uint8_t* data = f.tensor("output_norm.weight").data;
  File moved = std::move(f);
  EXPECT_EQ(moved.tensor("output_norm.weight").data, data);
  EXPECT_EQ(moved.get_string_array("tokenizer.ggml.tokens")[3], "ab");
  File assigned = File::from_bytes(all_types_file());
  assigned = std::move(moved);
  EXPECT_EQ(assigned.tensors().size(), 5u);
  EXPECT_EQ(assigned.find_tensor("token_embd.weight")->data[0], 1);
}

// ---- versions and byte order ------------------------------------------------------------

TEST(GgufVersions, VersionTwoIsAccepted) {
  std::vector<uint8_t> bytes = tensors_file();
  bytes[4] = 2;
  const File f = File::from_bytes(bytes);
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.tensors().size(), 5u);
}

TEST(GgufVersions, OtherVersionsAndBigEndianAreRefused) {
  std::vector<uint8_t> bytes = tensors_file();
  bytes[4] = 1;
  EXPECT_TRUE(refused(bytes, status::unsupported, {"GGUF version 1 is not supported"}));
  bytes[4] = 4;
  EXPECT_TRUE(refused(bytes, status::unsupported, {"GGUF version 4 is newer than this reader supports"}));
  bytes[4] = 0;
  EXPECT_TRUE(refused(bytes, status::bad_file, {"version 0"}));
  // A big-endian v3 file: the version reads 0x03000000.
  bytes[4] = 0;
  bytes[7] = 3;
  EXPECT_TRUE(refused(bytes, status::unsupported, {"big-endian", "0x03000000", "version 3 byte-swapped"}));
}

TEST(GgufVersions, MagicAndTinyFiles) {
  EXPECT_TRUE(refused({}, status::bad_file, {"0 bytes long, too short"}));
  EXPECT_TRUE(refused({'G', 'G', 'U'}, status::bad_file, {"3 bytes long"}));
  EXPECT_TRUE(refused({'G', 'G', 'M', 'L', 3, 0, 0, 0}, status::bad_file, {"not a GGUF file", "'GGML'"}));
  EXPECT_TRUE(refused({'G', 'G', 'U', 'F', 3, 0}, status::bad_file, {"version", "runs past the end of the file (size 6)"}));
  EXPECT_TRUE(refused({'G', 'G', 'U', 'F', 3, 0, 0, 0, 1}, status::bad_file, {"tensor count", "runs past the end"}));
}

// ---- hardening: one corrupt file per rule ----------------------------------------------

TEST(GgufHardening, HeaderCountsBeyondTheFile) {
  EXPECT_TRUE(refused(header(0, uint64_t{1} << 60).bytes, status::bad_file,
                      {"header", "claims 1152921504606846976 metadata entries", "size 24"}));
  EXPECT_TRUE(refused(header(~uint64_t{0}, 0).bytes, status::bad_file, {"claims 18446744073709551615 tensors"}));
  builder b = header(3, 1);
  add_u32_entry(b, "k", 1);
  EXPECT_TRUE(refused(b.bytes, status::bad_file, {"claims 3 tensors and 1 metadata entries"}));
}

TEST(GgufHardening, KeyLengths) {
  builder past_end = header(0, 1);
  past_end.u64(1000).text("general.name").u32(8).zeros(10);
  EXPECT_TRUE(refused(past_end.bytes, status::bad_file, {"metadata entry 0 at byte 24", "key (1000 bytes at byte 32) runs past the end"}));
  builder too_long = header(0, 1);
  too_long.u64(70000).zeros(70000 + 4 + 1);
  EXPECT_TRUE(refused(too_long.bytes, status::bad_file, {"key is 70000 bytes long, more than the limit of 65535"}));
  builder empty = header(0, 1);
  empty.str("").u32(uint32_t(value_type::u8)).u8(1).zeros(8);
  EXPECT_TRUE(refused(empty.bytes, status::bad_file, {"metadata entry 0", "empty key"}));
}

TEST(GgufHardening, DuplicateKeys) {
  builder b = header(0, 2);
  add_u32_entry(b, "llama.block_count", 1);
  add_u32_entry(b, "llama.block_count", 2);
  EXPECT_TRUE(refused(b.bytes, status::bad_file, {"metadata key 'llama.block_count' (entry 1", "duplicate key (first defined as entry 0)"}));
}

TEST(GgufHardening, ValueTypes) {
  builder unknown = header(0, 1);
  unknown.str("k").u32(13).zeros(8);
  EXPECT_TRUE(refused(unknown.bytes, status::bad_file, {"metadata key 'k'", "unknown value type code 13"}));
  builder element = header(0, 1);
  element.str("k").u32(uint32_t(value_type::array)).u32(99).u64(0).zeros(4);
  EXPECT_TRUE(refused(element.bytes, status::bad_file, {"unknown array element type code 99"}));
  builder nested = header(0, 1);
  nested.str("k").u32(uint32_t(value_type::array)).u32(uint32_t(value_type::array)).u64(1)
      .u32(uint32_t(value_type::u8)).u64(1).u8(0);
  EXPECT_TRUE(refused(nested.bytes, status::unsupported, {"metadata key 'k'", "nested array"}));
  builder truncated_scalar = header(0, 1);
  truncated_scalar.str("k").u32(uint32_t(value_type::u64)).zeros(5);
  EXPECT_TRUE(refused(truncated_scalar.bytes, status::bad_file, {"value (8 bytes at byte", "runs past the end"}));
}

TEST(GgufHardening, BoolsMustBeZeroOrOne) {
  builder scalar = header(0, 1);
  scalar.str("flag").u32(uint32_t(value_type::boolean)).u8(2).zeros(8);
  EXPECT_TRUE(refused(scalar.bytes, status::bad_file, {"metadata key 'flag'", "bool value holds 2, expected 0 or 1"}));
  builder array = header(0, 1);
  array.str("flags").u32(uint32_t(value_type::array)).u32(uint32_t(value_type::boolean)).u64(3).u8(1).u8(0).u8(255);
  EXPECT_TRUE(refused(array.bytes, status::bad_file, {"bool array element 2 holds 255"}));
}

TEST(GgufHardening, StringAndArrayLimits) {
  builder long_string = header(0, 1);
  long_string.str("s").u32(uint32_t(value_type::string)).u64((uint64_t{1} << 30) + 1).zeros(8);
  EXPECT_TRUE(refused(long_string.bytes, status::bad_file, {"metadata key 's'", "string value is 1073741825 bytes long, more than the limit"}));
  builder string_past_end = header(0, 1);
  string_past_end.str("s").u32(uint32_t(value_type::string)).u64(100).text("short");
  EXPECT_TRUE(refused(string_past_end.bytes, status::bad_file, {"string value (100 bytes at byte", "runs past the end of the file (size"}));
  builder huge_array = header(0, 1);
  huge_array.str("a").u32(uint32_t(value_type::array)).u32(uint32_t(value_type::u8)).u64((uint64_t{1} << 30) + 1).zeros(8);
  EXPECT_TRUE(refused(huge_array.bytes, status::bad_file, {"array of 1073741825 elements exceeds the limit of 2^30"}));
  builder array_past_end = header(0, 1);
  array_past_end.str("a").u32(uint32_t(value_type::array)).u32(uint32_t(value_type::u64)).u64(1000).zeros(16);
  EXPECT_TRUE(refused(array_past_end.bytes, status::bad_file, {"array data (8000 bytes", "runs past the end"}));
  builder strings = header(0, 1);
  strings.str("a").u32(uint32_t(value_type::array)).u32(uint32_t(value_type::string)).u64(1000).str("x");
  EXPECT_TRUE(refused(strings.bytes, status::bad_file, {"array of 1000 strings cannot fit"}));
  builder element_past_end = header(0, 1);
  element_past_end.str("a").u32(uint32_t(value_type::array)).u32(uint32_t(value_type::string)).u64(2)
      .str("ok").u64(50).zeros(10);
  EXPECT_TRUE(refused(element_past_end.bytes, status::bad_file, {"string element 1 (50 bytes", "runs past the end"}));
  builder long_element = header(0, 1);
  long_element.str("a").u32(uint32_t(value_type::array)).u32(uint32_t(value_type::string)).u64(2)
      .u64(~uint64_t{0}).zeros(16);
  EXPECT_TRUE(refused(long_element.bytes, status::bad_file, {"string element 0 is 18446744073709551615 bytes long"}));
}

TEST(GgufHardening, GeneralAlignment) {
  builder wrong_type = header(0, 1);
  wrong_type.str("general.alignment").u32(uint32_t(value_type::u64)).u64(32);
  EXPECT_TRUE(refused(wrong_type.bytes, status::bad_file, {"general.alignment has type uint64, it must be uint32"}));
  for (const uint32_t bad : {0u, 3u, 48u, 0x80000001u}) {
    builder b = header(0, 1);
    add_u32_entry(b, "general.alignment", bad);
    EXPECT_TRUE(refused(b.bytes, status::bad_file, {"general.alignment is " + std::to_string(bad), "non-zero power of two"})) << bad;
  }
  builder one = header(0, 1);
  add_u32_entry(one, "general.alignment", 1);
  EXPECT_EQ(File::from_bytes(one.bytes).alignment(), 1u);
}

TEST(GgufHardening, TensorNames) {
  const std::string longest(63, 'n');
  EXPECT_NO_THROW(File::from_bytes(file_with_tensors({{longest, {4}, 0, 0}}, 16)));
  EXPECT_TRUE(refused(file_with_tensors({{longest + "n", {4}, 0, 0}}, 16), status::bad_file,
                      {"tensor info 0 at byte 24", "tensor name is 64 bytes long; ggml allows at most 63"}));
  EXPECT_TRUE(refused(file_with_tensors({{"", {4}, 0, 0}}, 16), status::bad_file, {"empty tensor name"}));
  EXPECT_TRUE(refused(file_with_tensors({{"w", {4}, 0, 0}, {"w", {4}, 0, 32}}, 64), status::bad_file,
                      {"tensor 'w' (info 1", "duplicate tensor name (first defined as tensor 0)"}));
}

TEST(GgufHardening, TensorShapes) {
  EXPECT_TRUE(refused(file_with_tensors({{"w", {1, 1, 1, 1, 1}, 0, 0}}, 32), status::bad_file,
                      {"tensor 'w'", "n_dims is 5, at most 4"}));
  EXPECT_TRUE(refused(file_with_tensors({{"w", {4, 0}, 0, 0}}, 32), status::bad_file,
                      {"tensor 'w'", "dimension 1 is zero (ne = [4, 0])"}));
  EXPECT_TRUE(refused(file_with_tensors({{"w", {uint64_t{1} << 63}, 0, 0}}, 32), status::bad_file,
                      {"dimension 0 is 9223372036854775808, more than ggml's int64 limit"}));
  EXPECT_TRUE(refused(file_with_tensors({{"w", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0}}, 32), status::bad_file,
                      {"shape [1099511627776, 1099511627776] overflows"}));
  // Elements fit, bytes do not: 2^61 F32 values are 2^63 bytes, then times 4.
  EXPECT_TRUE(refused(file_with_tensors({{"w", {uint64_t{1} << 61, 4}, 0, 0}}, 32), status::bad_file, {"overflows"}));
  EXPECT_TRUE(refused(file_with_tensors({{"w", {48, 2}, 2, 0}}, 64), status::bad_file,
                      {"tensor 'w'", "row length ne0 = 48 is not a whole number of Q4_0 blocks (32 elements each)"}));
  // n_dims 0 is a scalar, as in ggml.
  const File scalar = File::from_bytes(file_with_tensors({{"s", {}, 0, 0}}, 32));
  EXPECT_EQ(scalar.tensor("s").ne, (std::array<uint64_t, 4>{1, 1, 1, 1}));
  EXPECT_EQ(scalar.tensor("s").bytes, 4u);
}

TEST(GgufHardening, TensorTypes) {
  EXPECT_TRUE(refused(file_with_tensors({{"w", {32}, 100, 0}}, 64), status::unsupported,
                      {"tensor 'w'", "unknown tensor type code 100"}));
  EXPECT_TRUE(refused(file_with_tensors({{"w", {32}, 40, 0}}, 64), status::unsupported, {"unknown tensor type code 40"}));
  const std::pair<uint32_t, const char*> removed[] = {{4, "Q4_2"},        {5, "Q4_3"},        {31, "Q4_0_4_4"},
                                                      {32, "Q4_0_4_8"},    {33, "Q4_0_8_8"},    {36, "IQ4_NL_4_4"},
                                                      {37, "IQ4_NL_4_8"},  {38, "IQ4_NL_8_8"}};
  for (const auto& [code, name] : removed) {
    const std::string what = "type " + std::to_string(code) + " (" + name + ", removed)";
    EXPECT_TRUE(refused(file_with_tensors({{"blk.0.attn_q.weight", {32}, code, 0}}, 64), status::unsupported,
                        {"tensor 'blk.0.attn_q.weight'", what, "repack at load instead"}));
  }
}

TEST(GgufHardening, TensorDataPlacement) {
  // Data offset 16 is not a multiple of the default alignment 32.
  EXPECT_TRUE(refused(file_with_tensors({{"w", {4}, 0, 16}}, 64), status::bad_file,
                      {"tensor 'w'", "data offset 16 is not a multiple of the alignment 32"}));
  // One F32 [16] = 64 bytes, but only 32 data bytes follow. The info ends at
  // byte 24 + 8 + 19 + 4 + 8 + 4 + 8 = 75, so the data section starts at 96.
  EXPECT_TRUE(refused(file_with_tensors({{"blk.0.attn_q.weight", {16}, 0, 0}}, 32), status::bad_file,
                      {"tensor 'blk.0.attn_q.weight': data [96, 160) lies past the end of the file (size 128)"}));
  EXPECT_TRUE(refused(file_with_tensors({{"w", {4}, 0, 32}}, 32), status::bad_file, {"data [96, 112) lies past the end"}));
  EXPECT_TRUE(refused(file_with_tensors({{"w", {4}, 0, ~uint64_t{0} - 31}}, 32), status::bad_file,
                      {"tensor 'w'", "overflows"}));
  // Lenient about order and overlap, like the specification: only alignment and bounds.
  const File f = File::from_bytes(file_with_tensors({{"a", {4}, 0, 32}, {"b", {4}, 0, 0}, {"c", {8}, 0, 0}}, 64));
  EXPECT_EQ(f.tensor("a").offset, 32u);
  EXPECT_EQ(f.tensor("c").data, f.tensor("b").data);
}

// ---- robustness: truncation and random corruption ------------------------------------

TEST(GgufRobustness, TruncationAtEveryByte) {
  const std::vector<uint8_t> full = tensors_file();
  const File whole = File::from_bytes(full);
  uint64_t end_of_data = 0;
  for (const tensor_info& t : whole.tensors()) {
    end_of_data = std::max(end_of_data, whole.data_offset() + t.offset + t.bytes);
  }
  ASSERT_LE(end_of_data, full.size());
  for (size_t size = 0; size < full.size(); ++size) {
    const std::vector<uint8_t> prefix(full.begin(), full.begin() + std::ptrdiff_t(size));
    if (size < end_of_data) {
      try {
        File::from_bytes(prefix);
        ADD_FAILURE() << "a file cut to " << size << " of " << full.size() << " bytes was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), status::bad_file) << size << ": " << e.what();
      }
    } else {
      // Only the final tensor's padding is missing: still a complete file.
      EXPECT_NO_THROW(touch_everything(File::from_bytes(prefix))) << size;
    }
  }
}

TEST(GgufRobustness, RandomByteFlipsGiveAValidFileOrAnError) {
  const std::vector<std::vector<uint8_t>> originals = {tensors_file(), all_types_file(), tensors_file(64)};
  std::mt19937_64 random(20240601);
  int parsed = 0;
  int refused_count = 0;
  for (int iteration = 0; iteration < 4000; ++iteration) {
    std::vector<uint8_t> bytes = originals[size_t(iteration) % originals.size()];
    const int flips = 1 + int(random() % 4);
    for (int i = 0; i < flips; ++i) {
      const size_t at = size_t(random() % bytes.size());
      if (random() % 2) {
        bytes[at] = uint8_t(random());
      } else {
        bytes[at] ^= uint8_t(1u << (random() % 8));
      }
    }
    try {
      const File f = File::from_bytes(bytes);
      touch_everything(f);
      ++parsed;
    } catch (const Error& e) {
      ++refused_count;
      EXPECT_NE(std::string(e.what()).find("'<memory>'"), std::string::npos) << e.what();
    }
  }
  // Both outcomes occur: flips in tensor data are harmless, flips in the header mostly not.
  EXPECT_GT(parsed, 100);
  EXPECT_GT(refused_count, 100);
}

// ---- files on disk ----------------------------------------------------------------------

TEST(GgufFiles, WriteIsAtomicAndOpenMapsTheFile) {
  const std::filesystem::path dir = fresh_directory("write");
  const std::string path = (dir / "model.gguf").string();
  Writer w;
  w.set_string("general.architecture", "llama");
  w.add_tensor("t", {8}, 0, sequence(32));
  w.write(path);
  // Only the target remains: no temporary file.
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"model.gguf"});
  EXPECT_EQ((std::filesystem::status(path).permissions() & std::filesystem::perms::owner_read),
            std::filesystem::perms::owner_read);

  const File f = File::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.file_size(), w.to_bytes().size());
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(std::vector<uint8_t>(f.tensor("t").data, f.tensor("t").data + 32), sequence(32));

  // Overwriting replaces the file whole.
  Writer smaller;
  smaller.set_u32("k", 1);
  smaller.write(path);
  EXPECT_EQ(File::open(path).metadata_count(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(GgufFiles, FailingWriteThrowsAndLeavesNothing) {
  const std::filesystem::path dir = fresh_directory("fail");
  const std::filesystem::path missing = dir / "no-such-dir";
  Writer w;
  w.set_u32("k", 1);
  EXPECT_TRUE(throws([&] { w.write((missing / "x.gguf").string()); }, status::io_error,
                     "cannot write GGUF file '" + (missing / "x.gguf").string() + "'"));
  EXPECT_FALSE(std::filesystem::exists(missing));
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  std::filesystem::remove_all(dir);
}

TEST(GgufFiles, OpenErrorsNameThePath) {
  const std::filesystem::path dir = fresh_directory("open");
  const std::string missing = (dir / "absent.gguf").string();
  EXPECT_TRUE(throws([&] { File::open(missing); }, status::io_error, "cannot open GGUF file '" + missing + "'"));
  EXPECT_TRUE(throws([&] { File::open(dir.string()); }, status::io_error, "is a directory"));
  const std::string empty = (dir / "empty.gguf").string();
  std::ofstream(empty).close();
  EXPECT_TRUE(throws([&] { File::open(empty); }, status::bad_file, "bad GGUF file '" + empty + "'"));
  const std::string corrupt = (dir / "corrupt.gguf").string();
  {
    std::vector<uint8_t> bytes = tensors_file();
    bytes.resize(bytes.size() - 100);
    std::ofstream out(corrupt, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  EXPECT_TRUE(throws([&] { File::open(corrupt); }, status::bad_file, "lies past the end of the file"));
  std::filesystem::remove_all(dir);
}

TEST(GgufWriter, RefusesBadArguments) {
  EXPECT_TRUE(throws([] { Writer w(0); }, status::invalid_argument, "power of two"));
  EXPECT_TRUE(throws([] { Writer w(48); }, status::invalid_argument, "power of two"));
  Writer w;
  w.set_u32("k", 1);
  EXPECT_TRUE(throws([&] { w.set_u32("k", 2); }, status::invalid_argument, "set twice"));
  EXPECT_TRUE(throws([&] { w.set_string("", "x"); }, status::invalid_argument, "empty metadata key"));
  EXPECT_TRUE(throws([&] { w.set_u32("general.alignment", 64); }, status::invalid_argument, "constructor"));
  const uint8_t two[] = {2};
  EXPECT_TRUE(throws([&] { w.set_raw("b", value_type::boolean, two); }, status::invalid_argument, "0 or 1"));
  EXPECT_TRUE(throws([&] { w.set_raw("u", value_type::u32, two); }, status::invalid_argument, "4 bytes, got 1"));
  EXPECT_TRUE(throws([&] { w.set_raw("a", value_type::array, two); }, status::invalid_argument, "set_raw_array"));
  EXPECT_TRUE(throws([&] { w.set_raw_array("n", value_type::array, 0, {}); }, status::invalid_argument, "nested"));
  EXPECT_TRUE(throws([&] { w.set_raw_array("s", value_type::string, 1, two); }, status::invalid_argument, "ends inside element 0"));
  const std::vector<uint8_t> data = sequence(16);
  EXPECT_TRUE(throws([&] { w.add_tensor("t", {5}, 0, data); }, status::invalid_argument, "needs 20 bytes, got 16"));
  EXPECT_TRUE(throws([&] { w.add_tensor("t", {16}, 2, data); }, status::invalid_argument, "not a whole number of Q4_0 blocks"));
  EXPECT_TRUE(throws([&] { w.add_tensor("t", {4, 0}, 0, data); }, status::invalid_argument, "dimension 1 is 0"));
  EXPECT_TRUE(throws([&] { w.add_tensor("t", {}, 0, data); }, status::invalid_argument, "1 to 4 dimensions"));
  EXPECT_TRUE(throws([&] { w.add_tensor("t", {4}, 31, data); }, status::invalid_argument, "unknown or removed"));
  EXPECT_TRUE(throws([&] { w.add_tensor(std::string(64, 'x'), {4}, 0, data); }, status::invalid_argument, "63 bytes"));
  w.add_tensor("t", {4}, 0, data);
  EXPECT_TRUE(throws([&] { w.add_tensor("t", {4}, 0, data); }, status::invalid_argument, "added twice"));
  // Raw setters can write what the typed ones do.
  const uint8_t one_u16[] = {0x34, 0x12};
  w.set_raw("raw.u16", value_type::u16, one_u16);
  const uint8_t strings[] = {1, 0, 0, 0, 0, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0};
  w.set_raw_array("raw.strings", value_type::string, 2, strings);
  const File f = File::from_bytes(w.to_bytes());
  EXPECT_EQ(f.get_uint("raw.u16"), 0x1234u);
  EXPECT_EQ(f.get_string_array("raw.strings"), (std::vector<std::string_view>{"x", ""}));
}

// ---- the default model --------------------------------------------------------------------


TEST(GgufModel, SmolLM2DefaultModel) {
  const std::string path = lowbit::test::default_model_path();
  if (!std::filesystem::exists(path)) {
    if (lowbit::test::model_required()) FAIL() << "LOWBIT_REQUIRE_MODEL=1 but " << path << " does not exist";
    GTEST_SKIP() << "the default model is not at " << path << " (run: bash ci/fetch_model.sh, or set LOWBIT_MODEL)";
  }
  const File f = File::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.tensors().size(), 272u);
  EXPECT_EQ(f.metadata_count(), 33u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("llama.block_count"), 30u);
  const tensor_info& embedding = f.tensor("token_embd.weight");
  EXPECT_EQ(embedding.type, 8u);
  EXPECT_EQ(embedding.n_dims, 2u);
  EXPECT_EQ(embedding.ne, (std::array<uint64_t, 4>{576, 49152, 1, 1}));
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 49152u);
  uint64_t checksum = touch_everything(f);
  EXPECT_NE(checksum, 0u);
}

// ---- the fuzz seed corpus ------------------------------------------------------------------

TEST(GgufFuzzCorpus, CommittedSeedsParse) {
  const std::filesystem::path dir = std::filesystem::path(LOWBIT_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "gguf";
  if (const char* write = std::getenv("LOWBIT_GGUF_WRITE_SEEDS"); write && std::string(write) == "1") {
    std::filesystem::create_directories(dir);
    for (const auto& [name, bytes] : seed_files()) {
      std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
      ASSERT_TRUE(out.good()) << (dir / name);
    }
  }
  size_t count = 0;
  for (const auto& [name, bytes] : seed_files()) {
    SCOPED_TRACE(name);
    std::ifstream in(dir / name, std::ios::binary);
    ASSERT_TRUE(in.good()) << "missing seed " << (dir / name) << "; regenerate with LOWBIT_GGUF_WRITE_SEEDS=1";
    const std::vector<uint8_t> committed{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    EXPECT_EQ(committed, bytes) << "the seed is stale; regenerate with LOWBIT_GGUF_WRITE_SEEDS=1";
    EXPECT_NO_THROW(touch_everything(File::open((dir / name).string())));
    ++count;
  }
  EXPECT_EQ(count, 4u);
}

}  // namespace
}  // namespace lowbit::gguf
