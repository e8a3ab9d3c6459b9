// The public C++ API: validation, then dispatch onto the pool.
//
// Every entry point checks its arguments completely before writing anything,
// so a bad call leaves the caller's buffers untouched. Work is split so that
// each output element is computed by one task with a fixed reduction order:
// results are bit-identical for any thread count.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "dispatch/checks.hpp"
#include "dispatch/registry.hpp"
#include "dispatch/thresholds.hpp"
#include "lowbit/lowbit.hpp"

namespace lowbit {

using namespace detail;

namespace {

const format_traits& checked_traits(format f, const char* fn) {
  const format_traits* t = find_format(f);
  if (!t) throw Error(status::unsupported, std::string(fn) + ": unknown format code " +
                                               std::to_string(static_cast<uint32_t>(f)));
  return *t;
}

void require_whole_blocks(const format_traits& t, size_t k, const char* fn) {
  require(k % t.block_length == 0, fn,
          "k=" + std::to_string(k) + " is not a multiple of the " + std::string(t.name) + " block length " +
              std::to_string(t.block_length));
}

size_t checked_mul(size_t a, size_t b, const char* fn) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r)) invalid(std::string(fn) + ": size overflows");
  return r;
}

/// Rows of the matrix per pool task, so that each task is a few KiB of work.
size_t rows_per_task(size_t row_elements) { return std::max<size_t>(1, 16384 / std::max<size_t>(row_elements, 1)); }

/// An over-aligned byte buffer (64 bytes: one cache line, one ZMM register).
struct aligned_buffer {
  unsigned char* data = nullptr;
  size_t size = 0;
  explicit aligned_buffer(size_t n) : size(n) {
    data = static_cast<unsigned char*>(::operator new(std::max<size_t>(n, 1), std::align_val_t(64)));
  }
  aligned_buffer(aligned_buffer&& o) noexcept : data(o.data), size(o.size) { o.data = nullptr; }
  aligned_buffer& operator=(aligned_buffer&&) = delete;
  ~aligned_buffer() {
    if (data) ::operator delete(data, std::align_val_t(64));
  }
};

/// Runs fn(n0, n1) on the pool over column ranges covering [0, n): each at
/// least min_columns_per_task wide and a multiple of the kernel's tile width
/// `nr`, so a range never splits a tile.
template <typename Fn>
void for_each_column_chunk(size_t n, int nr_field, Fn fn, size_t min_columns = min_columns_per_task) {
  const size_t nr = static_cast<size_t>(std::max(nr_field, 1));
  const size_t cols = (std::max({min_columns, min_columns_per_task, nr}) + nr - 1) / nr * nr;
  parallel_for((n + cols - 1) / cols, 1, [&](size_t begin, size_t end) {
    for (size_t t = begin; t < end; ++t) fn(t * cols, std::min(n, (t + 1) * cols));
  });
}

/// Fills the per-block facts of one quantized activation row (see linear_args).
void describe_activations(format fmt, const unsigned char* row, size_t k, float* scale, float* offset,
                          int32_t* sum32) {
  auto sum_of = [](const int8_t* q, size_t n) {
    int32_t s = 0;
    for (size_t i = 0; i < n; ++i) s += q[i];
    return s;
  };
  if (fmt == format::q8_k) {
    const auto* b = reinterpret_cast<const block_q8_k*>(row);
    for (size_t i = 0; i < k / qk_k; ++i) {
      scale[i] = b[i].d;
      for (size_t j = 0; j < qk_k / 32; ++j) sum32[i * 8 + j] = b[i].bsums[2 * j] + b[i].bsums[2 * j + 1];
    }
  } else if (fmt == format::q8_1) {
    const auto* b = reinterpret_cast<const block_q8_1*>(row);
    for (size_t i = 0; i < k / qk8_1; ++i) {
      scale[i] = fp16_to_fp32(b[i].d);
      offset[i] = fp16_to_fp32(b[i].s);
      sum32[i] = sum_of(b[i].qs, qk8_1);
    }
  } else {
    const auto* b = reinterpret_cast<const block_q8_0*>(row);
    for (size_t i = 0; i < k / qk8_0; ++i) {
      scale[i] = fp16_to_fp32(b[i].d);
      sum32[i] = sum_of(b[i].qs, qk8_0);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- quant -----

size_t quantized_size(format fmt, size_t rows, size_t k) {
  const format_traits& t = checked_traits(fmt, "quantized_size");
  require_whole_blocks(t, k, "quantized_size");
  return checked_mul(rows, row_bytes(t, k), "quantized_size");
}

void quantize_rows(format fmt, const float* x, size_t rows, size_t k, void* dst, size_t dst_bytes, size_t ldx) {
  const char* fn = "quantize_rows";
  const format_traits& t = checked_traits(fmt, fn);
  if (ldx == 0) ldx = k;
  require_whole_blocks(t, k, fn);
  require(ldx >= k, fn, "ldx=" + std::to_string(ldx) + " is smaller than k=" + std::to_string(k));
  const size_t need = quantized_size(fmt, rows, k);
  require(dst_bytes >= need, fn,
          "destination holds " + std::to_string(dst_bytes) + " bytes, " + std::to_string(need) + " are needed");
  if (rows == 0 || k == 0) return;
  require(x != nullptr && dst != nullptr, fn, "x and dst must not be null");
  if (fmt == format::f32) {
    for (size_t r = 0; r < rows; ++r) std::copy_n(x + r * ldx, k, static_cast<float*>(dst) + r * k);
    return;
  }
  const quant_entry* kernel = current_table().quantize[format_slot(fmt)];
  if (!kernel) throw Error(status::unsupported, std::string(fn) + ": no quantize kernel for " + std::string(t.name));
  const size_t row = row_bytes(t, k);
  parallel_for(rows, rows_per_task(k), [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) kernel->fn(x + r * ldx, static_cast<unsigned char*>(dst) + r * row, k);
  });
}

namespace {
/// The checks both dequantize_rows overloads make; returns false when there
/// is nothing to do. Fills in ldy = k when it is 0.
bool check_dequantize(const format_traits& t, format fmt, const void* src, size_t src_bytes, size_t rows, size_t k,
                      const void* y, size_t& ldy, const char* fn) {
  if (ldy == 0) ldy = k;
  require_whole_blocks(t, k, fn);
  require(ldy >= k, fn, "ldy=" + std::to_string(ldy) + " is smaller than k=" + std::to_string(k));
  const size_t need = quantized_size(fmt, rows, k);
  require(src_bytes >= need,
          fn, "source holds " + std::to_string(src_bytes) + " bytes, " + std::to_string(need) + " are needed");
  if (rows == 0 || k == 0) return false;
  require(src != nullptr && y != nullptr, fn, "src and y must not be null");
  return true;
}
}  // namespace

void dequantize_rows(format fmt, const void* src, size_t src_bytes, size_t rows, size_t k, float* y, size_t ldy) {
  const char* fn = "dequantize_rows";
  const format_traits& t = checked_traits(fmt, fn);
  if (!check_dequantize(t, fmt, src, src_bytes, rows, k, y, ldy, fn)) return;
  if (fmt == format::f32) {
    for (size_t r = 0; r < rows; ++r) std::copy_n(static_cast<const float*>(src) + r * k, k, y + r * ldy);
    return;
  }
  const dequant_entry* kernel = current_table().dequantize[format_slot(fmt)];
  if (!kernel) throw Error(status::unsupported, std::string(fn) + ": no dequantize kernel for " + std::string(t.name));
  const size_t row = row_bytes(t, k);
  parallel_for(rows, rows_per_task(k), [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) kernel->fn(static_cast<const unsigned char*>(src) + r * row, y + r * ldy, k);
  });
}

void dequantize_rows(format fmt, const void* src, size_t src_bytes, size_t rows, size_t k, void* y, format out,
                     size_t ldy) {
  const char* fn = "dequantize_rows";
  const format_traits& t = checked_traits(fmt, fn);
  if (out != format::f32 && out != format::f16 && out != format::bf16) {
    const format_traits* o = find_format(out);
    invalid(std::string(fn) + ": output format " +
            (o ? std::string(o->name) : "code " + std::to_string(static_cast<uint32_t>(out))) +
            " is not supported; expected f32, f16 or bf16");
  }
  if (out == format::f32) return dequantize_rows(fmt, src, src_bytes, rows, k, static_cast<float*>(y), ldy);
  if (!check_dequantize(t, fmt, src, src_bytes, rows, k, y, ldy, fn)) return;
  const auto* in = static_cast<const unsigned char*>(src);
  auto* dst = static_cast<uint16_t*>(y);  // f16 and bf16 are both 16-bit
  const size_t row = row_bytes(t, k);
  if (fmt == out) {  // same 16-bit format: the rows as they are, NaN payloads included
    for (size_t r = 0; r < rows; ++r) std::memcpy(dst + r * ldy, in + r * row, row);
    return;
  }
  // Each row: the dispatched dequantizer into an f32 scratch row (f32 sources
  // are read in place), then the dispatched f32 -> f16/bf16 converter, which is
  // the quantize kernel of the output format.
  const dispatch_table& table = current_table();
  const dequant_entry* dequant = fmt == format::f32 ? nullptr : table.dequantize[format_slot(fmt)];
  if (fmt != format::f32 && !dequant)
    throw Error(status::unsupported, std::string(fn) + ": no dequantize kernel for " + std::string(t.name));
  const quant_entry* convert = table.quantize[format_slot(out)];
  if (!convert)
    throw Error(status::unsupported, std::string(fn) + ": no f32 -> " + std::string(find_format(out)->name) +
                                         " conversion kernel");
  const size_t scratch_bytes = dequant ? checked_mul(k, sizeof(float), fn) : 0;
  parallel_for(rows, rows_per_task(k), [&](size_t begin, size_t end) {
    aligned_buffer scratch(scratch_bytes);  // once per task, not per row
    auto* f32 = reinterpret_cast<float*>(scratch.data);
    for (size_t r = begin; r < end; ++r) {
      const float* x = reinterpret_cast<const float*>(in + r * row);
      if (dequant) {
        dequant->fn(in + r * row, f32, k);
        x = f32;
      }
      convert->fn(x, dst + r * ldy, k);
    }
  });
}

// ---------------------------------------------------------------- linear ----

struct PackedWeights::impl {
  format fmt = format::q4_0;
  size_t n = 0, k = 0;
  double seconds = 0;
  struct packing {
    const packer_entry* packer;
    aligned_buffer buffer;
  };
  std::vector<packing> packings;

  const packing* find(const packer_entry* p) const {
    for (const auto& x : packings)
      if (x.packer == p) return &x;
    return nullptr;
  }
};

PackedWeights::PackedWeights() : impl_(std::make_unique<impl>()) {}
PackedWeights::~PackedWeights() = default;
PackedWeights::PackedWeights(PackedWeights&&) noexcept = default;
PackedWeights& PackedWeights::operator=(PackedWeights&&) noexcept = default;
format PackedWeights::weights() const { return impl_->fmt; }
size_t PackedWeights::n() const { return impl_->n; }
size_t PackedWeights::k() const { return impl_->k; }
double PackedWeights::pack_seconds() const { return impl_->seconds; }
size_t PackedWeights::packed_bytes() const {
  size_t total = 0;
  for (const auto& p : impl_->packings) total += p.buffer.size;
  return total;
}
std::vector<std::string> PackedWeights::packers() const {
  std::vector<std::string> names;
  for (const auto& p : impl_->packings) names.emplace_back(p.packer->name);
  return names;
}
std::vector<std::pair<const void*, size_t>> PackedWeights::buffers() const {
  std::vector<std::pair<const void*, size_t>> out;
  for (const auto& p : impl_->packings) out.emplace_back(p.buffer.data, p.buffer.size);
  return out;
}
const PackedWeights::impl& PackedWeights::internals() const { return *impl_; }

PackedWeights pack_weights(format fmt, const void* data, size_t data_bytes, size_t n, size_t k) {
  const char* fn = "pack_weights";
  const format_traits& t = checked_traits(fmt, fn);
  if (!t.is_weight)
    throw Error(status::unsupported, std::string(fn) + ": " + std::string(t.name) +
                                         " is not a weight format; expected q4_0, q4_1, q8_0, q4_k or q6_k");
  require(n > 0 && k > 0, fn, "n and k must be positive (got n=" + std::to_string(n) + ", k=" + std::to_string(k) + ")");
  require_whole_blocks(t, k, fn);
  const size_t need = quantized_size(fmt, n, k);
  require(data_bytes >= need, fn,
          "weights hold " + std::to_string(data_bytes) + " bytes, " + std::to_string(need) + " are needed for " +
              std::to_string(n) + " rows of " + std::to_string(k) + " " + std::string(t.name));
  require(data != nullptr, fn, "data must not be null");

  const auto start = std::chrono::steady_clock::now();
  const dispatch_table& table = current_table();
  PackedWeights out;
  out.impl_->fmt = fmt;
  out.impl_->n = n;
  out.impl_->k = k;
  const size_t slot = format_slot(fmt);
  for (int c = 0; c < m_class_count; ++c) {
    const packer_entry* p = table.linear_packer[slot][c];
    if (!p || out.impl_->find(p)) continue;
    aligned_buffer buffer(p->packed_size(fmt, n, k));
    const size_t grain = std::max<size_t>(1, rows_per_task(k));
    parallel_for(n, grain, [&](size_t begin, size_t end) { p->pack(fmt, data, n, k, buffer.data, begin, end); });
    out.impl_->packings.push_back({p, std::move(buffer)});
  }
  if (out.impl_->packings.empty())
    throw Error(status::unsupported, std::string(fn) + ": no linear kernel for " + std::string(t.name));
  out.impl_->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

void linear(const PackedWeights& w, const float* x, size_t m, float* y, size_t ldx, size_t ldy) {
  const char* fn = "linear";
  const auto& pw = w.internals();
  require(!pw.packings.empty(), fn, "the weights are empty (moved from, or never packed)");
  if (ldx == 0) ldx = pw.k;
  if (ldy == 0) ldy = pw.n;
  require(ldx >= pw.k, fn, "ldx=" + std::to_string(ldx) + " is smaller than k=" + std::to_string(pw.k));
  require(ldy >= pw.n, fn, "ldy=" + std::to_string(ldy) + " is smaller than n=" + std::to_string(pw.n));
  if (m == 0) return;
  require(x != nullptr && y != nullptr, fn, "x and y must not be null");

  const dispatch_table& table = current_table();
  const size_t slot = format_slot(pw.fmt);
  const m_class cls = classify_m(m);
  const linear_entry* kernel = table.linear[slot][static_cast<int>(cls)];
  const packer_entry* packer = table.linear_packer[slot][static_cast<int>(cls)];
  const auto* packing = kernel ? pw.find(packer) : nullptr;
  if (!packing)
    throw Error(status::invalid_argument,
                std::string(fn) + ": dispatch now selects " + (kernel ? kernel->name : "no kernel") + " (packer " +
                    (packer ? packer->name : "none") + "), but these weights were packed as " +
                    pw.packings.front().packer->name + "; ISA overrides changed after packing, pack the weights again");

  // Quantize the activations to the paired format, one row per task.
  const format_traits& at = *find_format(kernel->activations);
  const size_t x_row = row_bytes(at, pw.k);
  aligned_buffer xq(checked_mul(m, x_row, fn));
  const quant_entry* quant = table.quantize[format_slot(kernel->activations)];
  if (!quant) throw Error(status::unsupported, std::string(fn) + ": no quantize kernel for " + std::string(at.name));
  const size_t x_blocks = pw.k / at.block_length, sums = pw.k / 32;
  std::vector<float> x_scale(m * x_blocks), x_offset(at.id == format::q8_1 ? m * x_blocks : 0);
  std::vector<int32_t> x_sum32(m * sums);
  parallel_for(m, rows_per_task(pw.k), [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      quant->fn(x + r * ldx, xq.data + r * x_row, pw.k);
      describe_activations(at.id, xq.data + r * x_row, pw.k, x_scale.data() + r * x_blocks,
                           x_offset.empty() ? nullptr : x_offset.data() + r * x_blocks, x_sum32.data() + r * sums);
    }
  });

  const kernels::linear_args args{packing->buffer.data, pw.n,   pw.k,           xq.data,
                                  x_row,                m,      y,              ldy,
                                  x_scale.data(),       x_offset.empty() ? nullptr : x_offset.data(),
                                  x_sum32.data()};
  // Large M: one wide column range per thread, as the large-M kernels lay the
  // activations out again once per call; GEMV and small M keep fine chunks.
  const size_t chunk = cls == m_class::large ? (pw.n + num_threads() - 1) / num_threads() : min_columns_per_task;
  for_each_column_chunk(pw.n, kernel->nr, [&](size_t n0, size_t n1) { kernel->fn(args, n0, n1); }, chunk);
}

// ---------------------------------------------------------------- gemm_s8 ---

void gemm_s8(const gemm_s8_problem& p) {
  const char* fn = "gemm_s8";
  const size_t lda = p.lda ? p.lda : p.k, ldb = p.ldb ? p.ldb : p.k;
  const size_t ldc = p.ldc ? p.ldc : p.n, ldy = p.ldy ? p.ldy : p.n;
  require(p.a_type == int8_type::s8 || p.a_type == int8_type::u8, fn, "a_type must be s8 or u8");
  require(p.k <= 65536, fn, "k=" + std::to_string(p.k) + " exceeds 65536, where int32 sums could overflow");
  require(lda >= p.k && ldb >= p.k, fn, "lda and ldb must be at least k=" + std::to_string(p.k));
  require(p.c || p.y, fn, "no output: give c (s32) and/or y (f32)");
  require(!p.c || ldc >= p.n, fn, "ldc must be at least n=" + std::to_string(p.n));
  require(!p.y || ldy >= p.n, fn, "ldy must be at least n=" + std::to_string(p.n));
  if (p.m == 0 || p.n == 0) return;
  require(p.k == 0 || (p.a && p.b), fn, "a and b must not be null");

  const m_class cls = classify_m(p.m);
  const gemm_s8_entry* kernel = current_table().gemm_s8[static_cast<int>(p.a_type)][static_cast<int>(cls)];
  if (!kernel) throw Error(status::unsupported, std::string(fn) + ": no kernel for this a_type");
  // Row sums of s8 A, once per call (kernels that bias B to u8 need them).
  std::vector<int32_t> row_sums;
  if (p.a_type == int8_type::s8) {
    row_sums.resize(p.m);
    parallel_for(p.m, rows_per_task(p.k), [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        const int8_t* row = static_cast<const int8_t*>(p.a) + i * lda;
        int32_t s = 0;
        for (size_t j = 0; j < p.k; ++j) s += row[j];
        row_sums[i] = s;
      }
    });
  }
  const kernels::gemm_s8_args args{p.a,          lda,           p.b, ldb, p.m, p.n, p.k, p.c, ldc, p.row_scales,
                                   p.col_scales, p.y,           ldy, row_sums.empty() ? nullptr : row_sums.data()};
  // One wide column range per thread: the SIMD kernels pack all of A once per
  // call, so narrow chunks would repeat that packing.
  const size_t per_thread = (p.n + num_threads() - 1) / num_threads();
  for_each_column_chunk(p.n, kernel->nr, [&](size_t n0, size_t n1) { kernel->fn(args, n0, n1); }, per_thread);
}

const char* version() { return LOWBIT_VERSION; }

}  // namespace lowbit
