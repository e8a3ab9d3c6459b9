// Read-bandwidth probe: each thread sums its slice of a buffer as 64-bit words.
// The loop has four independent accumulators so it is bound by loads, not by
// the add chain; caches are flushed with clflush (x86) or by touching a larger
// buffer (elsewhere) before each timed pass. Results are cached per size.
#include "probes.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <tuple>
#include <mutex>
#include <vector>

#include "lowbit/parallel.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace lowbit::bench {

namespace {
volatile uint64_t sink;
}

#if defined(__x86_64__) || defined(__i386__)
void flush_cache(const void* data, size_t bytes) {
  const auto* p = static_cast<const char*>(data);
  for (size_t i = 0; i < bytes; i += 64) _mm_clflush(p + i);
  _mm_mfence();
}
#else
/// Without a user-level flush instruction, stream through 64 MiB of other data.
void flush_cache(const void*, size_t) {
  static std::vector<uint64_t> evict(64u << 20 >> 3, 1);
  uint64_t s = 0;
  for (size_t i = 0; i < evict.size(); i += 8) s += evict[i]++;
  sink = s;
}
#endif

double read_probe_gbps(size_t bytes, bool cold) {
  static std::mutex m;
  static std::map<std::tuple<size_t, size_t, bool>, double> cache;
  const size_t threads = num_threads();
  std::lock_guard lock(m);
  if (auto it = cache.find({bytes, threads, cold}); it != cache.end()) return it->second;
  const size_t words = std::max<size_t>(bytes / 8, 64);
  std::vector<uint64_t> buffer(words, 3);
  std::vector<double> samples;
  for (int rep = 0; rep < 7; ++rep) {
    if (cold) flush_cache(buffer.data(), words * 8);
    const auto t0 = std::chrono::steady_clock::now();
    // Chunks of at least 16 KiB: a tiny buffer is read by one thread, as a
    // kernel's tiny call would be, rather than paying for waking the pool.
    const size_t chunk = std::max<size_t>((words + threads * 4 - 1) / (threads * 4), 2048);
    std::vector<uint64_t> partial(threads * 4 + 1, 0);
    parallel_for((words + chunk - 1) / chunk, 1, [&](size_t begin, size_t end) {
      for (size_t c = begin; c < end; ++c) {
        const uint64_t* p = buffer.data() + c * chunk;
        const size_t n = std::min(chunk, words - c * chunk);
        uint64_t a = 0, b = 0, d = 0, e = 0;
        size_t i = 0;
        for (; i + 4 <= n; i += 4) {
          a += p[i];
          b += p[i + 1];
          d += p[i + 2];
          e += p[i + 3];
        }
        for (; i < n; ++i) a += p[i];
        partial[c % partial.size()] += a + b + d + e;
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    uint64_t total = 0;
    for (auto v : partial) total += v;
    sink = total;
    samples.push_back(static_cast<double>(words * 8) / s / 1e9);
  }
  std::sort(samples.begin(), samples.end());
  const double median = samples[samples.size() / 2];
  cache[{bytes, threads, cold}] = median;
  return median;
}

}  // namespace lowbit::bench
