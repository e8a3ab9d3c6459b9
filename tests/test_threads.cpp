// The thread pool, a caller-supplied parallel_for, and thread-count invariance.
//
// The pool must hand out every task exactly once for any task count, grain and
// thread count, run nested calls inline, carry a task's exception back to the
// caller and keep working afterwards. On top of it every public op must give
// the same bits whatever the thread count (each output element is reduced by one
// task in a fixed order), and concurrent callers must not disturb each other.
// A deadlock cannot be recovered in-process, so each test that drives the pool
// runs under a watchdog that turns a hang into an abort with a message.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kernels/ref/attention.hpp"
#include "tester/tester.hpp"

namespace lowbit {
namespace {

using test::thread_guard;

/// Aborts the process with a message when its scope has not ended after
/// `seconds`: a deadlocked pool would otherwise hang the whole test run.
class watchdog {
 public:
  explicit watchdog(const char* what, int seconds = 60)
      : thread_([this, what, seconds] {
          std::unique_lock lock(mutex_);
          if (!wake_.wait_for(lock, std::chrono::seconds(seconds), [this] { return done_; })) {
            std::fprintf(stderr, "watchdog: '%s' did not finish within %d s (deadlock in the thread pool?)\n", what,
                         seconds);
            std::fflush(stderr);
            std::abort();
          }
        }) {}
  ~watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

constexpr size_t pool_thread_counts[] = {1, 2, 3, 8};

/// Runs parallel_for(n, grain) and checks that the chunks are well formed
/// (non-empty, within [0, n), at most `grain` long) and cover [0, n) exactly once.
void expect_exact_cover(size_t n, size_t grain, const std::string& where) {
  std::vector<std::atomic<int>> hits(n);
  std::atomic<size_t> calls{0}, bad_chunks{0};
  parallel_for(n, grain, [&](size_t begin, size_t end) {
    calls.fetch_add(1);
    if (begin >= end || end > n || end - begin > grain) {
      bad_chunks.fetch_add(1);
      return;
    }
    for (size_t i = begin; i < end; ++i) hits[i].fetch_add(1);
  });
  EXPECT_EQ(bad_chunks.load(), 0u) << where;
  if (n == 0) {
    EXPECT_EQ(calls.load(), 0u) << where << ": no task may run for n = 0";
  }
  EXPECT_LE(calls.load(), n) << where;
  EXPECT_GE(calls.load(), (n + grain - 1) / grain) << where;
  size_t wrong = 0, first_wrong = n;
  for (size_t i = 0; i < n; ++i)
    if (hits[i].load() != 1) {
      if (wrong++ == 0) first_wrong = i;
    }
  EXPECT_EQ(wrong, 0u) << where << ": index " << first_wrong << " ran "
                       << (first_wrong < n ? hits[first_wrong].load() : 0) << " times";
}

std::string describe(size_t threads, size_t n, size_t grain) {
  return "threads=" + std::to_string(threads) + " n=" + std::to_string(n) + " grain=" + std::to_string(grain);
}

// ------------------------------------------------------------- the pool -----

TEST(ThreadPool, SetNumThreadsIsReportedBack) {
  watchdog dog("SetNumThreadsIsReportedBack");
  thread_guard guard;
  EXPECT_GE(num_threads(), 1u);
  for (size_t threads : pool_thread_counts) {
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
  }
}

TEST(ThreadPool, ZeroThreadsIsInvalidArgument) {
  thread_guard guard;
  set_num_threads(3);
  try {
    set_num_threads(0);
    FAIL() << "set_num_threads(0) did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), status::invalid_argument);
    EXPECT_NE(std::string(e.what()), "");
  }
  EXPECT_EQ(num_threads(), 3u) << "a rejected thread count must leave the old one in place";
}

TEST(ThreadPool, ParallelForCoversEveryIndexExactlyOnce) {
  watchdog dog("ParallelForCoversEveryIndexExactlyOnce");
  thread_guard guard;
  for (size_t threads : pool_thread_counts) {
    set_num_threads(threads);
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}})
      for (size_t grain : {size_t{1}, size_t{3}, size_t{64}, n + 1, size_t{5000}})
        expect_exact_cover(n, grain, describe(threads, n, grain));
  }
}

TEST(ThreadPool, RepeatedResizeAndRun) {
  // Workers created by a resize must see the very next job: a worker that
  // starts late and misses it would leave parallel_for waiting forever.
  watchdog dog("RepeatedResizeAndRun");
  thread_guard guard;
  for (int round = 0; round < 200; ++round) {
    const size_t threads = 1 + static_cast<size_t>(round) % 8;
    set_num_threads(threads);
    expect_exact_cover(100, 1, describe(threads, 100, 1) + " round=" + std::to_string(round));
    if (HasFailure()) break;
  }
}

TEST(ThreadPool, UsesTheRequestedNumberOfThreads) {
  // Each task waits (bounded) until all have started: with T threads and T
  // tasks of grain 1, T distinct threads (the caller included) must run them.
  watchdog dog("UsesTheRequestedNumberOfThreads");
  thread_guard guard;
  for (size_t threads : {size_t{2}, size_t{3}, size_t{8}}) {
    set_num_threads(threads);
    std::mutex mutex;
    std::condition_variable all_started;
    size_t started = 0;
    std::set<std::thread::id> ids;
    const std::thread::id caller = std::this_thread::get_id();
    parallel_for(threads, 1, [&](size_t, size_t) {
      std::unique_lock lock(mutex);
      ids.insert(std::this_thread::get_id());
      if (++started == threads) all_started.notify_all();
      all_started.wait_for(lock, std::chrono::seconds(10), [&] { return started == threads; });
    });
    EXPECT_EQ(ids.size(), threads) << "threads=" << threads;
    EXPECT_TRUE(ids.count(caller)) << "the calling thread takes part in the work";
  }
}

TEST(ThreadPool, NestedCallRunsInlineAndCoversItsRange) {
  watchdog dog("NestedCallRunsInlineAndCoversItsRange");
  thread_guard guard;
  for (size_t threads : pool_thread_counts) {
    set_num_threads(threads);
    constexpr size_t outer = 24, inner = 37;
    std::vector<std::atomic<int>> hits(outer * inner);
    std::atomic<size_t> foreign_thread{0};
    parallel_for(outer, 1, [&](size_t begin, size_t end) {
      for (size_t o = begin; o < end; ++o) {
        const std::thread::id self = std::this_thread::get_id();
        parallel_for(inner, 5, [&](size_t b, size_t e) {
          if (std::this_thread::get_id() != self) foreign_thread.fetch_add(1);
          for (size_t i = b; i < e; ++i) hits[o * inner + i].fetch_add(1);
        });
      }
    });
    EXPECT_EQ(foreign_thread.load(), 0u) << "a nested parallel_for must run inline, threads=" << threads;
    for (size_t i = 0; i < hits.size(); ++i)
      ASSERT_EQ(hits[i].load(), 1) << "threads=" << threads << " element " << i;
  }
}

struct task_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

TEST(ThreadPool, AStalledThreadsRangeIsTakenOverByTheOthers) {
  // Each thread starts on a contiguous range of the chunks; one that stalls
  // must not hold its range back. The caller stalls in its first task until
  // the other threads have run more than their own share of the tasks
  // (bounded wait), which they can only do by taking the caller's.
  watchdog dog("AStalledThreadsRangeIsTakenOverByTheOthers");
  thread_guard guard;
  for (size_t threads : {size_t{2}, size_t{3}, size_t{4}}) {
    set_num_threads(threads);
    constexpr size_t n = 120;
    const size_t others_share = n - n / threads;  // the tasks of the other threads' ranges
    const std::thread::id caller = std::this_thread::get_id();
    std::mutex mutex;
    std::condition_variable progress;
    size_t by_others = 0;
    bool stalled = false;
    std::vector<int> runs(n, 0);
    parallel_for(n, 1, [&](size_t begin, size_t end) {
      std::unique_lock lock(mutex);
      for (size_t i = begin; i < end; ++i) ++runs[i];
      if (std::this_thread::get_id() != caller) {
        by_others += end - begin;
        progress.notify_all();
      } else if (!stalled) {
        stalled = true;
        progress.wait_for(lock, std::chrono::seconds(10), [&] { return by_others > others_share; });
      }
    });
    EXPECT_GT(by_others, others_share) << "threads=" << threads << ": the others never took the stalled caller's chunks";
    EXPECT_EQ(std::count(runs.begin(), runs.end(), 1), static_cast<std::ptrdiff_t>(n)) << "threads=" << threads;
  }
}

TEST(ThreadPool, ExceptionIsRethrownAndPoolKeepsWorking) {
  watchdog dog("ExceptionIsRethrownAndPoolKeepsWorking");
  thread_guard guard;
  for (size_t threads : pool_thread_counts) {
    set_num_threads(threads);
    // One task fails.
    EXPECT_THROW(parallel_for(1000, 7,
                              [](size_t begin, size_t end) {
                                if (begin <= 500 && 500 < end) throw task_failure("task 500 failed");
                              }),
                 task_failure)
        << "threads=" << threads;
    // Every task fails: exactly one exception comes back, nothing terminates.
    try {
      parallel_for(64, 1, [](size_t begin, size_t) { throw task_failure("task " + std::to_string(begin)); });
      ADD_FAILURE() << "no exception, threads=" << threads;
    } catch (const task_failure& e) {
      EXPECT_EQ(std::string(e.what()).rfind("task ", 0), 0u);
    }
    // A single chunk (run inline by the caller) and a lowbit::Error from a nested call.
    EXPECT_THROW(parallel_for(3, 10, [](size_t, size_t) { throw task_failure("inline"); }), task_failure);
    try {
      parallel_for(8, 1, [](size_t, size_t) {
        parallel_for(4, 1, [](size_t b, size_t) {
          if (b == 2) throw Error(status::internal, "nested failure");
        });
      });
      ADD_FAILURE() << "no exception from the nested call, threads=" << threads;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), status::internal);
    }
    // The pool still works, at this and at another thread count.
    expect_exact_cover(1000, 3, "after an exception, " + describe(threads, 1000, 3));
    set_num_threads(threads == 1 ? 2 : 1);
    expect_exact_cover(1000, 3, "after an exception and a resize");
  }
}

TEST(ThreadPool, ConcurrentCallersAreSerializedCorrectly) {
  watchdog dog("ConcurrentCallersAreSerializedCorrectly");
  thread_guard guard;
  set_num_threads(3);
  std::atomic<size_t> failures{0};
  auto caller = [&](size_t n, size_t grain) {
    for (int round = 0; round < 50; ++round) {
      std::vector<std::atomic<int>> hits(n);
      parallel_for(n, grain, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (size_t i = 0; i < n; ++i)
        if (hits[i].load() != 1) {
          failures.fetch_add(1);
          break;
        }
    }
  };
  std::thread a(caller, 1000, 7), b(caller, 333, 1), c(caller, 64, 64);
  a.join();
  b.join();
  c.join();
  EXPECT_EQ(failures.load(), 0u);
}

// ------------------------------------------------- external parallel_for ---

struct external_counts {
  std::atomic<size_t> calls{0};
  std::atomic<size_t> chunks{0};
  std::atomic<size_t> bad{0};
};

/// A runtime's parallel-for that runs the chunks serially on the caller.
void serial_parallel_for(void* user, size_t n_tasks, size_t grain, void (*task)(void*, size_t, size_t),
                         void* context) {
  auto* counts = static_cast<external_counts*>(user);
  counts->calls.fetch_add(1);
  if (grain == 0) {
    counts->bad.fetch_add(1);
    grain = 1;
  }
  for (size_t begin = 0; begin < n_tasks; begin += grain) {
    counts->chunks.fetch_add(1);
    task(context, begin, std::min(n_tasks, begin + grain));
  }
}

/// A runtime's parallel-for with its own threads, claiming chunks dynamically.
void threaded_parallel_for(void* user, size_t n_tasks, size_t grain, void (*task)(void*, size_t, size_t),
                           void* context) {
  auto* counts = static_cast<external_counts*>(user);
  counts->calls.fetch_add(1);
  grain = std::max<size_t>(grain, 1);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (;;) {
      const size_t begin = next.fetch_add(grain);
      if (begin >= n_tasks) return;
      counts->chunks.fetch_add(1);
      task(context, begin, std::min(n_tasks, begin + grain));
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
}

/// Restores the built-in pool when a test scope ends.
struct external_guard {
  ~external_guard() { set_parallel_for(nullptr, nullptr); }
};

TEST(ExternalParallelFor, PublicOpsRunThroughIt) {
  watchdog dog("ExternalParallelFor.PublicOpsRunThroughIt");
  thread_guard threads;
  set_num_threads(3);
  constexpr size_t rows = 300, k = 512;
  const auto x = test::make_data(rows * k, test::data_kind::gaussian, 41);
  const auto expected = test::ref_quantize(format::q8_0, x, rows, k);
  std::vector<unsigned char> got(expected.size());

  external_counts counts;
  {
    external_guard restore;
    set_parallel_for(serial_parallel_for, &counts);
    quantize_rows(format::q8_0, x.data(), rows, k, got.data(), got.size());
    EXPECT_GE(counts.calls.load(), 1u) << "quantize_rows did not use the external parallel_for";
    EXPECT_GE(counts.chunks.load(), 2u) << "300 rows of 512 should be more than one chunk";
    EXPECT_EQ(counts.bad.load(), 0u) << "the external parallel_for was given grain 0";
    EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), expected.size()));

    const size_t before_linear = counts.calls.load();
    const auto wq = test::ref_quantize(format::q4_0, x, rows, k);
    const PackedWeights w = pack_weights(format::q4_0, wq.data(), wq.size(), rows, k);
    std::vector<float> y(3 * rows, test::poison_value());
    linear(w, x.data(), 3, y.data());
    EXPECT_GT(counts.calls.load(), before_linear) << "pack_weights/linear did not use the external parallel_for";
    std::vector<float> y_ref(3 * rows);
    ASSERT_TRUE(ref::linear(format::q4_0, wq.data(), rows, k, x.data(), k, 3, y_ref.data(), rows));
    if (selected_kernel("linear.q4_0.small").ends_with("__scalar")) {
      EXPECT_EQ(0, std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)));
    }
    for (float v : y) ASSERT_FALSE(test::is_poison(v));
  }

  // Restored: the built-in pool runs, the external function is not called.
  const size_t calls = counts.calls.load();
  std::fill(got.begin(), got.end(), 0);
  quantize_rows(format::q8_0, x.data(), rows, k, got.data(), got.size());
  EXPECT_EQ(counts.calls.load(), calls) << "set_parallel_for(nullptr, nullptr) did not restore the pool";
  EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), expected.size()));
}

TEST(ExternalParallelFor, CoversNestsInlineAndRethrows) {
  watchdog dog("ExternalParallelFor.CoversNestsInlineAndRethrows");
  external_counts counts;
  external_guard restore;
  set_parallel_for(serial_parallel_for, &counts);
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}})
    for (size_t grain : {size_t{1}, size_t{3}, size_t{64}, n + 1})
      expect_exact_cover(n, grain, "external, n=" + std::to_string(n) + " grain=" + std::to_string(grain));

  // A nested call runs inline: the external function is entered once.
  const size_t calls = counts.calls.load();
  std::atomic<size_t> inner_total{0};
  parallel_for(4, 1, [&](size_t, size_t) {
    parallel_for(10, 3, [&](size_t b, size_t e) { inner_total.fetch_add(e - b); });
  });
  EXPECT_EQ(counts.calls.load(), calls + 1);
  EXPECT_EQ(inner_total.load(), 40u);

  // A task's exception does not cross the C callback; parallel_for rethrows it.
  EXPECT_THROW(parallel_for(10, 1,
                            [](size_t b, size_t) {
                              if (b == 4) throw task_failure("external task failed");
                            }),
               task_failure);
  expect_exact_cover(100, 7, "external, after an exception");
}

TEST(ExternalParallelFor, OwnThreadsGiveThePoolsBits) {
  watchdog dog("ExternalParallelFor.OwnThreadsGiveThePoolsBits");
  thread_guard threads;
  set_num_threads(2);
  constexpr size_t n = 67, k = 512, m = 5;
  const auto wf = test::make_data(n * k, test::data_kind::gaussian, 7);
  const auto wq = test::ref_quantize(format::q4_k, wf, n, k);
  const auto x = test::make_data(m * k, test::data_kind::gaussian, 8);
  const PackedWeights w = pack_weights(format::q4_k, wq.data(), wq.size(), n, k);
  std::vector<float> pool_y(m * n), external_y(m * n, test::poison_value());
  linear(w, x.data(), m, pool_y.data());

  external_counts counts;
  external_guard restore;
  set_parallel_for(threaded_parallel_for, &counts);
  const PackedWeights w2 = pack_weights(format::q4_k, wq.data(), wq.size(), n, k);
  linear(w2, x.data(), m, external_y.data());
  EXPECT_GE(counts.calls.load(), 2u);
  EXPECT_EQ(0, std::memcmp(pool_y.data(), external_y.data(), pool_y.size() * sizeof(float)));
}

// ------------------------------------------------ thread-count invariance --

constexpr size_t invariance_thread_counts[] = {2, 3, 5};

template <typename T>
std::vector<unsigned char> bytes_of(const std::vector<T>& v) {
  std::vector<unsigned char> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

size_t count_poison(const std::vector<float>& v) {
  return static_cast<size_t>(std::count_if(v.begin(), v.end(), [](float f) { return test::is_poison(f); }));
}

/// Runs `produce` (returning the output bytes) at 1 thread and at each of
/// invariance_thread_counts; every result must equal the 1-thread one bit for bit.
template <typename Produce>
void expect_same_bits_for_any_thread_count(const std::string& what, Produce produce) {
  watchdog dog(what.c_str());
  thread_guard guard;
  set_num_threads(1);
  const std::vector<unsigned char> expected = produce();
  ASSERT_FALSE(expected.empty()) << what;
  for (size_t threads : invariance_thread_counts) {
    set_num_threads(threads);
    const std::vector<unsigned char> got = produce();
    ASSERT_EQ(got.size(), expected.size()) << what;
    size_t first = 0;
    while (first < got.size() && got[first] == expected[first]) ++first;
    EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), got.size()))
        << what << ": " << threads << " threads differ from 1 thread, first at byte " << first;
  }
}

TEST(ThreadInvariance, QuantizeRows) {
  constexpr size_t rows = 300, k = 512;
  const auto x = test::make_data(rows * k, test::data_kind::gaussian, 101);
  for (format fmt : {format::q8_0, format::q4_k}) {
    const std::string name(traits(fmt).name);
    const size_t bytes = quantized_size(fmt, rows, k);
    expect_same_bits_for_any_thread_count("quantize_rows " + name, [&] {
      std::vector<unsigned char> q(bytes, 0xAB);
      quantize_rows(fmt, x.data(), rows, k, q.data(), q.size());
      return q;
    });
    // And the bits are the oracle's.
    std::vector<unsigned char> q(bytes);
    quantize_rows(fmt, x.data(), rows, k, q.data(), q.size());
    if (selected_kernel("quantize." + name).ends_with("__scalar")) {
      EXPECT_EQ(0, std::memcmp(q.data(), test::ref_quantize(fmt, x, rows, k).data(), bytes)) << name;
    }
  }
}

TEST(ThreadInvariance, DequantizeRows) {
  constexpr size_t rows = 300, k = 512;
  const auto x = test::make_data(rows * k, test::data_kind::gaussian, 102);
  const auto q = test::ref_quantize(format::q6_k, x, rows, k);
  expect_same_bits_for_any_thread_count("dequantize_rows q6_k", [&] {
    std::vector<float> y(rows * k, test::poison_value());
    dequantize_rows(format::q6_k, q.data(), q.size(), rows, k, y.data());
    EXPECT_EQ(count_poison(y), 0u);
    return bytes_of(y);
  });
}

TEST(ThreadInvariance, LinearEveryWeightFormat) {
  constexpr size_t n = 67, k = 2 * 256;
  for (format fmt : {format::q4_0, format::q4_1, format::q8_0, format::q4_k, format::q6_k}) {
    const std::string name(traits(fmt).name);
    const auto wf = test::make_data(n * k, test::data_kind::gaussian, 200 + static_cast<uint32_t>(fmt));
    const auto wq = test::ref_quantize(fmt, wf, n, k);
    for (size_t m : {size_t{1}, size_t{5}, size_t{40}}) {
      const auto x = test::make_data(m * k, test::data_kind::gaussian, 300 + static_cast<uint32_t>(m));
      expect_same_bits_for_any_thread_count("linear " + name + " m=" + std::to_string(m), [&] {
        const PackedWeights w = pack_weights(fmt, wq.data(), wq.size(), n, k);
        std::vector<float> y(m * n, test::poison_value());
        linear(w, x.data(), m, y.data());
        EXPECT_EQ(count_poison(y), 0u) << name << " m=" << m << ": outputs left unwritten";
        return bytes_of(y);
      });
    }
  }
}

TEST(ThreadInvariance, GemmS8) {
  constexpr size_t n = 67, k = 300;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.1f);
  std::vector<int8_t> b(n * k);
  for (auto& v : b) v = static_cast<int8_t>(byte(rng) - 128);
  std::vector<float> col_scales(n);
  for (auto& s : col_scales) s = scale(rng);
  for (int8_type type : {int8_type::s8, int8_type::u8}) {
    for (size_t m : {size_t{1}, size_t{5}, size_t{40}}) {
      std::vector<uint8_t> a(m * k);
      for (auto& v : a) v = static_cast<uint8_t>(byte(rng));
      std::vector<float> row_scales(m);
      for (auto& s : row_scales) s = scale(rng);
      const std::string what =
          std::string("gemm_s8 ") + (type == int8_type::s8 ? "s8" : "u8") + " m=" + std::to_string(m);
      expect_same_bits_for_any_thread_count(what, [&] {
        std::vector<int32_t> c(m * n, 0x7badbad0);
        std::vector<float> y(m * n, test::poison_value());
        gemm_s8_problem p;
        p.a_type = type;
        p.a = a.data();
        p.b = b.data();
        p.m = m;
        p.n = n;
        p.k = k;
        p.c = c.data();
        p.y = y.data();
        p.row_scales = row_scales.data();
        p.col_scales = col_scales.data();
        gemm_s8(p);
        EXPECT_EQ(count_poison(y), 0u) << what;
        auto out = bytes_of(c);
        const auto yb = bytes_of(y);
        out.insert(out.end(), yb.begin(), yb.end());
        return out;
      });
    }
  }
}

TEST(ThreadInvariance, Attention) {
  attention_shape s;
  s.n_q = 9;
  s.n_kv = 21;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = 64;
  const auto q = test::make_data(s.n_q * s.n_heads * s.head_dim, test::data_kind::gaussian, 61);
  const auto k = test::make_data(s.n_kv * s.n_kv_heads * s.head_dim, test::data_kind::gaussian, 62);
  const auto v = test::make_data(s.n_kv * s.n_kv_heads * s.head_dim, test::data_kind::gaussian, 63);
  for (bool causal : {true, false}) {
    s.causal = causal;
    expect_same_bits_for_any_thread_count(std::string("attention causal=") + (causal ? "1" : "0"), [&] {
      std::vector<float> out(s.n_q * s.n_heads * s.head_dim, test::poison_value());
      attention(s, q.data(), k.data(), v.data(), out.data());
      EXPECT_EQ(count_poison(out), 0u);
      return bytes_of(out);
    });
  }
}

TEST(ThreadInvariance, ConcurrentLinearOnSharedWeights) {
  watchdog dog("ConcurrentLinearOnSharedWeights");
  thread_guard guard;
  set_num_threads(2);
  constexpr size_t n = 67, k = 512;
  const auto wf = test::make_data(n * k, test::data_kind::gaussian, 71);
  const auto wq = test::ref_quantize(format::q4_0, wf, n, k);
  const PackedWeights w = pack_weights(format::q4_0, wq.data(), wq.size(), n, k);

  struct job {
    size_t m;
    std::vector<float> x, expected, got;
    std::exception_ptr error;
  };
  std::vector<job> jobs;
  for (size_t m : {size_t{1}, size_t{5}, size_t{40}}) {
    job j;
    j.m = m;
    j.x = test::make_data(m * k, test::data_kind::gaussian, 80 + static_cast<uint32_t>(m));
    j.expected.assign(m * n, 0.0f);
    linear(w, j.x.data(), m, j.expected.data());
    jobs.push_back(std::move(j));
  }
  std::atomic<size_t> mismatches{0};
  std::vector<std::thread> threads;
  for (auto& j : jobs)
    threads.emplace_back([&w, &j, &mismatches] {
      try {
        for (int round = 0; round < 20; ++round) {
          j.got.assign(j.m * n, test::poison_value());
          linear(w, j.x.data(), j.m, j.got.data());
          if (std::memcmp(j.got.data(), j.expected.data(), j.got.size() * sizeof(float)) != 0)
            mismatches.fetch_add(1);
        }
      } catch (...) {
        j.error = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& j : jobs) {
    if (j.error) {
      try {
        std::rethrow_exception(j.error);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "linear m=" << j.m << " threw: " << e.what();
      }
    }
  }
  EXPECT_EQ(mismatches.load(), 0u) << "concurrent linear calls gave different bits than a single call";
}

TEST(ThreadPool, ReconfiguringFromInsideATaskIsAnError) {
  test::thread_guard guard;
  set_num_threads(2);
  std::atomic<int> errors{0};
  parallel_for(4, 1, [&](size_t, size_t) {
    try {
      set_num_threads(3);
    } catch (const Error& e) {
      if (e.code() == status::invalid_argument) ++errors;
    }
    try {
      set_parallel_for(nullptr, nullptr);
    } catch (const Error&) {
      ++errors;
    }
  });
  EXPECT_EQ(errors.load(), 8);
  EXPECT_EQ(num_threads(), 2u);
}

}  // namespace
}  // namespace lowbit
