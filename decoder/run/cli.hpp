// Command-line helpers shared by the decoder's tools (lowbit-run,
// lowbit-make-model) and bench/'s lowbit-attn-min: one way to report a usage error and to read numbers,
// so every tool answers bad flags the same way (message, usage, exit 2).
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace lowbit::cli {

/// Prints "<program>: <message>", a blank line and the usage, and exits 2.
[[noreturn]] inline void usage_error(const char* program, const std::string& message, const char* usage) {
  std::fprintf(stderr, "%s: %s\n\n%s", program, message.c_str(), usage);
  std::exit(2);
}

/// A non-negative integer (or, with `positive`, at least 1) given to `flag`.
inline unsigned long long parse_count(const char* program, const char* usage, std::string_view flag, const char* text,
                                      bool positive = false) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || (positive && v == 0))
    usage_error(program, std::string(flag) + (positive ? " expects a positive integer" : " expects a non-negative integer") +
                             ", got '" + text + "'",
                usage);
  return v;
}

/// A number given to `flag`.
inline float parse_real(const char* program, const char* usage, std::string_view flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  const float v = std::strtof(text, &end);
  if (errno != 0 || end == text || *end != '\0')
    usage_error(program, std::string(flag) + " expects a number, got '" + text + "'", usage);
  return v;
}

/// Walks argv: `next()` moves to the next argument, `is(a, b)` names it,
/// `value()` takes the one after it (a usage error when there is none).
/// -h / --help prints the usage and exits 0.
class arguments {
 public:
  arguments(int argc, char** argv, const char* program, const char* usage)
      : argc_(argc), argv_(argv), program_(program), usage_(usage) {}

  bool next() {
    if (++at_ >= argc_) return false;
    if (is("-h", "--help")) {
      std::fputs(usage_, stdout);
      std::exit(0);
    }
    return true;
  }
  std::string_view current() const { return argv_[at_]; }
  bool is(std::string_view short_name, std::string_view long_name = {}) const {
    return current() == short_name || (!long_name.empty() && current() == long_name);
  }
  const char* value() {
    if (at_ + 1 >= argc_) fail(std::string(current()) + " needs a value");
    return argv_[++at_];
  }
  unsigned long long count(bool positive = false) {
    const std::string flag(current());
    return parse_count(program_, usage_, flag, value(), positive);
  }
  float real() {
    const std::string flag(current());
    return parse_real(program_, usage_, flag, value());
  }
  [[noreturn]] void fail(const std::string& message) const { usage_error(program_, message, usage_); }
  [[noreturn]] void unknown() const { fail("unknown argument '" + std::string(current()) + "'"); }

 private:
  int argc_;
  char** argv_;
  const char* program_;
  const char* usage_;
  int at_ = 0;
};

}  // namespace lowbit::cli
