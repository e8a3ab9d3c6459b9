// Argument checks shared by the public entry points (internal).
#pragma once

#include <string>

#include "lowbit/error.hpp"

namespace lowbit::detail {

/// Throws lowbit::Error(invalid_argument) with `what`.
[[noreturn]] inline void invalid(const std::string& what) { throw Error(status::invalid_argument, what); }

/// Throws "fn: what" as invalid_argument unless `ok`.
inline void require(bool ok, const char* fn, const std::string& what) {
  if (!ok) invalid(std::string(fn) + ": " + what);
}

}  // namespace lowbit::detail
