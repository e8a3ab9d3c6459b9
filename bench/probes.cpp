// Read-bandwidth probe: each thread sums its slice of a buffer as 64-bit words
// with the widest loads the CPU has and four independent accumulators, so it
// is bound by the memory system, not by the add chain; caches are flushed with clflush (x86) or by touching a larger
// buffer (elsewhere) before each timed pass. Results are cached per size.
#include "probes.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>
#include <mutex>
#include <new>
#include <vector>

#include "dispatch/memory.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/parallel.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace lowbit::bench {

namespace {
volatile uint64_t sink;

/// Sums n 64-bit words with four independent accumulators (portable form).
uint64_t read_words_portable(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}
}  // namespace

#if defined(__x86_64__)
namespace {
/// The same read with 512-bit loads, four per iteration: the widest reads the
/// CPU has, so the probe is what the memory system gives, not what a baseline
/// loop manages. Chosen at run time; only this function carries AVX-512 code.
__attribute__((target("avx512f"))) uint64_t read_words_avx512(const uint64_t* p, size_t n) {
  __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a = _mm512_add_epi64(a, _mm512_loadu_si512(p + i));
    b = _mm512_add_epi64(b, _mm512_loadu_si512(p + i + 8));
    c = _mm512_add_epi64(c, _mm512_loadu_si512(p + i + 16));
    d = _mm512_add_epi64(d, _mm512_loadu_si512(p + i + 24));
  }
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
  uint64_t total = read_words_portable(p + i, n - i);
  for (uint64_t v : lanes) total += v;
  return total;
}
__attribute__((target("avx2"))) uint64_t read_words_avx2(const uint64_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a = _mm256_add_epi64(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi64(b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    c = _mm256_add_epi64(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    d = _mm256_add_epi64(d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + read_words_portable(p + i, n - i);
}
using read_fn = uint64_t (*)(const uint64_t*, size_t);
read_fn best_read() {
  const isa_set isas = detected_cpu().isas;
  if (isas.contains(isa::avx512)) return read_words_avx512;
  if (isas.contains(isa::avx2)) return read_words_avx2;
  return read_words_portable;
}
}  // namespace
#else
namespace {
using read_fn = uint64_t (*)(const uint64_t*, size_t);
read_fn best_read() { return read_words_portable; }
}  // namespace
#endif

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

void read_probe::release::operator()(uint64_t* p) const { std::free(p); }

read_probe::read_probe(size_t bytes, probe_pages pages) : words_(std::max<size_t>(bytes / 8, 64)) {
  auto* p = static_cast<uint64_t*>(detail::allocate_advised(words_ * 8, pages == probe_pages::huge));
  if (!p) throw std::bad_alloc();
  std::fill(p, p + words_, uint64_t{3});  // touched after the advice: the pages come in as advised
  buffer_.reset(p);
}

double read_probe::pass(bool cold) {
  static const read_fn read = best_read();
  const size_t words = words_, threads = num_threads();
  if (cold) flush_cache(buffer_.get(), words * 8);
  const auto t0 = std::chrono::steady_clock::now();
  // Chunks of at least 16 KiB: a tiny buffer is read by one thread, as a
  // kernel's tiny call would be, rather than paying for waking the pool.
  const size_t chunk = std::max<size_t>((words + threads * 4 - 1) / (threads * 4), 2048);
  std::vector<uint64_t> partial(threads * 4 + 1, 0);
  parallel_for((words + chunk - 1) / chunk, 1, [&](size_t begin, size_t end) {
    for (size_t c = begin; c < end; ++c)
      partial[c % partial.size()] += read(buffer_.get() + c * chunk, std::min(chunk, words - c * chunk));
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t total = 0;
  for (auto v : partial) total += v;
  sink = total;
  return s;
}

double read_probe_gbps(size_t bytes, bool cold) {
  static std::mutex m;
  static std::map<std::tuple<size_t, size_t, bool>, double> cache;
  const size_t threads = num_threads();
  std::lock_guard lock(m);
  if (auto it = cache.find({bytes, threads, cold}); it != cache.end()) return it->second;
  read_probe probe(bytes);
  if (!cold) probe.pass(false);  // hot: read once untimed first
  std::vector<double> samples;
  for (int rep = 0; rep < 7; ++rep) samples.push_back(static_cast<double>(probe.bytes()) / probe.pass(cold) / 1e9);
  std::sort(samples.begin(), samples.end());
  const double median = samples[samples.size() / 2];
  cache[{bytes, threads, cold}] = median;
  return median;
}

}  // namespace lowbit::bench
