// Compute-peak probes: how many int8 multiply-adds (or f32 FMAs) per second
// this machine's vector units retire when nothing else is in the way. Each
// probe runs a loop of 16 independent accumulator chains of one instruction
// sequence (enough chains to cover the latency on two vector ports), written in
// inline assembly so no compiler can fold or reorder it. Measured on every pool
// thread at once, in the same process as the kernels: the best of 5 passes
// (peak_gops), or short passes between a benchmark's iterations (peak_between).
#include "peak.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "lowbit/isa.hpp"
#include "lowbit/parallel.hpp"

namespace lowbit::bench {
namespace {

// Operations (multiply + add = 2) per loop iteration of each probe.
constexpr double ops_per_iteration(peak_kind k) {
  switch (k) {
    case peak_kind::int8_vnni512: return 16.0 * 64 * 2;
    case peak_kind::int8_vnni256: return 12.0 * 32 * 2;
    case peak_kind::int8_madd512: return 8.0 * 64 * 2;
    case peak_kind::int8_madd256: return 6.0 * 32 * 2;
    case peak_kind::f32_fma512: return 16.0 * 16 * 2;
    case peak_kind::f32_fma256: return 12.0 * 8 * 2;
    case peak_kind::portable: return 64.0 * 2;
  }
  return 0;
}

#define LOWBIT_R16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define LOWBIT_R8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/// 64 int8 multiply-adds a step in plain C++ (what the compiler makes of it):
/// the ceiling of the scalar tier and of machines without a probe above.
int32_t loop_portable(long n) {
  int8_t a[64], b[64];
  for (int i = 0; i < 64; ++i) a[i] = static_cast<int8_t>(i - 32), b[i] = static_cast<int8_t>(3 * i);
  int32_t acc[64] = {};
  for (long it = 0; it < n; ++it) {
    for (int i = 0; i < 64; ++i) acc[i] += a[i] * b[i];
    asm volatile("" : : "r"(acc) : "memory");
  }
  int32_t s = 0;
  for (int v : acc) s += v;
  return s;
}

volatile int32_t portable_sink;
void loop_portable_run(long n) { portable_sink = loop_portable(n); }

using loop_fn = void (*)(long);

#if defined(__x86_64__)
#define VNNI512(i) "vpdpbusd %%zmm16, %%zmm17, %%zmm" #i "\n\t"
#define VNNI256(i) "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm" #i "\n\t"
// The pre-VNNI int8 dot: u8 x s8 pairs to s16 (vpmaddubsw), pairs of s16 to
// s32 (vpmaddwd), then the add: three instructions per vector of products.
#define MADD512(t, acc) "vpmaddubsw %%zmm16, %%zmm17, %%zmm" #t "\n\tvpmaddwd %%zmm18, %%zmm" #t ", %%zmm" #t "\n\tvpaddd %%zmm" #t ", %%zmm" #acc ", %%zmm" #acc "\n\t"
#define MADD256(t, acc) "vpmaddubsw %%ymm12, %%ymm13, %%ymm" #t "\n\tvpmaddwd %%ymm14, %%ymm" #t ", %%ymm" #t "\n\tvpaddd %%ymm" #t ", %%ymm" #acc ", %%ymm" #acc "\n\t"
#define FMA512(i) "vfmadd231ps %%zmm16, %%zmm17, %%zmm" #i "\n\t"
#define FMA256(i) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #i "\n\t"
#define LOWBIT_R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define LOWBIT_YMM_CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11"
#define LOWBIT_ZMM_CLOBBERS LOWBIT_YMM_CLOBBERS, "xmm12", "xmm13", "xmm14", "xmm15"

__attribute__((target("avx512f,avx512vnni"))) void loop_vnni512(long n) {
  asm volatile("vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17" ::: "xmm16", "xmm17");
  for (long i = 0; i < n; ++i) asm volatile(LOWBIT_R16(VNNI512) ::: LOWBIT_ZMM_CLOBBERS);
}
__attribute__((target("avx2,avxvnni"))) void loop_vnni256(long n) {
  asm volatile("vpxor %%ymm14, %%ymm14, %%ymm14\n\tvpxor %%ymm15, %%ymm15, %%ymm15" ::: "xmm14", "xmm15");
  for (long i = 0; i < n; ++i) asm volatile(LOWBIT_R12(VNNI256) ::: LOWBIT_YMM_CLOBBERS);
}
__attribute__((target("avx512f,avx512bw"))) void loop_madd512(long n) {
  asm volatile("vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\tvpternlogd $0xff, %%zmm18, %%zmm18, %%zmm18" ::: "xmm16", "xmm17", "xmm18");
  for (long i = 0; i < n; ++i)
    asm volatile(MADD512(0, 8) MADD512(1, 9) MADD512(2, 10) MADD512(3, 11) MADD512(4, 12) MADD512(5, 13) MADD512(6, 14) MADD512(7, 15) ::: LOWBIT_ZMM_CLOBBERS);
}
__attribute__((target("avx2"))) void loop_madd256(long n) {
  asm volatile("vpxor %%ymm12, %%ymm12, %%ymm12\n\tvpxor %%ymm13, %%ymm13, %%ymm13\n\tvpcmpeqd %%ymm14, %%ymm14, %%ymm14" ::: "xmm12", "xmm13", "xmm14");
  for (long i = 0; i < n; ++i)
    asm volatile(MADD256(0, 6) MADD256(1, 7) MADD256(2, 8) MADD256(3, 9) MADD256(4, 10) MADD256(5, 11) ::: LOWBIT_YMM_CLOBBERS);
}
__attribute__((target("avx512f"))) void loop_fma512(long n) {
  asm volatile("vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17" ::: "xmm16", "xmm17");
  for (long i = 0; i < n; ++i) asm volatile(LOWBIT_R16(FMA512) ::: LOWBIT_ZMM_CLOBBERS);
}
__attribute__((target("avx2,fma"))) void loop_fma256(long n) {
  asm volatile("vpxor %%ymm14, %%ymm14, %%ymm14\n\tvpxor %%ymm15, %%ymm15, %%ymm15" ::: "xmm14", "xmm15");
  for (long i = 0; i < n; ++i) asm volatile(LOWBIT_R12(FMA256) ::: LOWBIT_YMM_CLOBBERS);
}

loop_fn loop_for(peak_kind k) {
  switch (k) {
    case peak_kind::int8_vnni512: return loop_vnni512;
    case peak_kind::int8_vnni256: return loop_vnni256;
    case peak_kind::int8_madd512: return loop_madd512;
    case peak_kind::int8_madd256: return loop_madd256;
    case peak_kind::f32_fma512: return loop_fma512;
    case peak_kind::f32_fma256: return loop_fma256;
    case peak_kind::portable: break;
  }
  return loop_portable_run;
}
#else
loop_fn loop_for(peak_kind) { return loop_portable_run; }
#endif

}  // namespace

bool peak_available(peak_kind k) {
  const isa_set have = detected_cpu().isas;
  switch (k) {
    case peak_kind::int8_vnni512: return have.contains(isa::avx512_vnni);
    case peak_kind::int8_vnni256: return have.contains(isa::avx2_vnni);
    case peak_kind::int8_madd512:
    case peak_kind::f32_fma512: return have.contains(isa::avx512);
    case peak_kind::int8_madd256:
    case peak_kind::f32_fma256: return have.contains(isa::avx2);
    case peak_kind::portable: return true;
  }
  return false;
}

const char* peak_name(peak_kind k) {
  switch (k) {
    case peak_kind::int8_vnni512: return "int8 vpdpbusd zmm";
    case peak_kind::int8_vnni256: return "int8 vpdpbusd ymm (AVX-VNNI)";
    case peak_kind::int8_madd512: return "int8 vpmaddubsw+vpmaddwd zmm";
    case peak_kind::int8_madd256: return "int8 vpmaddubsw+vpmaddwd ymm";
    case peak_kind::f32_fma512: return "f32 vfmadd zmm";
    case peak_kind::f32_fma256: return "f32 vfmadd ymm";
    case peak_kind::portable: return "int8 portable C++";
  }
  return "?";
}

const char* peak_id(peak_kind k) {
  switch (k) {
    case peak_kind::int8_vnni512: return "int8_vnni512";
    case peak_kind::int8_vnni256: return "int8_vnni256";
    case peak_kind::int8_madd512: return "int8_madd512";
    case peak_kind::int8_madd256: return "int8_madd256";
    case peak_kind::f32_fma512: return "f32_fma512";
    case peak_kind::f32_fma256: return "f32_fma256";
    case peak_kind::portable: return "int8_portable";
  }
  return "?";
}

peak_kind int8_peak_for(isa tier) {
  switch (tier) {
    case isa::avx512_vnni:
    case isa::amx: return peak_kind::int8_vnni512;
    case isa::avx2_vnni: return peak_kind::int8_vnni256;
    case isa::avx512: return peak_kind::int8_madd512;
    case isa::avx2: return peak_kind::int8_madd256;
    default: return peak_kind::portable;
  }
}

peak_kind fma_peak_for(isa tier) {
  switch (tier) {
    case isa::avx512:
    case isa::avx512_vnni:
    case isa::amx: return peak_kind::f32_fma512;
    case isa::avx2:
    case isa::avx2_vnni: return peak_kind::f32_fma256;
    default: return peak_kind::portable;
  }
}

long calibrate_peak_loop(void (*loop)(long), long start) {
  long n = start;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    loop(n);
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > 0.005 || n > (1L << 40)) break;
    n *= 2;
  }
  return n * 4;
}

double peak_gops(peak_kind kind) {
  static std::mutex m;
  static std::map<std::pair<peak_kind, size_t>, double> cache;
  const size_t threads = num_threads();
  std::lock_guard lock(m);
  if (auto it = cache.find({kind, threads}); it != cache.end()) return it->second;
  if (!peak_available(kind)) return cache[{kind, threads}] = 0.0;
  const loop_fn loop = loop_for(kind);
  // Calibrate one thread's pass to about 20 ms, then time every thread at once.
  const long n = calibrate_peak_loop(loop, 1 << 12);
  std::vector<double> samples;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(threads, 1, [&](size_t begin, size_t end) {
      for (size_t t = begin; t < end; ++t) loop(n);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    samples.push_back(ops_per_iteration(kind) * static_cast<double>(n) * static_cast<double>(threads) / s / 1e9);
  }
  // The best pass, not the median: a peak is what the units can do, and on
  // a shared machine interference only ever slows a pass (a vCPU held off
  // for a pass made a median 2-thread peak read as the 1-thread one, and
  // kernels measured later 1.3-1.7x "above peak").
  return cache[{kind, threads}] = *std::max_element(samples.begin(), samples.end());
}

peak_between::peak_between(peak_kind kind) : kind_(kind), threads_(num_threads()) {
  if (!peak_available(kind)) return;
  loop_ = loop_for(kind);
  steps_ = std::max(8L, calibrate_peak_loop(loop_, 1 << 12) / 4 / 8 * 8);
}

void peak_between::pass() {
  if (!loop_) return;
  // Eight pieces per thread, claimed from the pool as a kernel's tasks are:
  // a vCPU held off for part of a pass costs the pass what it costs a
  // kernel, not the whole of its share (one piece per thread had read a
  // two-thread peak as the one-thread one while the kernel lost a fifth).
  constexpr size_t pieces = 8;
  const auto t0 = std::chrono::steady_clock::now();
  parallel_for(threads_ * pieces, 1, [&](size_t begin, size_t end) {
    for (size_t t = begin; t < end; ++t) loop_(steps_ / static_cast<long>(pieces));
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  gops_.push_back(ops_per_iteration(kind_) * static_cast<double>(steps_) * static_cast<double>(threads_) / seconds /
                  1e9);
}

}  // namespace lowbit::bench
