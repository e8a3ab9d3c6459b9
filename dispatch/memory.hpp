// Memory the library (and its benchmarks) take from the system in large
// pieces: huge-page advice in one place.
#pragma once

#include <cstddef>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace lowbit::detail {

/// The huge page size asked for: pieces of at least this many bytes are
/// aligned to it and advised (advise_huge_pages).
inline constexpr size_t huge_page_bytes = size_t{2} << 20;

/// Asks the system to back [p, p + bytes) with huge pages. Advice only:
/// where it is refused or unknown, the memory stays on 4 KiB pages.
#if defined(__linux__) && defined(MADV_HUGEPAGE)
inline void advise_huge_pages(void* p, size_t bytes) { ::madvise(p, bytes, MADV_HUGEPAGE); }
#else
inline void advise_huge_pages(void*, size_t) {}
#endif

}  // namespace lowbit::detail
