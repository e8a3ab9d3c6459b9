// Argument checks shared by the public entry points (internal).
#pragma once

#include <string>
#include <type_traits>

#include "lowbit/error.hpp"

namespace lowbit::detail {

/// Throws lowbit::Error(invalid_argument) with `what`.
[[noreturn]] inline void invalid(const std::string& what) { throw Error(status::invalid_argument, what); }

/// Throws "fn: what" as invalid_argument unless `ok`.
inline void require(bool ok, const char* fn, const std::string& what) {
  if (!ok) invalid(std::string(fn) + ": " + what);
}

/// The same for a fixed message: nothing is built unless the check fails.
inline void require(bool ok, const char* fn, const char* what) {
  if (!ok) invalid(std::string(fn) + ": " + what);
}

/// The same with the message built by what() only if the check fails, for
/// checks on paths that run per decode step.
template <class Message>
  requires std::is_invocable_r_v<std::string, Message>
inline void require(bool ok, const char* fn, Message&& what) {
  if (!ok) invalid(std::string(fn) + ": " + what());
}

}  // namespace lowbit::detail
