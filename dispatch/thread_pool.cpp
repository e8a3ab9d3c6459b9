// The built-in thread pool.
//
// One job at a time: parallel_for publishes a job (task count, grain, function)
// under a generation counter, wakes the workers, and joins in itself. Everyone
// claims chunks from one atomic counter (dynamic chunking), so a slow or busy
// core takes fewer chunks instead of stalling the rest. Calls from several
// threads are serialized; a call from inside a task runs inline.
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
#include <cstdlib>
#include <exception>
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
      next_.store(0);
      error_ = nullptr;
      active_.store(workers_.size());
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleeping_.load() > 0) wake_.notify_all();
    work();
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

  /// Claims and runs chunks of the current job until none are left.
  void work() {
    inside_task = true;
    for (;;) {
      const size_t begin = next_.fetch_add(job_grain_);
      if (begin >= job_tasks_) break;
      try {
        (*job_fn_)(begin, std::min(job_tasks_, begin + job_grain_));
      } catch (...) {
        std::lock_guard lock(job_mutex_);
        if (!error_) error_ = std::current_exception();
        next_.store(job_tasks_);
      }
    }
    inside_task = false;
  }

  /// `seen` is the generation current when the worker was created, read under
  /// the lock by the creator: reading it here could miss a job published
  /// before this thread first ran.
  void worker_loop(uint64_t seen) {
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
      work();
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
    for (size_t i = 0; i < n; ++i) workers_.emplace_back([this, generation] { worker_loop(generation); });
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
  size_t job_tasks_ = 0, job_grain_ = 1;
  std::atomic<size_t> next_{0};
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
