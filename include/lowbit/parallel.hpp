// The thread pool every multi-threaded op runs on.
//
// Work is split into tasks [0, n), in chunks of `grain` tasks; each worker (and
// the calling thread) runs a contiguous range of chunks and then takes over
// what is left of the others' ranges (work stealing), so a slow core never
// stalls the others behind a static partition. Each output element
// is produced by exactly one task with a fixed reduction order, so results do
// not depend on the thread count. A caller-supplied parallel_for can replace
// the pool (runtimes that own their threads).
#pragma once

#include <cstddef>
#include <functional>

namespace lowbit {

/// Threads ops may use, calling thread included. Starts at LOWBIT_NUM_THREADS,
/// else the number of hardware threads.
size_t num_threads();
/// Sets the thread count (>= 1). Throws lowbit::Error on 0.
void set_num_threads(size_t n);

/// Runs fn(begin, end) over disjoint chunks covering [0, n_tasks), each at most
/// `grain` long, on the pool. Returns when all are done. A nested call from
/// inside a task runs inline. The first exception a task throws is rethrown.
void parallel_for(size_t n_tasks, size_t grain, const std::function<void(size_t begin, size_t end)>& fn);

/// A runtime's own parallel-for: it must call task(context, begin, end) over
/// chunks covering [0, n_tasks) and return when all are done.
using external_parallel_for = void (*)(void* user, size_t n_tasks, size_t grain,
                                       void (*task)(void* context, size_t begin, size_t end), void* context);
/// Routes parallel_for through `fn` (nullptr restores the built-in pool).
void set_parallel_for(external_parallel_for fn, void* user);

}  // namespace lowbit
