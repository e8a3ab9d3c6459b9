// The C API: a thin shell over the C++ API that turns exceptions into status
// codes and keeps the message per thread for lowbit_last_error().
#include "lowbit/lowbit.h"

#include <new>
#include <string>
#include <vector>

#include "lowbit/lowbit.hpp"

namespace {

thread_local std::string last_error;

template <typename F>
lowbit_status guarded(F&& body) {
  try {
    body();
    last_error.clear();
    return LOWBIT_OK;
  } catch (const lowbit::Error& e) {
    last_error = e.what();
    return static_cast<lowbit_status>(e.code());
  } catch (const std::bad_alloc&) {
    last_error = "out of memory";
    return LOWBIT_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    last_error = e.what();
    return LOWBIT_INTERNAL;
  } catch (...) {
    last_error = "unknown internal error";
    return LOWBIT_INTERNAL;
  }
}

lowbit_status null_argument(const char* what) {
  last_error = std::string(what) + " must not be null";
  return LOWBIT_INVALID_ARGUMENT;
}

lowbit::format to_format(lowbit_format f) { return static_cast<lowbit::format>(f); }

}  // namespace

struct lowbit_packed_weights {
  lowbit::PackedWeights weights;
};

struct lowbit_kv_cache {
  lowbit::KvCache cache;
};

extern "C" {

const char* lowbit_last_error(void) { return last_error.c_str(); }
const char* lowbit_version(void) { return lowbit::version(); }

const char* lowbit_status_name(lowbit_status status) {
  switch (status) {
    case LOWBIT_OK: return "LOWBIT_OK";
    case LOWBIT_INVALID_ARGUMENT: return "LOWBIT_INVALID_ARGUMENT";
    case LOWBIT_UNSUPPORTED: return "LOWBIT_UNSUPPORTED";
    case LOWBIT_ISA_UNAVAILABLE: return "LOWBIT_ISA_UNAVAILABLE";
    case LOWBIT_OUT_OF_MEMORY: return "LOWBIT_OUT_OF_MEMORY";
    case LOWBIT_IO_ERROR: return "LOWBIT_IO_ERROR";
    case LOWBIT_BAD_FILE: return "LOWBIT_BAD_FILE";
    case LOWBIT_INTERNAL: return "LOWBIT_INTERNAL";
  }
  return "LOWBIT_UNKNOWN_STATUS";
}

size_t lowbit_block_length(lowbit_format format) {
  const auto* t = lowbit::find_format(to_format(format));
  return t ? t->block_length : 0;
}

size_t lowbit_block_bytes(lowbit_format format) {
  const auto* t = lowbit::find_format(to_format(format));
  return t ? t->block_bytes : 0;
}

lowbit_status lowbit_quantized_size(lowbit_format format, size_t rows, size_t k, size_t* bytes) {
  if (!bytes) return null_argument("bytes");
  return guarded([&] { *bytes = lowbit::quantized_size(to_format(format), rows, k); });
}

lowbit_status lowbit_quantize_rows(lowbit_format format, const float* x, size_t rows, size_t k, size_t ldx, void* dst,
                                   size_t dst_bytes) {
  return guarded([&] { lowbit::quantize_rows(to_format(format), x, rows, k, dst, dst_bytes, ldx); });
}

lowbit_status lowbit_dequantize_rows(lowbit_format format, const void* src, size_t src_bytes, size_t rows, size_t k,
                                     float* y, size_t ldy) {
  return guarded([&] { lowbit::dequantize_rows(to_format(format), src, src_bytes, rows, k, y, ldy); });
}

lowbit_status lowbit_dequantize_rows_to(lowbit_format format, const void* src, size_t src_bytes, size_t rows, size_t k,
                                        void* y, lowbit_format out, size_t ldy) {
  return guarded([&] { lowbit::dequantize_rows(to_format(format), src, src_bytes, rows, k, y, to_format(out), ldy); });
}

lowbit_status lowbit_pack_weights(lowbit_format format, const void* data, size_t data_bytes, size_t n, size_t k,
                                  lowbit_packed_weights** out) {
  if (!out) return null_argument("out");
  *out = nullptr;
  return guarded([&] {
    auto packed = lowbit::pack_weights(to_format(format), data, data_bytes, n, k);
    *out = new lowbit_packed_weights{std::move(packed)};
  });
}

void lowbit_packed_weights_free(lowbit_packed_weights* weights) { delete weights; }

double lowbit_packed_weights_pack_seconds(const lowbit_packed_weights* weights) {
  return weights ? weights->weights.pack_seconds() : 0.0;
}

lowbit_status lowbit_linear(const lowbit_packed_weights* weights, const float* x, size_t m, size_t ldx, float* y,
                            size_t ldy) {
  if (!weights) return null_argument("weights");
  return guarded([&] { lowbit::linear(weights->weights, x, m, y, ldx, ldy); });
}

lowbit_status lowbit_gemm_s8(int a_unsigned, const void* a, size_t lda, const int8_t* b, size_t ldb, size_t m,
                             size_t n, size_t k, int32_t* c, size_t ldc, const float* row_scales,
                             const float* col_scales, float* y, size_t ldy) {
  return guarded([&] {
    lowbit::gemm_s8_problem p;
    p.a_type = a_unsigned ? lowbit::int8_type::u8 : lowbit::int8_type::s8;
    p.a = a;
    p.lda = lda;
    p.b = b;
    p.ldb = ldb;
    p.m = m;
    p.n = n;
    p.k = k;
    p.c = c;
    p.ldc = ldc;
    p.row_scales = row_scales;
    p.col_scales = col_scales;
    p.y = y;
    p.ldy = ldy;
    lowbit::gemm_s8(p);
  });
}

lowbit_status lowbit_attention(const lowbit_attention_shape* shape, const float* q, const float* k, const float* v,
                               float* out) {
  if (!shape) return null_argument("shape");
  return guarded([&] {
    lowbit::attention_shape s;
    s.n_q = shape->n_q;
    s.n_kv = shape->n_kv;
    s.n_heads = shape->n_heads;
    s.n_kv_heads = shape->n_kv_heads;
    s.head_dim = shape->head_dim;
    s.scale = shape->scale;
    s.causal = shape->causal != 0;
    s.q_stride = shape->q_stride;
    s.k_stride = shape->k_stride;
    s.v_stride = shape->v_stride;
    s.out_stride = shape->out_stride;
    lowbit::attention(s, q, k, v, out);
  });
}

lowbit_status lowbit_kv_cache_create(const lowbit_kv_cache_config* config, lowbit_kv_cache** out) {
  if (!config) return null_argument("config");
  if (!out) return null_argument("out");
  return guarded([&] {
    lowbit::kv_cache_config c;
    c.n_layers = config->n_layers;
    c.n_kv_heads = config->n_kv_heads;
    c.head_dim = config->head_dim;
    c.k_format = to_format(config->k_format);
    c.v_format = to_format(config->v_format);
    if (config->block_tokens) c.block_tokens = config->block_tokens;  // 0: kv_cache_config's default
    c.max_blocks = config->max_blocks;
    *out = new lowbit_kv_cache{lowbit::KvCache(c)};
  });
}

void lowbit_kv_cache_free(lowbit_kv_cache* cache) { delete cache; }

lowbit_status lowbit_kv_cache_create_sequence(lowbit_kv_cache* cache, uint32_t* seq) {
  if (!cache) return null_argument("cache");
  if (!seq) return null_argument("seq");
  return guarded([&] { *seq = cache->cache.create_sequence(); });
}

lowbit_status lowbit_kv_cache_free_sequence(lowbit_kv_cache* cache, uint32_t seq) {
  if (!cache) return null_argument("cache");
  return guarded([&] { cache->cache.free_sequence(seq); });
}

lowbit_status lowbit_kv_cache_length(const lowbit_kv_cache* cache, uint32_t seq, size_t layer, size_t* length) {
  if (!cache) return null_argument("cache");
  if (!length) return null_argument("length");
  return guarded([&] { *length = cache->cache.length(seq, layer); });
}

lowbit_status lowbit_kv_cache_blocks(const lowbit_kv_cache* cache, size_t* used, size_t* free_blocks,
                                     size_t* block_bytes) {
  if (!cache) return null_argument("cache");
  return guarded([&] {
    if (used) *used = cache->cache.used_blocks();
    if (free_blocks) *free_blocks = cache->cache.free_blocks();
    if (block_bytes) *block_bytes = cache->cache.block_bytes();
  });
}

lowbit_status lowbit_kv_cache_append(lowbit_kv_cache* cache, uint32_t seq, size_t layer, const float* k,
                                     const float* v, size_t n, size_t k_stride, size_t v_stride) {
  if (!cache) return null_argument("cache");
  return guarded([&] { cache->cache.append(seq, layer, k, v, n, k_stride, v_stride); });
}

lowbit_status lowbit_kv_cache_read(const lowbit_kv_cache* cache, uint32_t seq, size_t layer, size_t begin,
                                   size_t end, float* k, float* v) {
  if (!cache) return null_argument("cache");
  return guarded([&] { cache->cache.read(seq, layer, begin, end, k, v); });
}

lowbit_status lowbit_paged_attention(const lowbit_kv_cache* cache, size_t layer, size_t n_heads,
                                     const lowbit_paged_query* queries, size_t count, float scale) {
  if (!cache) return null_argument("cache");
  if (count && !queries) return null_argument("queries");
  return guarded([&] {
    std::vector<lowbit::paged_query> qs(count);
    for (size_t i = 0; i < count; ++i)
      qs[i] = {queries[i].seq, queries[i].q, queries[i].n_q, queries[i].out, queries[i].q_stride,
               queries[i].out_stride};
    lowbit::attention(cache->cache, layer, n_heads, qs.data(), count, scale);
  });
}

lowbit_status lowbit_set_num_threads(size_t n) {
  return guarded([&] { lowbit::set_num_threads(n); });
}

size_t lowbit_get_num_threads(void) {
  size_t n = 0;
  guarded([&] { n = lowbit::num_threads(); });
  return n;
}

lowbit_status lowbit_set_isa_max(const char* isa) {
  if (!isa) return null_argument("isa");
  return guarded([&] {
    const auto t = lowbit::parse_isa(isa);
    if (!t) throw lowbit::Error(lowbit::status::invalid_argument, std::string("unknown ISA '") + isa + "'");
    lowbit::set_isa_max(*t);
  });
}

lowbit_status lowbit_set_isa_disable(const char* isas) {
  if (!isas) return null_argument("isas");
  return guarded([&] {
    const lowbit::isa_set tiers = lowbit::parse_isa_list(isas);
    lowbit::set_disabled_isas(tiers);
  });
}

lowbit_status lowbit_clear_isa_overrides(void) {
  return guarded([] { lowbit::clear_isa_overrides(); });
}

void lowbit_set_verbose(int on) { lowbit::set_verbose(on != 0); }

// Each string-returning function has its own buffer, so a string stays valid
// until the next call of the same function on the same thread.
const char* lowbit_detected_isas(void) {
  thread_local std::string text;
  text = lowbit::to_string(lowbit::detected_cpu().isas);
  return text.c_str();
}

const char* lowbit_compiled_isas(void) {
  thread_local std::string text;
  text = lowbit::to_string(lowbit::compiled_isas());
  return text.c_str();
}

const char* lowbit_enabled_isas(void) {
  thread_local std::string text;
  text.clear();
  guarded([] { text = lowbit::to_string(lowbit::enabled_isas()); });
  return text.c_str();
}

lowbit_status lowbit_selected_kernel(const char* op, const char** kernel) {
  if (!op) return null_argument("op");
  if (!kernel) return null_argument("kernel");
  thread_local std::string text;
  return guarded([&] {
    text = lowbit::selected_kernel(op);
    *kernel = text.c_str();
  });
}

}  // extern "C"
