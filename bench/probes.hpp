// Machine-limit probes measured in the same process as the kernels, so every
// kernel figure can be reported as a ratio to what this machine does right now.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace lowbit::bench {

/// The buffer's pages: plain (as the allocator gives them: the GEMM
/// benchmarks' weights are plain vectors), or huge where it is at least
/// huge_page_bytes (detail::allocate_advised, as the KV cache's pool takes
/// its chunks), so that the probe reads memory mapped as the data
/// it stands beside is. On a Xeon (family 6, model 207) a cold read of 10-70
/// MB with 4 KiB pages ran at 0.94-0.96 of the same read with huge pages.
enum class probe_pages { plain, huge };

/// A plain read of a buffer of `bytes` bytes on the current lowbit thread
/// count, through the same pool the kernels use, one timed pass at a time:
/// a benchmark times passes between its own iterations, so the kernel and the
/// read see the same machine (a shared machine's bandwidth drifts between
/// one benchmark and the next).
class read_probe {
 public:
  explicit read_probe(size_t bytes, probe_pages pages = probe_pages::plain);
  /// Seconds of one read of the whole buffer; cold: flushed from the caches
  /// first (untimed).
  double pass(bool cold);
  size_t bytes() const { return words_ * sizeof(uint64_t); }

 private:
  struct release {
    void operator()(uint64_t* p) const;
  };
  size_t words_;
  std::unique_ptr<uint64_t[], release> buffer_;
};

/// Median read bandwidth (GB/s) of a plain read over `bytes` bytes on the
/// current lowbit thread count, through the same pool the kernels use. Cold:
/// the buffer is flushed from the caches before each timed pass (as the
/// benchmarks do with weights); hot: it is read once untimed first.
double read_probe_gbps(size_t bytes, bool cold = true);

/// Evicts [data, data + bytes) from every cache level.
void flush_cache(const void* data, size_t bytes);

}  // namespace lowbit::bench
