// pack_rows: the identity packing, W kept as GGUF rows.
//
// The scalar kernels read GGUF rows directly, so their "packing" is a copy of
// the rows. It exists so that every linear kernel, scalar included, goes
// through the same pack-then-run path and the same timing.
#pragma once

#include <cstddef>
#include <cstring>

#include "lowbit/formats.hpp"

namespace lowbit::kernels {
LOWBIT_CODEGEN_BEGIN

struct pack_rows {
  /// n GGUF rows of k elements.
  static size_t packed_size(format fmt, size_t n, size_t k) noexcept {
    const format_traits* t = find_format(fmt);
    return t ? n * row_bytes(*t, k) : 0;
  }
  /// Copies rows [n_begin, n_end).
  static void pack(format fmt, const void* w, size_t, size_t k, void* dst, size_t n_begin, size_t n_end) noexcept {
    const format_traits* t = find_format(fmt);
    if (!t) return;
    const size_t row = row_bytes(*t, k);
    std::memcpy(static_cast<unsigned char*>(dst) + n_begin * row, static_cast<const unsigned char*>(w) + n_begin * row,
                (n_end - n_begin) * row);
  }
};

LOWBIT_CODEGEN_END
}  // namespace lowbit::kernels
