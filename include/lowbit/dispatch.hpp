// What dispatch selected, queryable so no fallback is ever silent.
#pragma once

#include <string>
#include <vector>

#include "lowbit/isa.hpp"

namespace lowbit {

/// One dispatch decision: an op (e.g. "linear.q4_0.gemv", "quantize.q8_0") and
/// the kernel that runs it under the current overrides.
struct kernel_choice {
  std::string op;
  std::string kernel;
  isa tier;
};

/// Every op and its kernel, in a stable order.
std::vector<kernel_choice> selected_kernels();

/// The kernel that runs `op` now; throws lowbit::Error for an unknown op.
std::string selected_kernel(const std::string& op);

/// Library version, "MAJOR.MINOR.PATCH".
const char* version();

}  // namespace lowbit
