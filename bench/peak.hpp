// Compute-peak probes, measured in the same process as the kernels so GEMM
// figures can be given as a ratio to what this machine's vector units do now.
#pragma once

#include <cstddef>
#include <vector>

#include "lowbit/isa.hpp"

namespace lowbit::bench {

/// One instruction sequence whose throughput bounds a family of kernels.
enum class peak_kind {
  int8_vnni512,  ///< vpdpbusd on 512-bit vectors (avx512_vnni)
  int8_vnni256,  ///< VEX vpdpbusd on 256-bit vectors (AVX-VNNI)
  int8_madd512,  ///< vpmaddubsw + vpmaddwd + vpaddd, 512-bit (avx512 without VNNI)
  int8_madd256,  ///< the same on 256-bit vectors (avx2)
  f32_fma512,    ///< vfmadd231ps, 512-bit
  f32_fma256,    ///< vfmadd231ps, 256-bit
  portable,      ///< int8 multiply-adds in plain C++ (scalar tier, non-x86)
};

/// What the probe runs, in words ("int8 vpdpbusd zmm").
const char* peak_name(peak_kind kind);
/// Short identifier for benchmark names ("int8_vnni512").
const char* peak_id(peak_kind kind);

/// Whether this CPU can run probe `kind`.
bool peak_available(peak_kind kind);

/// The int8 multiply-add sequence a tier's kernels are built on: the ceiling
/// their `ratio_to_peak` is measured against.
peak_kind int8_peak_for(isa tier);

/// The f32 FMA sequence of a tier: the ceiling of its float kernels (attention).
/// (The scalar tier falls back to the portable int8 loop.)
peak_kind fma_peak_for(isa tier);

/// Best GOPS of five passes (multiply and add each counted) of probe `kind`
/// on all lowbit pool threads at once; 0 when this CPU cannot run it. Cached
/// per thread count.
double peak_gops(peak_kind kind);

/// Steps of `loop(steps)` that make one pass take about 20 ms on one thread,
/// doubling from `start` (what every peak probe times).
long calibrate_peak_loop(void (*loop)(long), long start);

/// A peak probe timed between a benchmark's own iterations, as decode's read
/// probe is: each pass() runs `kind` for about 5 ms on every pool thread at
/// once and keeps what it did. A benchmark pairs pass i with its iteration
/// i (the pass runs right before it) and reports the median of the pairs'
/// ratios: on a shared machine a kernel and its ceiling then see the same
/// neighbours, so their ratio does not depend on when each was measured
/// (peak_gops, the best of five passes at one moment, against a kernel
/// timed later, had put one two-thread prefill at 0.98 of the peak and the
/// next run at 0.47).
class peak_between {
 public:
  /// Calibrated on one thread now; passes run on num_threads() threads.
  explicit peak_between(peak_kind kind);
  /// One pass (untimed by the benchmark); a no-op where the CPU lacks `kind`.
  void pass();
  /// GOPS of each pass so far; empty where the CPU lacks `kind`.
  const std::vector<double>& passes() const { return gops_; }
  peak_kind kind() const { return kind_; }

 private:
  peak_kind kind_;
  void (*loop_)(long) = nullptr;
  long steps_ = 0;
  size_t threads_ = 1;
  std::vector<double> gops_;
};

}  // namespace lowbit::bench
