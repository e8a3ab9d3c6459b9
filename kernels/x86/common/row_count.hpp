// Turning a run-time row count into a compile-time one, for kernels whose
// register tiles are templates on the number of rows.
#pragma once

#include <type_traits>
#include <utility>

#include "lowbit/detail/codegen.hpp"

namespace lowbit::kernels::x86 {
LOWBIT_CODEGEN_BEGIN

/// Calls fn(std::integral_constant<int, R>{}) for the R = rows in [1, MR].
template <int MR, class Fn>
inline void with_row_count(int rows, Fn fn) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((rows == I + 1 ? (fn(std::integral_constant<int, I + 1>{}), 0) : 0), ...);
  }(std::make_integer_sequence<int, MR>{});
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels::x86
