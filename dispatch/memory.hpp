// Memory the library (and its benchmarks) take from the system in large
// pieces: huge-page alignment and advice in one place.
#pragma once

#include <cstddef>
#include <cstdlib>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace lowbit::detail {

/// The huge page size asked for: pieces of at least this many bytes are
/// aligned to it and advised (allocate_advised).
inline constexpr size_t huge_page_bytes = size_t{2} << 20;

/// Asks the system to back [p, p + bytes) with huge pages. Advice only:
/// where it is refused or unknown, the memory stays on 4 KiB pages.
#if defined(__linux__) && defined(MADV_HUGEPAGE)
inline void advise_huge_pages(void* p, size_t bytes) { ::madvise(p, bytes, MADV_HUGEPAGE); }
#else
inline void advise_huge_pages(void*, size_t) {}
#endif

/// Whether allocate_advised(bytes, huge) aligns to huge pages and advises
/// them: asked for, and at least one huge page.
inline bool advises_huge_pages(size_t bytes, bool huge) { return huge && bytes >= huge_page_bytes; }

/// The bytes allocate_advised(bytes, huge) takes: rounded up to whole huge
/// pages where it advises them, else to 64 bytes.
inline size_t advised_bytes(size_t bytes, bool huge = true) {
  const size_t align = advises_huge_pages(bytes, huge) ? huge_page_bytes : 64;
  return (bytes + align - 1) / align * align;
}

/// advised_bytes(bytes, huge) bytes (free with std::free), 64-byte aligned;
/// where `huge` and bytes >= huge_page_bytes, aligned to huge pages and
/// advised to them (touch the memory after this call for the advice to take).
/// Null where the system has no memory for it.
inline void* allocate_advised(size_t bytes, bool huge = true) {
  const size_t rounded = advised_bytes(bytes, huge);
  const bool advise = advises_huge_pages(bytes, huge);
  void* p = std::aligned_alloc(advise ? huge_page_bytes : 64, rounded);
  if (p && advise) advise_huge_pages(p, rounded);
  return p;
}

}  // namespace lowbit::detail
