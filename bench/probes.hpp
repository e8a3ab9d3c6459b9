// Machine-limit probes measured in the same process as the kernels, so every
// kernel figure can be reported as a ratio to what this machine does right now.
#pragma once

#include <cstddef>

namespace lowbit::bench {

/// Median read bandwidth (GB/s) of a plain streaming read over `bytes` bytes,
/// from cold cache (the buffer is flushed before each timed pass), on the
/// current lowbit thread count.
double read_probe_gbps(size_t bytes);

/// Evicts [data, data + bytes) from every cache level.
void flush_cache(const void* data, size_t bytes);

}  // namespace lowbit::bench
