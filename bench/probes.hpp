// Machine-limit probes measured in the same process as the kernels, so every
// kernel figure can be reported as a ratio to what this machine does right now.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit::bench {

/// A plain read of a buffer of `bytes` bytes on the current lowbit thread
/// count, through the same pool the kernels use, one timed pass at a time:
/// a benchmark times passes between its own iterations, so the kernel and the
/// read see the same machine (a shared machine's bandwidth drifts between
/// one benchmark and the next).
class read_probe {
 public:
  explicit read_probe(size_t bytes);
  /// Seconds of one read of the whole buffer; cold: flushed from the caches
  /// first (untimed).
  double pass(bool cold);
  size_t bytes() const { return buffer_.size() * sizeof(buffer_[0]); }

 private:
  std::vector<uint64_t> buffer_;
};

/// Median read bandwidth (GB/s) of a plain read over `bytes` bytes on the
/// current lowbit thread count, through the same pool the kernels use. Cold:
/// the buffer is flushed from the caches before each timed pass (as the
/// benchmarks do with weights); hot: it is read once untimed first.
double read_probe_gbps(size_t bytes, bool cold = true);

/// Evicts [data, data + bytes) from every cache level.
void flush_cache(const void* data, size_t bytes);

}  // namespace lowbit::bench
