// Shared test helpers: deterministic data, ISA subsets, poison checks, bounds.
//
// Every generator takes an explicit seed so a failure reproduces exactly. The
// helpers that compare kernels with the oracle live here so each family's test
// file states only its shapes and bounds.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kernels/ref/dot.hpp"
#include "kernels/ref/quant.hpp"
#include "kernels/ukernel.hpp"
#include "lowbit/lowbit.hpp"

namespace lowbit::test {

/// Shapes of data a sweep feeds a kernel.
enum class data_kind { gaussian, zero_blocks, all_max, outliers, constant };
inline const char* data_kind_name(data_kind k) {
  switch (k) {
    case data_kind::gaussian: return "gaussian";
    case data_kind::zero_blocks: return "zero_blocks";
    case data_kind::all_max: return "all_max";
    case data_kind::outliers: return "outliers";
    case data_kind::constant: return "constant";
  }
  return "?";
}
inline constexpr data_kind all_data_kinds[] = {data_kind::gaussian, data_kind::zero_blocks, data_kind::all_max,
                                               data_kind::outliers, data_kind::constant};

/// n floats of the given kind; `block` is the quantization block length.
inline std::vector<float> make_data(size_t n, data_kind kind, uint32_t seed, size_t block = 32) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  switch (kind) {
    case data_kind::gaussian: break;
    case data_kind::zero_blocks:  // every other block is all zero
      for (size_t i = 0; i < n; ++i)
        if ((i / block) % 2 == 0) x[i] = 0.0f;
      break;
    case data_kind::all_max:  // blocks of +/- the same large magnitude
      for (size_t i = 0; i < n; ++i) x[i] = (rng() & 1) ? 3.0e4f : -3.0e4f;
      break;
    case data_kind::outliers:  // small values with one huge outlier per block
      for (size_t i = 0; i < n; ++i) x[i] *= 0.01f;
      for (size_t b = 0; b < n; b += block) x[b + rng() % std::min(block, n - b)] = (rng() & 1) ? 60.0f : -60.0f;
      break;
    case data_kind::constant:
      for (auto& v : x) v = 0.75f;
      break;
  }
  return x;
}

/// The attention shape of dense rows (q/out rows of heads * dim floats,
/// K/V rows of kv_heads * dim), with the default 1/sqrt(dim) scale.
inline attention_shape dense_shape(size_t n_q, size_t n_kv, size_t heads, size_t kv_heads, size_t dim, bool causal) {
  attention_shape s;
  s.n_q = n_q;
  s.n_kv = n_kv;
  s.n_heads = heads;
  s.n_kv_heads = kv_heads;
  s.head_dim = dim;
  s.causal = causal;
  s.scale = 1.0f / std::sqrt(static_cast<float>(dim));
  s.q_stride = s.out_stride = heads * dim;
  s.k_stride = s.v_stride = kv_heads * dim;
  return s;
}

/// Quantizes rows of f32 data with the oracle into GGUF rows.
inline std::vector<unsigned char> ref_quantize(format fmt, const std::vector<float>& x, size_t rows, size_t k) {
  const size_t row = row_bytes(traits(fmt), k);
  std::vector<unsigned char> out(rows * row);
  for (size_t r = 0; r < rows; ++r) ref::quantize_row(fmt, x.data() + r * k, out.data() + r * row, k);
  return out;
}

/// Dequantizes GGUF rows with the oracle.
inline std::vector<float> ref_dequantize(format fmt, const unsigned char* q, size_t rows, size_t k) {
  const size_t row = row_bytes(traits(fmt), k);
  std::vector<float> out(rows * k);
  for (size_t r = 0; r < rows; ++r) ref::dequantize_row(fmt, q + r * row, out.data() + r * k, k);
  return out;
}

/// Every subset of the available tiers that contains scalar, as the list of
/// tiers to disable (what LOWBIT_ISA_DISABLE would say) and the subset itself.
struct isa_subset {
  isa_set enabled;
  isa_set disabled;
};
inline std::vector<isa_subset> available_isa_subsets() {
  const isa_set avail = compiled_isas() & detected_cpu().isas;
  std::vector<isa> optional;
  for (isa t : avail.list())
    if (t != isa::scalar) optional.push_back(t);
  std::vector<isa_subset> out;
  for (uint32_t mask = 0; mask < (1u << optional.size()); ++mask) {
    isa_subset s;
    s.enabled.insert(isa::scalar);
    for (size_t i = 0; i < optional.size(); ++i) ((mask >> i) & 1u ? s.enabled : s.disabled).insert(optional[i]);
    out.push_back(s);
  }
  return out;
}

/// Restores default dispatch when a test scope ends.
struct isa_guard {
  ~isa_guard() { clear_isa_overrides(); }
};

/// Restores the thread count when a test scope ends.
struct thread_guard {
  size_t saved = num_threads();
  ~thread_guard() { set_num_threads(saved); }
};

/// Normalized mean squared error of got against want (squared error over
/// want's squared norm; the plain squared error where want is all zeros).
inline double nmse(std::span<const float> got, std::span<const float> want) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    ref += static_cast<double>(want[i]) * want[i];
  }
  return ref > 0 ? err / ref : err;
}

/// A sentinel float no kernel produces; checks compare bits.
inline constexpr uint32_t poison_bits = 0x7fbadbadu;
inline float poison_value() {
  float f;
  std::memcpy(&f, &poison_bits, sizeof f);
  return f;
}
inline bool is_poison(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b == poison_bits;
}

/// Per-element bound for a linear output against the double-precision product
/// of the dequantized operands: each block adds one f32 rounding to a running
/// sum, so the error is at most (blocks + 4) ulps of the sum of |terms|.
inline double linear_bound(size_t blocks, double abs_sum) {
  return static_cast<double>(blocks + 4) * std::ldexp(1.0, -23) * abs_sum + 1e-30;
}

}  // namespace lowbit::test

namespace lowbit::test {

/// The tiers for_each_tier walks: every tier this build and CPU have, or
/// those of them that LOWBIT_TEST_TIERS names (comma-separated). The emulated
/// run (ci/test_emulated.sh) names the tiers it exists for, the others being
/// tested natively at a fraction of the time; a named tier that is not
/// available fails the test rather than leaving it with nothing to check.
inline isa_set tiers_under_test() {
  const isa_set available = compiled_isas() & detected_cpu().isas;
  const char* named = std::getenv("LOWBIT_TEST_TIERS");
  if (named == nullptr || *named == '\0') return available;
  const isa_set wanted = parse_isa_list(named), lacking = wanted.without(available);
  EXPECT_TRUE(lacking.list().empty()) << "LOWBIT_TEST_TIERS names " << to_string(lacking)
                                      << ", which this CPU or build lacks (available: " << to_string(available) << ")";
  return wanted & available;
}

/// Runs `body(tier)` once per tier under test (tiers_under_test), with
/// dispatch capped at that tier, so each tier's kernels are the ones
/// selected in turn.
template <typename Body>
void for_each_tier(Body body) {
  isa_guard guard;
  for (isa t : tiers_under_test().list()) {
    set_isa_max(t);
    SCOPED_TRACE(std::string("isa cap ") + std::string(isa_name(t)));
    body(t);
  }
}

/// Whether the attention kernel named `kernel` (dispatch's name, as
/// selected_kernel gives it), serving q8_0 keys, rounds the query rows to
/// q8_0 and computes QKᵀ in integers on some path: the VNNI and amx tiers'
/// (amx's on its decode path), and the avx2 and avx512 tiers', which do
/// without VNNI (the sign trick; avx512's on its decode path only). The
/// paged-attention and C API tests both hold such kernels to the oracle on
/// the rounded rows.
inline bool integer_qk_kernel(const std::string& kernel) {
  for (const char* tier : {"__avx512_vnni", "__avx2_vnni", "__amx", "__avx2", "__avx512"})
    if (kernel.ends_with(tier)) return true;
  return false;
}

/// Whether that kernel computes in integers on its decode path only (at most
/// kernels::attention_decode_rows query rows per KV head) and its
/// prefill in f32 on the values as held: the avx512 tier's.
inline bool integer_qk_decode_only(const std::string& kernel) { return kernel.ends_with("__avx512"); }

/// Whether that kernel rounds the query rows in a call with `rows_per_head`
/// query rows per KV head (integer_qk_kernel, less avx512's prefill path).
inline bool integer_qk_on(const std::string& kernel, size_t rows_per_head) {
  return integer_qk_kernel(kernel) && !(integer_qk_decode_only(kernel) && rows_per_head > kernels::attention_decode_rows);
}

}  // namespace lowbit::test
