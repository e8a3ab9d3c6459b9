// This machine's own limits, as benchmarks of their own, for lowbit-bench's
// hardware report and its roofline:
//   limits/read/bytes:<n>/threads:<t>        hot read bandwidth over a working set
//                                            of n bytes (label: which cache holds it)
//   limits/peak/int8_amx/threads:<t>         AMX int8 tile multiply-add peak (tdpbssd)
//   limits/peak/int8_sdot128/threads:<t>     Arm dotprod peak (sdot)
//   limits/peak/f32_fma128/threads:<t>       Arm f32 FMA peak (fmla)
// The x86 vector peaks (vpdpbusd, vpmaddubsw, vfmadd) are bench/peak.cpp's,
// registered as peak/<probe>/threads:<t> by bench_kernels.cpp.
//
// Why a team of plain threads rather than the lowbit pool: a cache-bandwidth
// sweep only means something when each thread reads the same slice, which it
// touched first, on every pass; the pool hands chunks to whichever thread is
// free. Here thread i always owns slice i, the passes start and end on a
// barrier, and the calling thread is thread 0. The read sweep goes from half
// the L2 size (read from sysfs, else sysconf; half, so one thread's set surely
// fits) up by powers of two to past twice the last-level cache, so the curve
// shows each level and then memory. The sets are read hot (one untimed pass
// first): past the LLC that is memory bandwidth.
//
// Everything registers from a static initializer (Google Benchmark's own
// BENCHMARK macros do the same), so bench_kernels.cpp needs no hook; the same
// initializer records the compiler and cache sizes in the JSON context.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "lowbit/isa.hpp"
#include "peak.hpp"
#include "lowbit/parallel.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace lowbit::bench {
namespace {

// ------------------------------------------------------------ cache sizes ----

struct cache_sizes {
  size_t l2 = 0;         ///< one core's L2 (bytes)
  size_t llc = 0;        ///< the last-level cache (bytes)
  int llc_level = 0;     ///< its level (2 or 3, or 0 when unknown)
};

/// Parses sysfs sizes such as "2048K", "480M".
size_t parse_size(const std::string& text) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  size_t mult = 1;
  if (end && (*end == 'K' || *end == 'k')) mult = size_t{1} << 10;
  if (end && (*end == 'M' || *end == 'm')) mult = size_t{1} << 20;
  if (end && (*end == 'G' || *end == 'g')) mult = size_t{1} << 30;
  return static_cast<size_t>(v) * mult;
}

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

/// Fills the cache sizes sysfs left at 0 from sysconf, where libc knows them.
#if defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
void caches_from_sysconf(cache_sizes& c) {
  if (c.l2 == 0) c.l2 = static_cast<size_t>(std::max(0L, sysconf(_SC_LEVEL2_CACHE_SIZE)));
  if (c.llc == 0) {
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0) c.llc = static_cast<size_t>(l3), c.llc_level = 3;
  }
}
#else
void caches_from_sysconf(cache_sizes&) {}
#endif

/// The data/unified caches of cpu0 from sysfs; sysconf where sysfs says nothing.
cache_sizes detect_caches() {
  cache_sizes c;
  for (int index = 0; index < 16; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    const std::string level = read_line(dir + "level");
    if (level.empty()) break;
    if (read_line(dir + "type") == "Instruction") continue;
    const int lv = std::atoi(level.c_str());
    const size_t size = parse_size(read_line(dir + "size"));
    if (lv == 2) c.l2 = size;
    if (lv >= c.llc_level && size > 0) c.llc = size, c.llc_level = lv;
  }
  caches_from_sysconf(c);
  if (c.l2 == 0) c.l2 = size_t{1} << 20;  // nothing said: assume a common 1 MiB
  if (c.llc == 0) c.llc = std::max(c.l2, size_t{32} << 20), c.llc_level = 3;
  return c;
}

const cache_sizes& caches() {
  static const cache_sizes c = detect_caches();
  return c;
}

size_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : size_t{4} << 30;
}

// -------------------------------------------------------------------- team ----

/// `threads` threads that run one job together on each pass: thread i always
/// runs job(i), the calling thread is thread 0, and a pass starts and ends on
/// a barrier so its wall time is the slowest thread's.
class team {
 public:
  explicit team(size_t threads) : threads_(threads), start_(static_cast<std::ptrdiff_t>(threads)),
                                  done_(static_cast<std::ptrdiff_t>(threads)) {
    for (size_t i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { work(i); });
  }
  ~team() {
    stop_ = true;
    start_.arrive_and_wait();
    for (auto& w : workers_) w.join();
  }
  team(const team&) = delete;
  team& operator=(const team&) = delete;

  /// Runs job(i) on every thread i at once; returns the pass's seconds.
  double run(const std::function<void(size_t)>& job) {
    job_ = &job;
    start_.arrive_and_wait();
    const auto t0 = std::chrono::steady_clock::now();
    job(0);
    done_.arrive_and_wait();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  void work(size_t i) {
    for (;;) {
      start_.arrive_and_wait();
      if (stop_) return;
      (*job_)(i);
      done_.arrive_and_wait();
    }
  }

  size_t threads_;
  std::barrier<> start_, done_;
  const std::function<void(size_t)>* job_ = nullptr;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
};

// ------------------------------------------------------------------- reads ----

volatile uint64_t sink;

uint64_t sum_words_portable(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) a += p[i], b += p[i + 1], c += p[i + 2], d += p[i + 3];
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

#if defined(__x86_64__)
/// 512-bit loads, eight per step into four accumulators: the widest reads the
/// core can issue, so the figure is the memory level's, not the loop's.
__attribute__((target("avx512f"))) uint64_t sum_words_avx512(const uint64_t* p, size_t n) {
  __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a = _mm512_add_epi64(a, _mm512_load_si512(p + i));
    b = _mm512_add_epi64(b, _mm512_load_si512(p + i + 8));
    c = _mm512_add_epi64(c, _mm512_load_si512(p + i + 16));
    d = _mm512_add_epi64(d, _mm512_load_si512(p + i + 24));
    a = _mm512_add_epi64(a, _mm512_load_si512(p + i + 32));
    b = _mm512_add_epi64(b, _mm512_load_si512(p + i + 40));
    c = _mm512_add_epi64(c, _mm512_load_si512(p + i + 48));
    d = _mm512_add_epi64(d, _mm512_load_si512(p + i + 56));
  }
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
  return sum_words_portable(lanes, 8) + sum_words_portable(p + i, n - i);
}
__attribute__((target("avx2"))) uint64_t sum_words_avx2(const uint64_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a = _mm256_add_epi64(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi64(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    c = _mm256_add_epi64(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    d = _mm256_add_epi64(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + sum_words_portable(p + i, n - i);
}
#endif

using sum_fn = uint64_t (*)(const uint64_t*, size_t);
#if defined(__x86_64__)
sum_fn best_sum() {
  const isa_set have = detected_cpu().isas;
  if (have.contains(isa::avx512)) return sum_words_avx512;
  if (have.contains(isa::avx2)) return sum_words_avx2;
  return sum_words_portable;
}
#else
sum_fn best_sum() { return sum_words_portable; }  // the compiler vectorizes this for the baseline
#endif

/// Where a working set of `bytes` spread over `threads` threads lives.
const char* level_of(size_t bytes, size_t threads) {
  const auto& c = caches();
  if (bytes / threads <= c.l2) return "L2";
  if (bytes <= c.llc) return c.llc_level >= 3 ? "L3" : "LLC";
  return "memory";
}

/// Hot read of `bytes` in total, thread i reading its own slice of bytes/threads.
void bench_read(benchmark::State& state, size_t bytes, size_t threads) {
  const size_t words = std::max<size_t>(bytes / threads / 8 / 64 * 64, 64);  // 512-byte multiple per slice
  std::vector<uint64_t*> slices(threads, nullptr);
  // Past the LLC, where no thread owns anything in a cache, the threads take
  // 1 MiB chunks from a shared counter instead, so a thread the OS delays does
  // not hold the others up (the kernels' pool gets the same by stealing the
  // rest of a late thread's range, dispatch/thread_pool.cpp).
  const bool in_memory = words * 8 * threads > caches().llc;
  // Small sets are read several times per pass so a pass lasts long enough
  // (about 32 MiB per thread) for the barrier to be noise.
  const size_t inner = in_memory ? 1 : std::max<size_t>(1, (size_t{32} << 20) / (words * 8));
  const sum_fn sum = best_sum();
  std::vector<uint64_t> partial(threads * 8, 0);
  double seconds = 0;
  {
    team crew(threads);
    crew.run([&](size_t i) {  // each thread allocates and first-touches its own slice
      slices[i] = static_cast<uint64_t*>(std::aligned_alloc(64, words * 8));
      if (slices[i]) std::memset(slices[i], static_cast<int>(i + 1), words * 8);
    });
    if (std::any_of(slices.begin(), slices.end(), [](uint64_t* p) { return p == nullptr; })) {
      state.SkipWithError("out of memory for the working set");
    } else {
      const size_t chunk_words = (size_t{1} << 20) / 8, per_slice = (words + chunk_words - 1) / chunk_words;
      std::atomic<size_t> next{0};
      const std::function<void(size_t)> pass = [&](size_t i) {
        uint64_t s = 0;
        if (in_memory) {
          for (size_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < per_slice * threads;) {
            const size_t offset = (c % per_slice) * chunk_words;
            s += sum(slices[c / per_slice] + offset, std::min(chunk_words, words - offset));
          }
        } else {
          for (size_t r = 0; r < inner; ++r) s += sum(slices[i], words);
        }
        partial[i * 8] += s;  // one cache line per thread
      };
      crew.run(pass);  // untimed: brings the set into the caches it fits
      next = 0;
      for (auto _ : state) {
        next = 0;
        const double dt = crew.run(pass);
        state.SetIterationTime(dt);
        seconds += dt;
      }
    }
  }
  uint64_t total = 0;
  for (auto v : partial) total += v;
  sink = total;
  for (auto* p : slices) std::free(p);
  if (seconds > 0)
    state.counters["GBps"] = static_cast<double>(words * 8 * threads * inner) * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["bytes"] = static_cast<double>(words * 8 * threads);
  state.SetLabel(level_of(words * 8 * threads, threads));
}

// --------------------------------------------------------------- AMX peak ----

#if defined(__x86_64__)
/// The 64-byte tile configuration (palette 1) of the AMX probe: tmm0-3 are
/// 16x16 s32 accumulators, tmm4-5 A (16 rows x 64 s8), tmm6-7 B (16 x 64 s8).
struct alignas(64) tile_config {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

/// n steps of four independent tdpbssd (16 x 16 x 64 s8 multiply-adds each).
__attribute__((target("amx-tile,amx-int8"))) void loop_amx(long n) {
  tile_config cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  alignas(64) int8_t data[16 * 64];
  for (int i = 0; i < 16 * 64; ++i) data[i] = static_cast<int8_t>(i * 7 - 3);
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, data, 64);
  _tile_loadd(5, data, 64);
  _tile_loadd(6, data, 64);
  _tile_loadd(7, data, 64);
  for (long i = 0; i < n; ++i) {
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    _tile_dpbssd(2, 5, 6);
    _tile_dpbssd(3, 5, 7);
  }
  alignas(64) int32_t out[16 * 16];
  _tile_stored(0, out, 64);
  _tile_release();
  sink = static_cast<uint64_t>(out[0]);
}
constexpr double amx_ops_per_step = 4.0 * 16 * 16 * 64 * 2;
#endif

#if defined(__aarch64__)
#define LOWBIT_A8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define SDOT(i) "sdot v" #i ".4s, v16.16b, v17.16b\n\t"
#define FMLA(i) "fmla v" #i ".4s, v16.4s, v17.4s\n\t"
#define LOWBIT_V_CLOBBERS "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15"
/// 16 independent sdot chains (16 int8 multiply-adds each) per step.
__attribute__((target("arch=armv8.2-a+dotprod"))) void loop_sdot(long n) {
  asm volatile("movi v16.16b, #3\n\tmovi v17.16b, #5" ::: "v16", "v17");
  for (long i = 0; i < n; ++i) asm volatile(LOWBIT_A8(SDOT) ::: LOWBIT_V_CLOBBERS);
}
/// 16 independent f32 fmla chains (4 lanes each) per step.
void loop_fmla(long n) {
  asm volatile("movi v16.16b, #0\n\tmovi v17.16b, #0" ::: "v16", "v17");
  for (long i = 0; i < n; ++i) asm volatile(LOWBIT_A8(FMLA) ::: LOWBIT_V_CLOBBERS);
}
#endif

/// A compute peak: `loop(n)` on every team thread at once; GOPS counts a
/// multiply and an add as two operations.
void bench_peak_loop(benchmark::State& state, void (*loop)(long), double ops_per_step, size_t threads) {
  const long n = calibrate_peak_loop(loop, 256);  // about 20 ms a pass on one thread
  team crew(threads);
  const std::function<void(size_t)> job = [&](size_t) { loop(n); };
  crew.run(job);
  double seconds = 0;
  for (auto _ : state) {
    const double dt = crew.run(job);
    state.SetIterationTime(dt);
    seconds += dt;
  }
  if (seconds > 0)
    state.counters["GOPS"] = ops_per_step * static_cast<double>(n) * static_cast<double>(threads) *
                             static_cast<double>(state.iterations()) / seconds / 1e9;
}

// ----------------------------------------------------------- registration ----

/// The working sets of the read sweep: half the L2 size (so one thread's set
/// surely fits), then doubling up to the first size at least twice the LLC
/// (capped at a quarter of memory).
std::vector<size_t> read_sizes() {
  const auto& c = caches();
  const size_t cap = std::max(c.l2, physical_memory() / 4);
  std::vector<size_t> sizes;
  for (size_t s = c.l2 / 2;; s *= 2) {
    if (s > cap) break;
    sizes.push_back(s);
    if (s >= 2 * c.llc) break;
  }
  return sizes;
}

#if defined(__clang__)
const std::string compiler_name = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
const std::string compiler_name = std::string("gcc ") + __VERSION__;
#else
const std::string compiler_name = "unknown";
#endif

/// The compute peaks of this architecture beyond peak.cpp's, on t threads.
#if defined(__x86_64__)
void register_peaks(size_t t) {
  if (detected_cpu().isas.contains(isa::amx)) {  // tile state enabled and permission granted
    const std::string name = "limits/peak/int8_amx/threads:" + std::to_string(t);
    benchmark::RegisterBenchmark(name.c_str(), bench_peak_loop, loop_amx, amx_ops_per_step, t)->UseManualTime();
  }
}
#elif defined(__aarch64__)
void register_peaks(size_t t) {
  if (detected_cpu().isas.contains(isa::dotprod)) {
    const std::string name = "limits/peak/int8_sdot128/threads:" + std::to_string(t);
    benchmark::RegisterBenchmark(name.c_str(), bench_peak_loop, loop_sdot, 16.0 * 16 * 2, t)->UseManualTime();
  }
  if (detected_cpu().isas.contains(isa::neon)) {
    const std::string name = "limits/peak/f32_fma128/threads:" + std::to_string(t);
    benchmark::RegisterBenchmark(name.c_str(), bench_peak_loop, loop_fmla, 16.0 * 4 * 2, t)->UseManualTime();
  }
}
#else
void register_peaks(size_t) {}
#endif

int register_limits() {
  const auto& c = caches();
  benchmark::AddCustomContext("lowbit_compiler", compiler_name);
  benchmark::AddCustomContext("lowbit_l2_bytes", std::to_string(c.l2));
  benchmark::AddCustomContext("lowbit_llc_bytes", std::to_string(c.llc));
  benchmark::AddCustomContext("lowbit_memory_bytes", std::to_string(physical_memory()));
  const size_t all = num_threads();
  std::vector<size_t> thread_counts{1};
  if (all > 1) thread_counts.push_back(all);
  for (size_t t : thread_counts) {
    for (size_t bytes : read_sizes()) {
      const std::string name = "limits/read/bytes:" + std::to_string(bytes) + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), bench_read, bytes, t)->UseManualTime()->Unit(benchmark::kMicrosecond);
    }
    register_peaks(t);
  }
  return 0;
}

[[maybe_unused]] const int registered = register_limits();

}  // namespace
}  // namespace lowbit::bench
