// Machine-limit probes measured in the same process as the kernels, so every
// kernel figure can be reported as a ratio to what this machine does right now.
#pragma once

#include <cstddef>

namespace lowbit::bench {

/// Median read bandwidth (GB/s) of a plain read over `bytes` bytes on the
/// current lowbit thread count, through the same pool the kernels use. Cold:
/// the buffer is flushed from the caches before each timed pass (as the
/// benchmarks do with weights); hot: it is read once untimed first.
double read_probe_gbps(size_t bytes, bool cold = true);

/// Evicts [data, data + bytes) from every cache level.
void flush_cache(const void* data, size_t bytes);

}  // namespace lowbit::bench
