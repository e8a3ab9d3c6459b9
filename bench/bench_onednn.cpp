// oneDNN's int8 matmul as a peer of lowbit's int8 GEMM, in the same process:
//   peer/onednn/<s8s8|u8s8>/M:<m>/N:<n>/K:<k>/threads:<t>
// computes C[M x N] (s32) = A[M x K] (s8 or u8) . B^T with B stored N x K (s8),
// the same problem, shapes and thread counts as lowbit's gemm/<s8s8|u8s8>/...,
// so lowbit-bench can give the ratio lowbit / oneDNN from one run.
//
// How it is made fair: oneDNN picks its own weight layout (format_tag::any) and
// the reorder into it runs once, untimed, as lowbit's packing does; the timed
// call is the matmul alone. Weights are flushed from the caches before every
// iteration, as lowbit's benchmarks do (--lowbit_warm keeps them hot in both).
// oneDNN's primitive is created for the thread count it runs on (Debian's
// build threads with OpenMP), and its implementation name ("brg:avx512_core_amx",
// ...) is the benchmark's label. Registered from a static initializer, like
// bench_limits.cpp, so bench_kernels.cpp needs no hook; built only with
// LOWBIT_ONEDNN=ON.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "lowbit/isa.hpp"
#include "lowbit/parallel.hpp"
#include "probes.hpp"

namespace lowbit::bench {
namespace {

// The linear-layer shapes of bench_kernels.cpp (N x K: q/o, k/v, gate/up, down
// of SmolLM2-135M, Qwen2-1.5B, Llama-8B) and its M values.
struct shape {
  size_t n, k;
};
constexpr shape shapes[] = {{576, 576},   {192, 576},   {1536, 576},  {576, 1536},   {1536, 1536},  {256, 1536},
                            {8960, 1536}, {1536, 8960}, {4096, 4096}, {1024, 4096}, {14336, 4096}, {4096, 14336}};
constexpr size_t m_values[] = {1, 4, 16, 64, 512};

bool warm_weights() {
  static const bool warm = [] {
    // bench_kernels.cpp takes --lowbit_warm off argv; /proc/self/cmdline still has it.
    std::string cmdline;
    if (FILE* f = std::fopen("/proc/self/cmdline", "rb")) {
      char buf[4096];
      size_t got;
      while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) cmdline.append(buf, got);
      std::fclose(f);
    }
    for (size_t pos = 0; pos < cmdline.size();) {
      const std::string_view arg(cmdline.c_str() + pos);
      if (arg == "--lowbit_warm") return true;
      pos += arg.size() + 1;
    }
    return false;
  }();
  return warm;
}

void bench_onednn_matmul(benchmark::State& state, bool a_unsigned, size_t m, size_t n, size_t k, size_t threads) {
  using namespace dnnl;
  using dt = memory::data_type;
  using tag = memory::format_tag;
  omp_set_num_threads(static_cast<int>(threads));
  set_num_threads(threads);  // the read probe below runs on lowbit's pool
  try {
    engine eng(engine::kind::cpu, 0);
    stream strm(eng);
    const memory::dim M = static_cast<memory::dim>(m), N = static_cast<memory::dim>(n), K = static_cast<memory::dim>(k);
    const memory::desc a_md({M, K}, a_unsigned ? dt::u8 : dt::s8, tag::ab);
    const memory::desc b_plain_md({K, N}, dt::s8, tag::ba);  // K x N logical, stored N x K
    const memory::desc b_any_md({K, N}, dt::s8, tag::any);
    const memory::desc c_md({M, N}, dt::s32, tag::ab);
    const matmul::primitive_desc pd(matmul::desc(a_md, b_any_md, c_md), eng);

    std::mt19937 rng(4);
    std::vector<uint8_t> a(m * k), b(n * k);
    for (auto& v : a) v = static_cast<uint8_t>(rng());
    for (auto& v : b) v = static_cast<uint8_t>(rng());
    memory a_mem(a_md, eng, a.data()), b_plain(b_plain_md, eng, b.data());
    memory b_mem(pd.weights_desc(), eng), c_mem(c_md, eng);
    const auto pack_start = std::chrono::steady_clock::now();
    if (pd.weights_desc() != b_plain_md) {
      reorder(b_plain, b_mem).execute(strm, b_plain, b_mem);
    } else {
      std::memcpy(b_mem.get_data_handle(), b.data(), b.size());
    }
    strm.wait();
    const double pack_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - pack_start).count();
    const matmul prim(pd);
    const std::unordered_map<int, memory> args{{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}};
    const size_t b_bytes = pd.weights_desc().get_size();
    prim.execute(strm, args);  // first call: oneDNN's own lazy set-up, untimed
    strm.wait();
    double seconds = 0;
    for (auto _ : state) {
      if (!warm_weights()) flush_cache(b_mem.get_data_handle(), b_bytes);
      const auto t0 = std::chrono::steady_clock::now();
      prim.execute(strm, args);
      strm.wait();
      const double dt_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      state.SetIterationTime(dt_s);
      seconds += dt_s;
    }
    const double calls = static_cast<double>(state.iterations());
    if (calls > 0 && seconds > 0) {
      const double gbps = static_cast<double>(n * k) * calls / seconds / 1e9;  // the s8 weights, as lowbit counts them
      state.counters["GOPS"] = 2.0 * static_cast<double>(m * n * k) * calls / seconds / 1e9;
      state.counters["GBps"] = gbps;
      const double probe = read_probe_gbps(n * k, !warm_weights());
      state.counters["probe_GBps"] = probe;
      state.counters["ratio_to_probe"] = gbps / probe;
      state.counters["pack_s"] = pack_s;
    }
    state.SetLabel(pd.impl_info_str());
  } catch (const dnnl::error& e) {
    state.SkipWithError((std::string("oneDNN: ") + e.what()).c_str());
  }
}

int register_onednn() {
  (void)detected_cpu();  // requests AMX tile permission before oneDNN looks for it
  const size_t all = num_threads();
  std::vector<size_t> thread_counts{1};
  if (all > 1) thread_counts.push_back(all);
  for (size_t t : thread_counts)
    for (bool a_unsigned : {false, true})
      for (const auto& s : shapes)
        for (size_t m : m_values) {
          const std::string name = std::string("peer/onednn/") + (a_unsigned ? "u8s8" : "s8s8") + "/M:" +
                                   std::to_string(m) + "/N:" + std::to_string(s.n) + "/K:" + std::to_string(s.k) +
                                   "/threads:" + std::to_string(t);
          benchmark::RegisterBenchmark(name.c_str(), bench_onednn_matmul, a_unsigned, m, s.n, s.k, t)
              ->UseManualTime()
              ->Unit(benchmark::kMicrosecond);
        }
  benchmark::AddCustomContext("onednn_version", std::to_string(dnnl_version()->major) + "." +
                                                    std::to_string(dnnl_version()->minor) + "." +
                                                    std::to_string(dnnl_version()->patch));
  return 0;
}

[[maybe_unused]] const int registered = register_onednn();

}  // namespace
}  // namespace lowbit::bench
