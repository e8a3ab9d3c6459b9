// A small JSON reader for the tests' golden files (tests/data/*.json).
//
// The golden data is written by scripts under bench/peers from llama.cpp; the
// C++ tests only need to read it back, so this is a plain recursive-descent
// parser into a tree of values: strict enough to reject a damaged file with a
// message that says where, small enough to need no dependency.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::test {

/// One JSON value.
struct json {
  enum class kind { null, boolean, number, string, array, object };
  kind type = kind::null;
  bool boolean = false;
  double number = 0;
  std::string text;
  std::vector<json> items;
  std::map<std::string, json, std::less<>> members;

  /// Member `key` of an object; throws std::runtime_error naming it when absent.
  const json& operator[](std::string_view key) const {
    auto it = members.find(key);
    if (type != kind::object || it == members.end())
      throw std::runtime_error("JSON: no member '" + std::string(key) + "'");
    return it->second;
  }
  bool has(std::string_view key) const { return type == kind::object && members.count(key) != 0; }
  const json& operator[](size_t i) const { return items.at(i); }
  size_t size() const { return type == kind::array ? items.size() : members.size(); }
  int64_t as_int() const { return static_cast<int64_t>(number); }

  /// A JSON array of integers as a vector.
  template <class T>
  std::vector<T> as_vector() const {
    std::vector<T> v;
    v.reserve(items.size());
    for (const json& item : items) v.push_back(static_cast<T>(item.number));
    return v;
  }
};

namespace detail {

class json_parser {
 public:
  explicit json_parser(std::string_view text) : s_(text) {}

  json document() {
    json v = value();
    space();
    if (at_ < s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("JSON: " + what + " at byte " + std::to_string(at_));
  }
  void space() {
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\n' || s_[at_] == '\r' || s_[at_] == '\t')) ++at_;
  }
  bool take(char c) {
    space();
    if (at_ < s_.size() && s_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!take(c)) fail(std::string("expected '") + c + "'");
  }
  bool word(std::string_view w) {
    if (s_.substr(at_, w.size()) != w) return false;
    at_ += w.size();
    return true;
  }

  json value() {
    space();
    if (at_ >= s_.size()) fail("unexpected end");
    json v;
    const char c = s_[at_];
    if (c == '{') {
      ++at_;
      v.type = json::kind::object;
      if (take('}')) return v;
      do {
        space();
        std::string key = string_body();
        expect(':');
        v.members[key] = value();
      } while (take(','));
      expect('}');
    } else if (c == '[') {
      ++at_;
      v.type = json::kind::array;
      if (take(']')) return v;
      do v.items.push_back(value());
      while (take(','));
      expect(']');
    } else if (c == '"') {
      v.type = json::kind::string;
      v.text = string_body();
    } else if (word("true")) {
      v.type = json::kind::boolean;
      v.boolean = true;
    } else if (word("false")) {
      v.type = json::kind::boolean;
    } else if (word("null")) {
      v.type = json::kind::null;
    } else {
      v.type = json::kind::number;
      const std::string rest(s_.substr(at_, 64));
      char* end = nullptr;
      v.number = std::strtod(rest.c_str(), &end);
      if (end == rest.c_str()) fail("expected a value");
      at_ += static_cast<size_t>(end - rest.c_str());
    }
    return v;
  }

  void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  uint32_t hex4() {
    if (at_ + 4 > s_.size()) fail("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[at_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<uint32_t>(h - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }

  std::string string_body() {
    if (at_ >= s_.size() || s_[at_] != '"') fail("expected a string");
    ++at_;
    std::string out;
    while (true) {
      if (at_ >= s_.size()) fail("unterminated string");
      const char c = s_[at_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at_ >= s_.size()) fail("unterminated escape");
      const char e = s_[at_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xd800 && cp < 0xdc00 && s_.substr(at_, 2) == "\\u") {
            at_ += 2;
            const uint32_t low = hex4();
            if (low < 0xdc00 || low >= 0xe000) fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          }
          append_utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }

  std::string_view s_;
  size_t at_ = 0;
};

}  // namespace detail

/// Parses `text`; throws std::runtime_error with the byte offset on bad JSON.
inline json parse_json(std::string_view text) { return detail::json_parser(text).document(); }

/// Reads and parses a file; throws std::runtime_error naming it when unreadable.
inline json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_json(buffer.str());
}

}  // namespace lowbit::test
