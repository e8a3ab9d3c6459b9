// The built-in thread pool.
//
// One job at a time: parallel_for publishes a job (task count, grain, function)
// under a generation counter, wakes the workers, and joins in itself. The
// job's chunks (of `grain` tasks) are dealt out as one contiguous range per
// thread, the caller's first; each thread takes its own range's chunks from
// the front and, when it runs out, takes the other ranges' from their backs
// (work stealing), so a slow or busy core takes fewer chunks instead of
// stalling the rest. A range per thread rather than one shared counter:
// each thread reads one contiguous stretch of the weights (a GEMV's
// columns; the hardware prefetchers and the kernels' own prefetch run
// ahead within it), writes its own stretch of the output, and claims
// chunks on a cache line no other thread touches until it steals. With
// one shared counter, 16-column GEMV chunks alternated between the two
// threads of a Zen 2 host and the two-thread GEMV took up to twice the
// time (bench/ab.py; the decoder's two-thread decode sometimes ran slower
// than one thread). Calls from several threads are serialized; a call
// from inside a task runs inline.
//
// Decoding a small model is hundreds of short jobs per token (a 576x576 GEMV
// takes microseconds), and waking a sleeping thread costs tens of
// microseconds of futex and scheduler work. So a worker that finishes a job
// keeps polling the generation counter for a short while (LOWBIT_SPIN_US,
// default 200 microseconds) before it sleeps, and the caller polls for the
// workers to finish the same way; a pool left idle sleeps and costs nothing.
// The poll pauses the core between reads and yields it now and then, so an
// oversubscribed machine is not starved by it.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/parallel.hpp"

namespace lowbit {

namespace {

thread_local bool inside_task = false;

size_t threads_from_environment() {
  const char* v = std::getenv("LOWBIT_NUM_THREADS");
  if (v && *v) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    if (end && *end == '\0' && n >= 1 && n <= 4096) return static_cast<size_t>(n);
    throw Error(status::invalid_argument,
                std::string("LOWBIT_NUM_THREADS='") + v + "' is not a thread count (expected an integer 1..4096)");
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? hw : 1;
}

/// How long workers and the caller poll before sleeping, from LOWBIT_SPIN_US.
std::chrono::microseconds spin_budget() {
  const char* v = std::getenv("LOWBIT_SPIN_US");
  if (v && *v) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    if (end && *end == '\0' && n <= 1000000) return std::chrono::microseconds(n);
    throw Error(status::invalid_argument,
                std::string("LOWBIT_SPIN_US='") + v + "' is not a time in microseconds (expected 0..1000000)");
  }
  return std::chrono::microseconds(200);
}

/// The CPU's spin-wait hint, where it has one.
#if defined(__x86_64__) || defined(__i386__)
inline void cpu_pause() { __builtin_ia32_pause(); }
#elif defined(__aarch64__)
inline void cpu_pause() { asm volatile("yield"); }
#else
inline void cpu_pause() {}
#endif

/// One polling step: the spin-wait hint, and every 64th step a yield so
/// another runnable thread on this core gets its turn.
inline void relax(unsigned step) {
  cpu_pause();
  if ((step & 63) == 63) std::this_thread::yield();
}

/// Polls `ready` for up to `budget`; true as soon as it holds.
template <class Ready>
bool poll_for(std::chrono::microseconds budget, Ready ready) {
  if (budget.count() == 0) return ready();
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (unsigned step = 0;; ++step) {
    if (ready()) return true;
    relax(step);
    if ((step & 15) == 15 && std::chrono::steady_clock::now() >= deadline) return ready();
  }
}

class pool {
 public:
  ~pool() { resize_workers(0); }

  size_t threads() {
    std::lock_guard lock(config_mutex_);
    ensure_configured_locked();
    return threads_;
  }

  void set_threads(size_t n) {
    if (n == 0) throw Error(status::invalid_argument, "set_num_threads: the thread count must be at least 1");
    if (inside_task)
      throw Error(status::invalid_argument, "set_num_threads cannot be called from inside a parallel_for task");
    std::lock_guard call_lock(call_mutex_);
    std::lock_guard lock(config_mutex_);
    configured_ = true;
    threads_ = n;
    resize_workers(n - 1);
  }

  void set_external(external_parallel_for fn, void* user) {
    if (inside_task)
      throw Error(status::invalid_argument, "set_parallel_for cannot be called from inside a parallel_for task");
    std::lock_guard call_lock(call_mutex_);
    external_ = fn;
    external_user_ = user;
  }

  void run(size_t n_tasks, size_t grain, const std::function<void(size_t, size_t)>& fn) {
    if (n_tasks == 0) return;
    grain = std::max<size_t>(grain, 1);
    if (inside_task) {  // nested: run inline, in order
      for (size_t b = 0; b < n_tasks; b += grain) fn(b, std::min(n_tasks, b + grain));
      return;
    }
    std::lock_guard call_lock(call_mutex_);
    {
      std::lock_guard lock(config_mutex_);
      ensure_configured_locked();
    }
    if (external_) {
      run_external(n_tasks, grain, fn);
      return;
    }
    if (workers_.empty() || n_tasks <= grain) {
      run_inline(n_tasks, grain, fn);
      return;
    }
    {
      // The job's fields are written before the generation is bumped
      // (release), so a polling worker that sees the new generation
      // (acquire) sees the job too; the mutex orders it for sleeping ones.
      std::lock_guard lock(job_mutex_);
      job_fn_ = &fn;
      job_tasks_ = n_tasks;
      job_grain_ = grain;
      job_parts_ = workers_.size() + 1;
      const size_t chunks = (n_tasks + grain - 1) / grain;
      for (size_t p = 0; p < job_parts_; ++p) ranges_[p].deal(chunks * p / job_parts_, chunks * (p + 1) / job_parts_);
      error_ = nullptr;
      active_.store(workers_.size());
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleeping_.load() > 0) wake_.notify_all();
    work(0);
    if (!poll_for(spin_, [&] { return active_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock lock(job_mutex_);
      done_.wait(lock, [&] { return active_.load() == 0; });
    }
    std::lock_guard lock(job_mutex_);
    job_fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void ensure_configured_locked() {
    if (configured_) return;
    threads_ = threads_from_environment();
    configured_ = true;
    resize_workers(threads_ - 1);
  }

  static void run_inline(size_t n_tasks, size_t grain, const std::function<void(size_t, size_t)>& fn) {
    inside_task = true;
    try {
      for (size_t b = 0; b < n_tasks; b += grain) fn(b, std::min(n_tasks, b + grain));
    } catch (...) {
      inside_task = false;
      throw;
    }
    inside_task = false;
  }

  void run_external(size_t n_tasks, size_t grain, const std::function<void(size_t, size_t)>& fn) {
    struct context {
      const std::function<void(size_t, size_t)>* fn;
      std::mutex mutex;
      std::exception_ptr error;
    } ctx{&fn, {}, nullptr};
    auto trampoline = [](void* c, size_t begin, size_t end) {
      auto* x = static_cast<context*>(c);
      inside_task = true;
      try {
        (*x->fn)(begin, end);
      } catch (...) {
        std::lock_guard lock(x->mutex);
        if (!x->error) x->error = std::current_exception();
      }
      inside_task = false;
    };
    external_(external_user_, n_tasks, grain, trampoline, &ctx);
    if (ctx.error) std::rethrow_exception(ctx.error);
  }

  /// One thread's share of a job's chunks: [front, back) less what has been
  /// granted. `left` arbitrates: each chunk is granted by one successful
  /// decrement, the owner's taken from the front and a thief's from the
  /// back, so the two ends never cross. On a cache line of its own.
  struct alignas(64) chunk_range {
    std::atomic<size_t> front{0}, back{0};
    std::atomic<std::ptrdiff_t> left{0};

    void deal(size_t begin, size_t end) {
      front.store(begin, std::memory_order_relaxed);
      back.store(end, std::memory_order_relaxed);
      left.store(static_cast<std::ptrdiff_t>(end - begin), std::memory_order_relaxed);
    }
    bool grant() {
      std::ptrdiff_t n = left.load(std::memory_order_relaxed);
      while (n > 0)
        if (left.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel, std::memory_order_relaxed)) return true;
      return false;
    }
    /// The owner's next chunk, if any is left.
    bool take_front(size_t& chunk) {
      if (!grant()) return false;
      chunk = front.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    /// Another thread's chunk from the back, if any is left.
    bool take_back(size_t& chunk) {
      if (!grant()) return false;
      chunk = back.fetch_sub(1, std::memory_order_relaxed) - 1;
      return true;
    }
  };

  /// Runs chunks of the current job as participant `self` (0: the caller,
  /// worker i: i + 1): its own range front to back, then the others' from
  /// their backs, until none are left.
  void work(size_t self) {
    inside_task = true;
    const size_t parts = job_parts_;
    const auto run_chunk = [&](size_t chunk) {
      const size_t begin = chunk * job_grain_;
      try {
        (*job_fn_)(begin, std::min(job_tasks_, begin + job_grain_));
      } catch (...) {
        std::lock_guard lock(job_mutex_);
        if (!error_) error_ = std::current_exception();
        for (size_t p = 0; p < parts; ++p) ranges_[p].left.store(0);
      }
    };
    size_t chunk = 0;
    while (ranges_[self].take_front(chunk)) run_chunk(chunk);
    for (size_t k = 1; k < parts; ++k) {
      chunk_range& victim = ranges_[(self + k) % parts];
      while (victim.take_back(chunk)) run_chunk(chunk);
    }
    inside_task = false;
  }

  /// `seen` is the generation current when the worker was created, read under
  /// the lock by the creator: reading it here could miss a job published
  /// before this thread first ran.
  void worker_loop(size_t self, uint64_t seen) {
    auto job_or_stop = [&] {
      return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
    };
    for (;;) {
      if (!poll_for(spin_, job_or_stop)) {
        std::unique_lock lock(job_mutex_);
        sleeping_.fetch_add(1);
        wake_.wait(lock, job_or_stop);
        sleeping_.fetch_sub(1);
      }
      if (stop_.load(std::memory_order_acquire)) return;
      seen = generation_.load(std::memory_order_acquire);
      work(self);
      if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard lock(job_mutex_);  // the caller may be about to sleep on done_
        done_.notify_one();
      }
    }
  }

  void resize_workers(size_t n) {
    {
      std::lock_guard lock(job_mutex_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    uint64_t generation;
    {
      std::lock_guard lock(job_mutex_);
      stop_.store(false);
      generation = generation_.load();
    }
    ranges_ = std::make_unique<chunk_range[]>(n + 1);
    for (size_t i = 0; i < n; ++i) workers_.emplace_back([this, i, generation] { worker_loop(i + 1, generation); });
  }

  std::mutex call_mutex_;    // one parallel_for (or reconfiguration) at a time
  std::mutex config_mutex_;  // threads_ / configured_
  bool configured_ = false;
  size_t threads_ = 1;
  std::vector<std::thread> workers_;

  const std::chrono::microseconds spin_ = spin_budget();
  std::mutex job_mutex_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<size_t> active_{0};
  std::atomic<size_t> sleeping_{0};
  const std::function<void(size_t, size_t)>* job_fn_ = nullptr;
  size_t job_tasks_ = 0, job_grain_ = 1, job_parts_ = 1;
  std::unique_ptr<chunk_range[]> ranges_ = std::make_unique<chunk_range[]>(1);  // one per participant
  std::exception_ptr error_;

  external_parallel_for external_ = nullptr;
  void* external_user_ = nullptr;
};

pool& the_pool() {
  static pool p;
  return p;
}

}  // namespace

size_t num_threads() { return the_pool().threads(); }
void set_num_threads(size_t n) { the_pool().set_threads(n); }
void parallel_for(size_t n_tasks, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  the_pool().run(n_tasks, grain, fn);
}
void set_parallel_for(external_parallel_for fn, void* user) { the_pool().set_external(fn, user); }

}  // namespace lowbit
