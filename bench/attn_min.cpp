// lowbit-attn-min: the fastest of many short timings of one decode step of
// paged attention, per token and KV head, for comparing two builds of an
// attention kernel on a shared machine; with --prefill, of one causal
// prefill of --ctx tokens instead, per call (and the int8 operations per
// second it did, counted as lowbit-bench-kernels' attn_prefill counts them).
//
//   lowbit-attn-min [--kv f16|q8_0] [--kv-heads N] [--group N] [--dim N] [--ctx N] [--threads N] [--runs N] [--cold] [--prefill]
//
// One sequence of --ctx random tokens as lowbit-bench-kernels builds it
// (bench/attn_setup.hpp: blocks of 64 tokens; d = 128 unless --dim), four
// query heads per KV head unless --group, one query token. Each run times enough calls
// to take about a millisecond and keeps their mean; the report is the
// fastest run and the median. A neighbour only ever adds time: on the
// machine this was written on it came in spells that made every run about
// 1.6 times as slow, some longer than an invocation, so compare the fastest
// of a few invocations. Outside the spells the fastest of 30 runs moved by
// 1-2% from one invocation to the next, where lowbit-bench-kernels'
// medians moved by 10-30% (its probe passes and cache flushes between
// iterations are the point there, not here). With a
// small --ctx the cache stays in L2 and the number is the kernel's
// compute; with a large one it streams from DRAM (some of it may still
// be in L3 from the call before). --cold flushes
// the cache's blocks from every cache level before each call (untimed) and
// times calls one at a time, as lowbit-bench-kernels does: every line then
// comes from DRAM, as in a decoder, whose other layers evict a layer's
// keys and values between its steps. LOWBIT_ISA_MAX picks the tier, as
// everywhere.
#include <lowbit/attention.hpp>
#include <lowbit/dispatch.hpp>
#include <lowbit/kv_cache.hpp>
#include <lowbit/parallel.hpp>

#include "attn_setup.hpp"
#include "probes.hpp"

#include "run/cli.hpp"  // decoder/run: the flag parsing every lowbit tool shares

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace {

constexpr const char* program = "lowbit-attn-min";
constexpr const char* usage_text =
    "usage: lowbit-attn-min [--kv f16|q8_0] [--kv-heads N] [--group N] [--dim N] [--ctx N] [--threads N] [--runs N] [--cold] [--prefill]\n";

/// A positive count of at most 2^24 given to the current flag.
size_t positive(lowbit::cli::arguments& args) {
  const std::string flag(args.current());
  const unsigned long long v = args.count(true);
  if (v > (1ull << 24)) args.fail(flag + " wants at most " + std::to_string(1ull << 24) + ", got " + std::to_string(v));
  return static_cast<size_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lowbit;
  format f = format::f16;
  size_t kv_heads = 8, group = 4, dim = bench::attn_dim, ctx = 4096, threads = 1, runs = 30;
  bool cold = false, prefill = false;
  cli::arguments args(argc, argv, program, usage_text);
  while (args.next()) {
    if (args.is("--kv")) {
      const std::string s = args.value();
      if (s == "f16") f = format::f16;
      else if (s == "q8_0") f = format::q8_0;
      else args.fail("--kv wants f16 or q8_0, got '" + s + "'");
    } else if (args.is("--kv-heads")) kv_heads = positive(args);
    else if (args.is("--group")) group = positive(args);
    else if (args.is("--dim")) dim = positive(args);
    else if (args.is("--ctx")) ctx = positive(args);
    else if (args.is("--threads")) threads = positive(args);
    else if (args.is("--runs")) runs = positive(args);
    else if (args.is("--cold")) cold = true;
    else if (args.is("--prefill")) prefill = true;
    else args.unknown();
  }
  try {
    set_num_threads(threads);
    const bench::attn_setup setup(f, f, ctx, kv_heads, dim);
    const size_t positions = prefill ? ctx : 1;
    const auto q = bench::random_floats(positions * group * kv_heads * dim, 7);
    std::vector<float> out(q.size());
    const paged_query pq{setup.seq, q.data(), positions, out.data(), 0, 0};
    const size_t heads = group * kv_heads;
    const auto step = [&] { attention(setup.cache, 0, heads, &pq, 1); };
    // Calls per run: about a millisecond's worth (one call when cold: the
    // flush goes before it, untimed).
    const auto blocks = setup.cache.view(setup.seq, 0).blocks;
    const auto flush = [&] {
      if (cold)
        for (const unsigned char* b : blocks) bench::flush_cache(b, setup.cache.block_bytes());
    };
    step();
    const auto t0 = std::chrono::steady_clock::now();
    step();
    const double one = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const size_t calls = cold ? 1 : std::max<size_t>(1, static_cast<size_t>(1e-3 / std::max(one, 1e-9)));
    std::vector<double> ns;
    for (size_t r = 0; r < runs; ++r) {
      flush();
      const auto a = std::chrono::steady_clock::now();
      for (size_t i = 0; i < calls; ++i) step();
      const double t = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - a).count();
      ns.push_back(t / static_cast<double>(calls * (prefill ? 1 : ctx * kv_heads)));
    }
    std::sort(ns.begin(), ns.end());
    const std::string name = f == format::f16 ? "f16" : "q8_0";
    if (prefill) {
      // QK^T and P.V over the causal triangle, two operations per multiply-add.
      const double ops = 4.0 * static_cast<double>(heads * dim) * static_cast<double>(ctx) * static_cast<double>(ctx + 1) / 2;
      std::printf("%s kernel %s prefill kv_heads %zu group %zu dim %zu len %zu threads %zu%s: fastest %.3f ms (%.1f GOPS), median %.3f ms (%zu runs of %zu calls)\n",
                  (name + "_" + name).c_str(), selected_kernel("attention." + name + "_" + name).c_str(), kv_heads, group, dim, ctx,
                  threads, cold ? " cold" : "", ns.front() * 1e-6, ops / ns.front(), ns[ns.size() / 2] * 1e-6, runs, calls);
      return 0;
    }
    std::printf("%s kernel %s kv_heads %zu group %zu dim %zu ctx %zu threads %zu%s: fastest %.2f ns, median %.2f ns per token and KV head (%zu runs of %zu calls)\n",
                (name + "_" + name).c_str(), selected_kernel("attention." + name + "_" + name).c_str(), kv_heads, group, dim, ctx,
                threads, cold ? " cold" : "", ns.front(), ns[ns.size() / 2], runs, calls);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
  return 0;
}
