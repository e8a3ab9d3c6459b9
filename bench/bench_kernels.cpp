// lowbit-bench-kernels: every registered kernel x tier over real model shapes.
//
// Benchmarks are registered at start-up from the kernel registry (the same
// .inc lists dispatch uses), one per kernel x shape x M x thread count:
//   gemm/<weights>/<isa>/M:<m>/N:<n>/K:<k>/threads:<t>   (weights: a format, or
//       s8s8 / u8s8 for the int8 GEMM with A s8 / u8 and B s8)
//   quantize/<format>/<isa>/M:<m>/K:<k>/threads:<t>
//   dequantize/<format>_<out>/<isa>/N:<n>/K:<k>/threads:<t>   (out: f32, f16, bf16)
//   attn_decode/<k>_<v>/<isa>/ctx:<n>/threads:<t>     one query token, 32 heads over 8 KV heads, d = 128
//   attn_prefill/<k>_<v>/<isa>/len:<n>/threads:<t>    causal prefill of n tokens, same heads
//   attn_prefill_baseline/f32_f32/len:<n>/threads:<t> the same with the score matrix materialised
// Each runs the public API with dispatch capped at the kernel's tier, so the
// kernel measured is the kernel named. Weights are cold by default (flushed
// from the caches before every iteration; --lowbit_warm keeps them hot). Each
// reports GOPS, GBps (weight bytes), probe_GBps (a plain read of the same
// bytes on the same threads: cold weights, a cold read timed between the
// benchmark's own iterations; warm ones, a hot read measured apart) and
// ratio_to_probe. GEMM benchmarks
// also report peak_GOPS, the int8 multiply-add peak of the kernel's tier on
// the same threads (bench/peak.hpp: vpdpbusd for the VNNI tiers, vpmaddubsw +
// vpmaddwd below them), and ratio_to_peak = GOPS / peak_GOPS; attention
// prefill does the same against the peak of the units its kernel runs on,
// timed between its iterations (attn_peak).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "dispatch/registry.hpp"
#include "kernels/ref/quant.hpp"
#include "lowbit/lowbit.hpp"
#include "attn_setup.hpp"
#include "peak.hpp"
#include "probes.hpp"

namespace lowbit::bench {
namespace {

bool warm_weights = false;

struct model_shape {
  const char* model;
  size_t n, k;
};
// N x K of the linear layers: q/o, k/v, gate/up, down.
constexpr model_shape shapes[] = {
    {"SmolLM2-135M", 576, 576},  {"SmolLM2-135M", 192, 576},   {"SmolLM2-135M", 1536, 576},
    {"SmolLM2-135M", 576, 1536}, {"Qwen2-1.5B", 1536, 1536},   {"Qwen2-1.5B", 256, 1536},
    {"Qwen2-1.5B", 8960, 1536},  {"Qwen2-1.5B", 1536, 8960},   {"Llama-8B", 4096, 4096},
    {"Llama-8B", 1024, 4096},    {"Llama-8B", 14336, 4096},    {"Llama-8B", 4096, 14336},
};
constexpr size_t m_values[] = {1, 4, 16, 64, 512};

/// n rows of k quantized weights: 64 distinct rows quantized, then repeated
/// (quantizing a 14336 x 4096 matrix with the scalar oracle would dominate).
std::vector<unsigned char> make_weights(format f, size_t n, size_t k) {
  const size_t distinct = std::min<size_t>(n, 64), row = row_bytes(traits(f), k);
  const auto x = random_floats(distinct * k, 1);
  std::vector<unsigned char> w(n * row);
  for (size_t r = 0; r < distinct; ++r) ref::quantize_row(f, x.data() + r * k, w.data() + r * row, k);
  for (size_t r = distinct; r < n; ++r) std::memcpy(w.data() + r * row, w.data() + (r % distinct) * row, row);
  return w;
}

/// What timed_loop measured: the kernel's seconds over all iterations and
/// each iteration's, and where a probe read between iterations, each pass's
/// seconds and the bytes it read.
struct timing {
  double seconds = 0;
  size_t probe_bytes = 0;
  std::vector<double> iterations;  ///< each iteration's seconds
  std::vector<double> probes;      ///< each probe pass's seconds (pass i right after iteration i)
};

/// A probe to time between a benchmark's iterations over the same bytes it
/// reads: only where those bytes are cold (a hot probe would evict them).
std::unique_ptr<read_probe> probe_between(size_t bytes, probe_pages pages = probe_pages::plain) {
  return warm_weights ? nullptr : std::make_unique<read_probe>(bytes, pages);
}

/// Times one call of `run` per iteration with manual timing; `before` runs
/// untimed first (the cache flush), and a cold pass of `probe`, if any,
/// untimed after.
template <typename Before, typename Run>
timing timed_loop(benchmark::State& state, Before before, Run run, read_probe* probe = nullptr) {
  timing t;
  for (auto _ : state) {
    before();
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(dt);
    t.seconds += dt;
    t.iterations.push_back(dt);
    if (probe) t.probes.push_back(probe->pass(true));
  }
  if (probe) t.probe_bytes = probe->bytes();
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// The median over iterations of iteration i's rate (`per_call` units over
/// its seconds, in G/s) over `rates[i]`, the rate of the probe or peak pass
/// paired with it; 0 with no pair.
double paired_ratio(const timing& t, double per_call, const std::vector<double>& rates) {
  std::vector<double> ratios;
  for (size_t i = 0; i < std::min(rates.size(), t.iterations.size()); ++i)
    if (rates[i] > 0 && t.iterations[i] > 0) ratios.push_back(per_call / t.iterations[i] / 1e9 / rates[i]);
  return median(ratios);
}

/// Sets GOPS, GBps, probe_GBps and ratio_to_probe from the measured time.
/// Where a probe was timed between the iterations, probe_GBps is the median
/// pass and ratio_to_probe the median over iterations of the iteration's
/// GB/s over the pass right after it (so a neighbour's burst moves both
/// sides of a pair, not the ratio); else the probe is read_probe_gbps (cold
/// or hot) over the same bytes, measured apart.
void report(benchmark::State& state, const timing& t, double ops_per_call, double bytes_per_call, bool cold) {
  const double calls = static_cast<double>(state.iterations());
  if (calls == 0 || t.seconds <= 0) return;
  const double gbps = bytes_per_call * calls / t.seconds / 1e9;
  state.counters["GOPS"] = ops_per_call * calls / t.seconds / 1e9;
  state.counters["GBps"] = gbps;
  std::vector<double> passes;  // GB/s of each probe pass
  for (double seconds : t.probes)
    passes.push_back(seconds > 0 ? static_cast<double>(t.probe_bytes) / seconds / 1e9 : 0.0);
  if (const double ratio = paired_ratio(t, bytes_per_call, passes); ratio > 0) {
    state.counters["probe_GBps"] = median(passes);
    state.counters["ratio_to_probe"] = ratio;
    return;
  }
  const double probe = read_probe_gbps(static_cast<size_t>(bytes_per_call), cold);
  state.counters["probe_GBps"] = probe;
  state.counters["ratio_to_probe"] = gbps / probe;
}

/// Sets peak_GOPS and ratio_to_peak against a peak of `peak` GOPS (skipped
/// when the CPU has none).
void report_peak_gops(benchmark::State& state, double peak) {
  if (!state.counters.count("GOPS") || peak <= 0) return;
  state.counters["peak_GOPS"] = peak;
  state.counters["ratio_to_peak"] = state.counters["GOPS"] / peak;
}

/// Sets peak_GOPS, the median of peak passes timed between the iterations
/// (peak_between; pass i right before iteration i), and ratio_to_peak, the
/// median over iterations of the iteration's GOPS over its pass's.
void report_peak_between(benchmark::State& state, const timing& t, double ops_per_call,
                         const std::vector<double>& passes) {
  const double ratio = paired_ratio(t, ops_per_call, passes);
  if (ratio <= 0) return;
  state.counters["peak_GOPS"] = median(passes);
  state.counters["ratio_to_peak"] = ratio;
}

/// Sets peak_GOPS and ratio_to_peak against probe `kind` on the same threads.
void report_peak(benchmark::State& state, peak_kind kind) { report_peak_gops(state, peak_gops(kind)); }

void bench_linear(benchmark::State& state, const detail::linear_entry* kernel, size_t m, size_t n, size_t k,
                  size_t threads) {
  set_num_threads(threads);
  set_isa_max(kernel->tier);
  const std::string op = "linear." + std::string(traits(kernel->weights).name) + "." +
                         detail::m_class_names[static_cast<int>(detail::classify_m(m))];
  if (selected_kernel(op) != kernel->name) {
    state.SkipWithError(("kernel does not serve this M class; dispatch picks " + selected_kernel(op)).c_str());
    clear_isa_overrides();
    return;
  }
  const auto w = make_weights(kernel->weights, n, k);
  const PackedWeights packed = pack_weights(kernel->weights, w.data(), w.size(), n, k);
  const auto x = random_floats(m * k, 2);
  std::vector<float> y(m * n);
  const auto probe = probe_between(w.size());
  const timing timed = timed_loop(
      state,
      [&] {
        if (!warm_weights)
          for (auto [data, size] : packed.buffers()) flush_cache(data, size);
      },
      [&] {
        linear(packed, x.data(), m, y.data());
        benchmark::DoNotOptimize(y.data());
      },
      probe.get());
  report(state, timed, 2.0 * m * n * k, static_cast<double>(w.size()), !warm_weights);
  report_peak(state, int8_peak_for(kernel->tier));
  state.counters["pack_s"] = packed.pack_seconds();
  clear_isa_overrides();
}

void bench_gemm_s8(benchmark::State& state, const detail::gemm_s8_entry* kernel, size_t m, size_t n, size_t k,
                   size_t threads) {
  set_num_threads(threads);
  set_isa_max(kernel->tier);
  const std::string op = std::string("gemm_s8.") + (kernel->a_type == int8_type::s8 ? "s8" : "u8") + "." +
                         detail::m_class_names[static_cast<int>(detail::classify_m(m))];
  if (selected_kernel(op) != kernel->name) {
    state.SkipWithError(("kernel does not serve this M class; dispatch picks " + selected_kernel(op)).c_str());
    clear_isa_overrides();
    return;
  }
  std::mt19937 rng(4);
  std::vector<int8_t> a(m * k), b(n * k);
  for (auto& v : a) v = static_cast<int8_t>(rng());
  for (auto& v : b) v = static_cast<int8_t>(rng());
  std::vector<int32_t> c(m * n);
  gemm_s8_problem p;
  p.a_type = kernel->a_type;
  p.a = a.data();
  p.b = b.data();
  p.m = m;
  p.n = n;
  p.k = k;
  p.c = c.data();
  const auto probe = probe_between(b.size());
  const timing timed = timed_loop(
      state,
      [&] {
        if (!warm_weights) flush_cache(b.data(), b.size());
      },
      [&] {
        gemm_s8(p);
        benchmark::DoNotOptimize(c.data());
      },
      probe.get());
  report(state, timed, 2.0 * m * n * k, static_cast<double>(b.size()), !warm_weights);
  report_peak(state, int8_peak_for(kernel->tier));
  clear_isa_overrides();
}

void bench_quantize(benchmark::State& state, const detail::quant_entry* kernel, size_t m, size_t k, size_t threads) {
  set_num_threads(threads);
  set_isa_max(kernel->tier);
  const auto x = random_floats(m * k, 3);
  std::vector<unsigned char> out(quantized_size(kernel->fmt, m, k));
  const timing timed = timed_loop(
      state, [] {},
      [&] {
        quantize_rows(kernel->fmt, x.data(), m, k, out.data(), out.size());
        benchmark::DoNotOptimize(out.data());
      });
  // Activations are hot: compare with a hot read of the same bytes.
  report(state, timed, static_cast<double>(m * k), static_cast<double>(m * k * sizeof(float)), false);
  clear_isa_overrides();
}

void bench_dequantize(benchmark::State& state, const detail::dequant_entry* kernel, format out, size_t n, size_t k,
                      size_t threads) {
  set_num_threads(threads);
  set_isa_max(kernel->tier);
  const auto w = make_weights(kernel->fmt, n, k);
  std::vector<unsigned char> y(n * k * (out == format::f32 ? 4 : 2));
  const auto probe = probe_between(w.size());
  const timing timed = timed_loop(
      state,
      [&] {
        if (!warm_weights) flush_cache(w.data(), w.size());
      },
      [&] {
        dequantize_rows(kernel->fmt, w.data(), w.size(), n, k, y.data(), out);
        benchmark::DoNotOptimize(y.data());
      },
      probe.get());
  report(state, timed, static_cast<double>(n * k), static_cast<double>(w.size()), !warm_weights);
  clear_isa_overrides();
}

// ------------------------------------------------------------ attention ----

constexpr size_t attn_heads = 32, attn_kv_heads = 8;  // attn_dim: attn_setup.hpp

/// Whether dispatch, capped at the kernel's tier, serves its (K, V) pair with
/// it; if not, marks the benchmark skipped (it would measure another kernel).
bool attn_kernel_selected(benchmark::State& state, const detail::attention_entry* kernel) {
  const std::string op =
      "attention." + std::string(traits(kernel->k_format).name) + "_" + std::string(traits(kernel->v_format).name);
  if (selected_kernel(op) == kernel->name) return true;
  state.SkipWithError(("dispatch picks " + selected_kernel(op) + " for " + op).c_str());
  clear_isa_overrides();
  return false;
}

/// The multiply-add peak that bounds an attention kernel on the same threads,
/// timed between the benchmark's iterations (peak_between). QKᵀ and P . V
/// are half the work each: in f32 FMAs of the tier's vector width, except
/// for q8_0 keys on the VNNI tiers, whose kernels run QKᵀ in int8
/// (vpdpbusd) and P . V too when V is q8_0, and on the avx2 tier, whose
/// q8_0-K kernels do the same with vpmaddubsw + vpmaddwd (the sign trick),
/// as the avx512 tier's do in decode (`decode`; their prefill is f32).
/// A kernel with both halves on one unit is bound by that
/// unit's peak; one with a half on each, by the time of both halves at their
/// peaks. The amx tier's kernel runs both products on the tile unit, which
/// has no probe here yet: it is held to the int8 vpdpbusd peak, as the
/// avx512_vnni kernel it replaces (its ratio is that kernel's speed-up over
/// it, not a fraction of the tile unit's peak).
class attn_peak {
 public:
  attn_peak(const detail::attention_entry& kernel, bool decode) {
    const bool vnni = kernel.tier == isa::avx2_vnni || kernel.tier == isa::avx512_vnni || kernel.tier == isa::amx;
    const bool integer =
        kernel.k_format == format::q8_0 && (vnni || kernel.tier == isa::avx2 || (decode && kernel.tier == isa::avx512));
    if (integer) int8_ = std::make_unique<peak_between>(int8_peak_for(kernel.tier));
    if (!integer || kernel.v_format != format::q8_0) fma_ = std::make_unique<peak_between>(fma_peak_for(kernel.tier));
  }
  void pass() {
    if (int8_) int8_->pass();
    if (fma_) fma_->pass();
  }
  /// GOPS of each pass: one unit's, or both halves' at their units' rates.
  std::vector<double> passes() const {
    if (!int8_ || !fma_) return (int8_ ? int8_ : fma_)->passes();
    const std::vector<double>&int8 = int8_->passes(), &fma = fma_->passes();
    if (fma.empty()) return int8;
    std::vector<double> both(int8.size());
    for (size_t i = 0; i < both.size(); ++i)
      both[i] = int8[i] > 0 && fma[i] > 0 ? 2.0 / (1.0 / int8[i] + 1.0 / fma[i]) : int8[i];
    return both;
  }
  /// The benchmark label naming the peak(s), "peak:<id>" or, with a half on
  /// each unit, "peak:<int8 id>+<fma id>" (peak_id): lowbit-bench's report
  /// names a row's ceiling from it rather than repeating this choice.
  std::string label() const {
    std::string label = "peak:";
    for (const auto* unit : {int8_.get(), fma_.get()}) {
      if (!unit) continue;
      if (label.size() > 5) label.append("+");
      label.append(peak_id(unit->kind()));
    }
    return label;
  }

 private:
  std::unique_ptr<peak_between> int8_, fma_;
};

void bench_attn_decode(benchmark::State& state, const detail::attention_entry* kernel, size_t ctx, size_t threads) {
  set_num_threads(threads);
  set_isa_max(kernel->tier);
  if (!attn_kernel_selected(state, kernel)) return;
  attn_setup setup(kernel->k_format, kernel->v_format, ctx, attn_kv_heads);
  const auto q = random_floats(attn_heads * attn_dim, 7);
  std::vector<float> out(attn_heads * attn_dim);
  paged_query pq{setup.seq, q.data(), 1, out.data(), 0, 0};
  const auto blocks = setup.cache.view(setup.seq, 0).blocks;
  const auto probe = probe_between(setup.kv_bytes(ctx), probe_pages::huge);  // as the cache's pool
  // Cold iterations end their untimed part with a pass of the kernel's own
  // vector work (attn_peak, about 5 ms), as prefill's iterations do and as
  // a decoder's attention follows its QKV projections. Without it the
  // timed call followed the read probe and the flush, milliseconds of no
  // vector arithmetic, and on a Zen 2 host its first milliseconds ran at
  // about 60% of the FMA rate (docs/attention.md, sixteenth section): an
  // f16 decode at 4096 tokens took 1.2 times as long as the same call in a
  // loop. The pass's rate is also the decode's compute ceiling: peak_GOPS
  // and ratio_to_peak say, beside ratio_to_probe, whether the call waits
  // for memory or for its arithmetic units. With warm caches (no pass
  // between iterations) the ceiling is the median of three passes first.
  attn_peak peak(*kernel, true);
  if (warm_weights)
    for (int i = 0; i < 3; ++i) peak.pass();
  const timing timed = timed_loop(
      state,
      [&] {
        if (warm_weights) return;
        for (const unsigned char* b : blocks) flush_cache(b, setup.cache.block_bytes());
        peak.pass();
      },
      [&] {
        attention(setup.cache, 0, attn_heads, &pq, 1);
        benchmark::DoNotOptimize(out.data());
      },
      probe.get());
  const double flops = 4.0 * attn_heads * attn_dim * static_cast<double>(ctx);
  report(state, timed, flops, static_cast<double>(setup.kv_bytes(ctx)), !warm_weights);
  if (warm_weights) report_peak_gops(state, median(peak.passes()));
  else report_peak_between(state, timed, flops, peak.passes());
  state.SetLabel(peak.label());
  clear_isa_overrides();
}

void bench_attn_prefill(benchmark::State& state, const detail::attention_entry* kernel, size_t len, size_t threads) {
  set_num_threads(threads);
  set_isa_max(kernel->tier);
  if (!attn_kernel_selected(state, kernel)) return;
  attn_setup setup(kernel->k_format, kernel->v_format, len, attn_kv_heads);
  const auto q = random_floats(len * attn_heads * attn_dim, 8);
  std::vector<float> out(q.size());
  paged_query pq{setup.seq, q.data(), len, out.data(), 0, 0};
  attn_peak peak(*kernel, false);
  const timing timed = timed_loop(
      state, [&] { peak.pass(); },
      [&] {
        attention(setup.cache, 0, attn_heads, &pq, 1);
        benchmark::DoNotOptimize(out.data());
      });
  // QK^T and PV over the causal triangle, 2 flops per multiply-add.
  const double flops = 4.0 * attn_heads * attn_dim * (static_cast<double>(len) * (len + 1) / 2);
  report(state, timed, flops, static_cast<double>(setup.kv_bytes(len)), false);
  report_peak_between(state, timed, flops, peak.passes());
  state.SetLabel(peak.label());
  clear_isa_overrides();
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, size_t d) {
  __m256 s = _mm256_setzero_ps();
  for (size_t i = 0; i < d; i += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}
__attribute__((target("avx2,fma"))) void axpy_avx2(float p, const float* v, float* y, size_t d) {
  const __m256 pv = _mm256_set1_ps(p);
  for (size_t i = 0; i < d; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(y + i)));
}

/// Causal prefill the textbook way, in f32 with AVX2 dot products: per head,
/// the whole len x len score matrix, a softmax per row, then P . V.
void bench_attn_baseline(benchmark::State& state, size_t len, size_t threads) {
  if (!detected_cpu().isas.contains(isa::avx2)) {
    state.SkipWithError("the baseline needs AVX2");
    return;
  }
  set_num_threads(threads);
  const size_t q_row = attn_heads * attn_dim, kv_row = attn_kv_heads * attn_dim, group = attn_heads / attn_kv_heads;
  const auto q = random_floats(len * q_row, 8), k = random_floats(len * kv_row, 5), v = random_floats(len * kv_row, 6);
  std::vector<float> out(len * q_row);
  const float scale = 1.0f / std::sqrt(static_cast<float>(attn_dim));
  peak_between peak(peak_kind::f32_fma256);
  const timing timed = timed_loop(
      state, [&] { peak.pass(); },
      [&] {
        parallel_for(attn_heads, 1, [&](size_t h0, size_t h1) {
          std::vector<float> scores(len * len);
          for (size_t h = h0; h < h1; ++h) {
            const size_t g = h / group;
            for (size_t i = 0; i < len; ++i)
              for (size_t j = 0; j <= i; ++j)
                scores[i * len + j] = dot_avx2(q.data() + i * q_row + h * attn_dim, k.data() + j * kv_row + g * attn_dim, attn_dim) * scale;
            for (size_t i = 0; i < len; ++i) {
              float* srow = scores.data() + i * len;
              const float mx = *std::max_element(srow, srow + i + 1);
              float sum = 0;
              for (size_t j = 0; j <= i; ++j) sum += srow[j] = std::exp(srow[j] - mx);
              float* o = out.data() + i * q_row + h * attn_dim;
              std::fill(o, o + attn_dim, 0.0f);
              for (size_t j = 0; j <= i; ++j) axpy_avx2(srow[j] / sum, v.data() + j * kv_row + g * attn_dim, o, attn_dim);
            }
          }
        });
        benchmark::DoNotOptimize(out.data());
      });
  const double flops = 4.0 * attn_heads * attn_dim * (static_cast<double>(len) * (len + 1) / 2);
  report(state, timed, flops, static_cast<double>(len * kv_row * 8), false);
  report_peak_between(state, timed, flops, peak.passes());
}
#else
void bench_attn_baseline(benchmark::State& state, size_t, size_t) { state.SkipWithError("the baseline is x86-only"); }
#endif

/// Wraps a benchmark body so a lowbit::Error skips that benchmark with its
/// message instead of ending the whole run.
template <typename Body, typename... Args>
void guarded(benchmark::State& state, Body body, Args... args) {
  try {
    body(state, args...);
  } catch (const Error& e) {
    clear_isa_overrides();
    state.SkipWithError(e.what());
  }
}

/// The compute ceilings themselves, as rows of their own: peak/<probe>/threads:<t>.
void bench_peak(benchmark::State& state, peak_kind kind, size_t threads) {
  set_num_threads(threads);
  double gops = 0;
  for (auto _ : state) gops = peak_gops(kind);
  state.counters["GOPS"] = gops;
}

void register_all() {
  const auto& reg = detail::registry();
  const isa_set avail = compiled_isas() & detected_cpu().isas;
  const size_t all_threads = num_threads();
  std::vector<size_t> thread_counts{1};
  if (all_threads > 1) thread_counts.push_back(all_threads);
  for (size_t t : thread_counts) {
    for (const auto& kernel : reg.linear) {
      if (!avail.contains(kernel.tier)) continue;
      for (const auto& s : shapes) {
        if (s.k % traits(kernel.weights).block_length) continue;
        for (size_t m : m_values) {
          const auto mc = detail::m_class_bit(detail::classify_m(m));
          if (!(kernel.m_classes & mc)) continue;
          const std::string name = "gemm/" + std::string(traits(kernel.weights).name) + "/" +
                                   std::string(isa_name(kernel.tier)) + "/M:" + std::to_string(m) + "/N:" +
                                   std::to_string(s.n) + "/K:" + std::to_string(s.k) + "/threads:" + std::to_string(t);
          benchmark::RegisterBenchmark(name.c_str(), guarded<decltype(&bench_linear), const detail::linear_entry*, size_t, size_t, size_t, size_t>, &bench_linear, &kernel, m, s.n, s.k, t)
              ->UseManualTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
    for (peak_kind kind : {peak_kind::int8_vnni512, peak_kind::int8_vnni256, peak_kind::int8_madd512,
                           peak_kind::int8_madd256, peak_kind::f32_fma512, peak_kind::f32_fma256}) {
      if (!peak_available(kind)) continue;  // this CPU lacks the instructions
      const std::string name = std::string("peak/") + peak_id(kind) + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), bench_peak, kind, t)->Iterations(1);
    }
    for (const auto& kernel : reg.gemm_s8) {
      if (!avail.contains(kernel.tier)) continue;
      for (const auto& s : shapes) {
        for (size_t m : m_values) {
          const auto mc = detail::m_class_bit(detail::classify_m(m));
          if (!(kernel.m_classes & mc)) continue;
          const std::string name = std::string("gemm/") + (kernel.a_type == int8_type::s8 ? "s8s8" : "u8s8") + "/" +
                                   std::string(isa_name(kernel.tier)) + "/M:" + std::to_string(m) + "/N:" +
                                   std::to_string(s.n) + "/K:" + std::to_string(s.k) + "/threads:" + std::to_string(t);
          benchmark::RegisterBenchmark(name.c_str(), guarded<decltype(&bench_gemm_s8), const detail::gemm_s8_entry*, size_t, size_t, size_t, size_t>, &bench_gemm_s8, &kernel, m, s.n, s.k, t)
              ->UseManualTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
    for (const auto& kernel : reg.attention) {
      if (!avail.contains(kernel.tier)) continue;
      const bool f16 = kernel.k_format == format::f16 && kernel.v_format == format::f16;
      const bool q8 = kernel.k_format == format::q8_0 && kernel.v_format == format::q8_0;
      if (!f16 && !q8) continue;
      const std::string kv = std::string(f16 ? "f16_f16" : "q8_0_q8_0") + "/" + std::string(isa_name(kernel.tier));
      for (size_t ctx : {512, 4096, 16384}) {
        const std::string name = "attn_decode/" + kv + "/ctx:" + std::to_string(ctx) + "/threads:" + std::to_string(t);
        benchmark::RegisterBenchmark(name.c_str(), guarded<decltype(&bench_attn_decode), const detail::attention_entry*, size_t, size_t>, &bench_attn_decode, &kernel, ctx, t)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
      for (size_t len : {512, 2048}) {
        const std::string name = "attn_prefill/" + kv + "/len:" + std::to_string(len) + "/threads:" + std::to_string(t);
        benchmark::RegisterBenchmark(name.c_str(), guarded<decltype(&bench_attn_prefill), const detail::attention_entry*, size_t, size_t>, &bench_attn_prefill, &kernel, len, t)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
    for (size_t len : {512, 2048}) {
      const std::string name = "attn_prefill_baseline/f32_f32/len:" + std::to_string(len) + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), guarded<decltype(&bench_attn_baseline), size_t, size_t>, &bench_attn_baseline, len, t)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
    for (const auto& kernel : reg.quantize) {
      if (!avail.contains(kernel.tier) || !traits(kernel.fmt).is_quantized) continue;
      for (size_t k : {576, 4096, 14336}) {
        if (k % traits(kernel.fmt).block_length) continue;
        for (size_t m : {1, 64}) {
          const std::string name = "quantize/" + std::string(traits(kernel.fmt).name) + "/" +
                                   std::string(isa_name(kernel.tier)) + "/M:" + std::to_string(m) +
                                   "/K:" + std::to_string(k) + "/threads:" + std::to_string(t);
          benchmark::RegisterBenchmark(name.c_str(), guarded<decltype(&bench_quantize), const detail::quant_entry*, size_t, size_t, size_t>, &bench_quantize, &kernel, m, k, t)->UseManualTime();
        }
      }
    }
    for (const auto& kernel : reg.dequantize) {
      if (!avail.contains(kernel.tier) || !traits(kernel.fmt).is_weight) continue;
      for (auto [n, k] : {std::pair<size_t, size_t>{576, 576}, {4096, 4096}}) {
        if (k % traits(kernel.fmt).block_length) continue;
        for (format out : {format::f32, format::f16, format::bf16}) {
          const std::string name = "dequantize/" + std::string(traits(kernel.fmt).name) + "_" +
                                   std::string(traits(out).name) + "/" + std::string(isa_name(kernel.tier)) +
                                   "/N:" + std::to_string(n) + "/K:" + std::to_string(k) +
                                   "/threads:" + std::to_string(t);
          benchmark::RegisterBenchmark(name.c_str(), guarded<decltype(&bench_dequantize), const detail::dequant_entry*, format, size_t, size_t, size_t>, &bench_dequantize, &kernel, out, n, k, t)->UseManualTime();
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit::bench

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--lowbit_warm") == 0) {
      lowbit::bench::warm_weights = true;
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      --i;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    lowbit::bench::register_all();
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "lowbit-bench-kernels: %s\n", e.what());
    return 2;
  }
  benchmark::AddCustomContext("lowbit_version", lowbit::version());
  benchmark::AddCustomContext("lowbit_enabled_isas", lowbit::to_string(lowbit::enabled_isas()));
  benchmark::AddCustomContext("lowbit_weights", lowbit::bench::warm_weights ? "warm" : "cold");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
