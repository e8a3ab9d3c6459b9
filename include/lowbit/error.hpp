// Errors: one exception type carrying a status code that maps 1:1 onto the C API.
//
// Public functions validate their input and throw lowbit::Error with a message
// that says what was wrong and what was expected; the C API catches it and
// returns the status, keeping the message for lowbit_last_error().
#pragma once

#include <stdexcept>
#include <string>

namespace lowbit {

/// Status codes, identical in value to the C API's lowbit_status.
enum class status : int {
  ok = 0,
  invalid_argument = 1,   ///< a null pointer, a bad shape, a bad stride
  unsupported = 2,        ///< a format or operation lowbit does not provide
  isa_unavailable = 3,    ///< an ISA was requested that this CPU or build lacks
  out_of_memory = 4,
  io_error = 5,
  bad_file = 6,           ///< a malformed model file
  internal = 7,
};

/// The exception every public C++ function throws on bad input.
class Error : public std::runtime_error {
 public:
  Error(status code, const std::string& message) : std::runtime_error(message), code_(code) {}
  status code() const noexcept { return code_; }

 private:
  status code_;
};

}  // namespace lowbit
