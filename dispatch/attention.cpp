// Attention through dispatch: plain f32 attention and attention over the
// paged KV cache share one driver and one kernel family (attention_fn).
//
// Work is cut into jobs, one per (sequence, KV head) for prefill and one per
// (sequence, group of KV heads) for a decode step: the job's rows are its
// queries times the query heads that share each KV head (GQA), so each key and
// value is converted once for all of them. A job with one query position
// (decode) is split along the keys into fixed chunks, merged in chunk order;
// other jobs (prefill) are split by blocks of query positions, each against
// all of its keys. Neither split depends on the thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "dispatch/checks.hpp"
#include "dispatch/registry.hpp"
#include "dispatch/thresholds.hpp"
#include "lowbit/lowbit.hpp"

namespace lowbit {

using namespace detail;

namespace {

/// One (sequence, KV head): its key/value view and its query rows.
struct attention_job {
  kernels::attn_kv kv;
  size_t kv_head;
  size_t positions;                   ///< query positions (rows = positions * group)
  std::vector<const float*> q_rows;   ///< position-major: row = position * group + head in group
  std::vector<float*> out_rows;
  std::vector<size_t> limits;         ///< keys visible to each row
};

/// One pool task: rows [row_begin, row_end) of a job over keys [t0, t1),
/// writing its softmax state into `state` (m, l, acc per row).
struct attention_task {
  size_t job, row_begin, row_end, t0, t1;
  size_t state;  ///< a decode chunk's offset into the state buffer (in floats); prefill tasks use their thread's own
  size_t split;  ///< the decode split the task is a chunk of (merged when its last chunk is done), or no_split
};
constexpr size_t no_split = static_cast<size_t>(-1);

/// A decode job's chunks: tasks [first_task, first_task + chunks).
struct key_split {
  size_t job, first_task, chunks;
};

/// The buffers of one call, kept per calling thread and reused call after
/// call with their capacity, so that once warm a decode step allocates
/// nothing but its cache views (it had allocated some hundred times a call:
/// three growing vectors a job, the tasks, the states; about a fifth of a
/// short-context decode step's time, with the argument checks' messages).
/// Jobs past `used` are spare: their vectors are cleared, not freed.
struct attention_workspace {
  std::vector<attention_job> jobs;
  size_t used = 0;
  std::vector<const unsigned char*> blocks;  // per query, its K blocks then its V blocks
  std::vector<KvCache::layout> views;
  std::vector<attention_task> tasks;
  std::vector<key_split> splits;
  std::vector<float> state;
  std::unique_ptr<std::atomic<size_t>[]> chunks_left;
  size_t chunks_left_size = 0;

  /// The next job, its rows cleared.
  attention_job& next_job() {
    if (used == jobs.size()) jobs.emplace_back();
    attention_job& job = jobs[used++];
    job.q_rows.clear();
    job.out_rows.clear();
    job.limits.clear();
    return job;
  }
};

/// The calling thread's workspace, emptied of the last call's jobs. Not
/// reentrant within a thread, and nothing in a call calls back into it.
attention_workspace& workspace() {
  thread_local attention_workspace w;
  w.used = 0;
  return w;
}

/// KV heads per job of a decode step: all of them, unless that leaves
/// fewer tasks (chunks of keys, over every decode step of the call) than
/// the pool has threads. Which heads share a job does not change a result:
/// the kernel gives each head's rows what a call for that head alone would.
size_t decode_heads_per_job(size_t keys, size_t kv_heads, size_t steps) {
  const size_t chunk_keys = attention_split_for(keys);
  const size_t tasks = std::max<size_t>(1, (keys + chunk_keys - 1) / chunk_keys) * std::max<size_t>(1, steps);
  const size_t parts = std::min(kv_heads, (num_threads() + tasks - 1) / tasks);
  return (kv_heads + parts - 1) / parts;
}

void run_jobs(const attention_entry& kernel, attention_workspace& w, size_t head_dim, size_t group, float scale) {
  const size_t row_state = head_dim + 2;
  attention_job* const jobs = w.jobs.data();
  std::vector<attention_task>& tasks = w.tasks;
  std::vector<key_split>& splits = w.splits;
  tasks.clear();
  splits.clear();
  size_t state_floats = 0;
  for (size_t j = 0; j < w.used; ++j) {
    const attention_job& job = jobs[j];
    const size_t rows = job.q_rows.size();
    if (job.positions == 1) {
      const size_t keys = *std::max_element(job.limits.begin(), job.limits.end());
      const size_t chunk_keys = attention_split_for(keys);
      const size_t chunks = std::max<size_t>(1, (keys + chunk_keys - 1) / chunk_keys);
      for (size_t c = 0; c < chunks; ++c) {
        tasks.push_back({j, 0, rows, c * chunk_keys, std::min(keys, (c + 1) * chunk_keys), state_floats,
                         splits.size()});
        state_floats += rows * row_state;
      }
      splits.push_back({j, tasks.size() - chunks, chunks});
    } else {
      const size_t block_rows =
          (kernel.tier == isa::amx ? attention_query_block_staged : attention_query_block) * group;
      const size_t heads = std::max<size_t>(1, job.kv.heads);
      for (size_t r0 = 0, r1; r0 < rows; r0 = r1) {
        r1 = std::min(rows, r0 + block_rows);
        // A last block small enough for the kernel's decode path joins this
        // one: every task of a prompt takes the prefill path, so that its
        // positions are all rounded alike (kernels::attention_decode_rows).
        if (rows > r1 && (rows - r1) / heads <= kernels::attention_decode_rows) r1 = rows;
        const size_t keys = *std::max_element(job.limits.begin() + static_cast<std::ptrdiff_t>(r0),
                                              job.limits.begin() + static_cast<std::ptrdiff_t>(r1));
        tasks.push_back({j, r0, r1, 0, keys, 0, no_split});
      }
    }
  }
  // Every task initialises its own state (m = -inf, l = acc = 0) before its
  // kernel runs: a decode chunk's in `state`, kept for the merge; a prefill
  // task's in its thread's own buffer, reused task after task (a fresh
  // buffer for a long prefill is tens of MiB of page faults).
  if (w.state.size() < state_floats) w.state.resize(state_floats);
  float* const state = w.state.data();
  // A decode split is merged by whichever thread finishes its last chunk,
  // always in chunk order, so the result does not depend on which one.
  if (w.chunks_left_size < splits.size()) {
    w.chunks_left.reset(new std::atomic<size_t>[splits.size()]);
    w.chunks_left_size = splits.size();
  }
  std::atomic<size_t>* const chunks_left = w.chunks_left.get();
  for (size_t s = 0; s < splits.size(); ++s) chunks_left[s].store(splits[s].chunks, std::memory_order_relaxed);
  const auto merge = [&](const key_split& sp) {
    const attention_job& job = jobs[sp.job];
    const size_t rows = job.q_rows.size();
    for (size_t r = 0; r < rows; ++r) {
      float m = -std::numeric_limits<float>::infinity(), l = 0.0f;
      float* out = job.out_rows[r];
      std::fill(out, out + head_dim, 0.0f);
      for (size_t c = 0; c < sp.chunks; ++c) {
        const float* st = state + tasks[sp.first_task + c].state;
        const float cm = st[r], cl = st[rows + r];
        const float* ca = st + 2 * rows + r * head_dim;
        if (cl == 0.0f) continue;  // the chunk saw no key for this row
        const float mm = std::max(m, cm);
        const float a = std::exp(m - mm), b = std::exp(cm - mm);
        l = l * a + cl * b;
        for (size_t d = 0; d < head_dim; ++d) out[d] = out[d] * a + ca[d] * b;
        m = mm;
      }
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      for (size_t d = 0; d < head_dim; ++d) out[d] *= inv;
    }
  };
  // Decode alone: each thread takes one contiguous run of chunks, so the
  // keys a chunk prefetches past its end are the ones the same thread (and
  // its cache) reads next. With prefill tasks (uneven sizes) in the call,
  // tasks go one at a time. Either way a task's result is the same.
  const bool decode_only = splits.size() == w.used;
  const size_t grain = decode_only ? (tasks.size() + num_threads() - 1) / num_threads() : 1;
  parallel_for(tasks.size(), grain, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const attention_task& t = tasks[i];
      const attention_job& job = jobs[t.job];
      const size_t rows = t.row_end - t.row_begin;
      // A prefill task's state is its thread's own, m and l in one buffer
      // and the sums in another that is kept zeroed from one task to the
      // next: a kernel that finishes the rows itself (attn_kv::finished)
      // leaves the sums as they were, so only a task whose kernel did not
      // zeroes them again, after finishing from them (64 KiB a task of 128
      // rows, about 1% of a 512-token prefill when every task did).
      thread_local std::vector<float> own, own_sums;
      float *m, *l, *acc;  // (the state buffer is null in a call without decode chunks: no pointer into it then)
      if (t.split == no_split) {
        if (own.size() < 2 * rows) own.resize(2 * rows);
        if (own_sums.size() < rows * head_dim) own_sums.resize(rows * head_dim);  // the new floats zero
        m = own.data();
        l = m + rows;
        acc = own_sums.data();
        std::fill(l, l + rows, 0.0f);
      } else {
        m = state + t.state;
        l = m + rows;
        acc = l + rows;
        std::fill(l, l + rows + rows * head_dim, 0.0f);
      }
      std::fill(m, m + rows, -std::numeric_limits<float>::infinity());
      kernels::attn_kv kv = job.kv;
      bool finished = false;
      if (t.split == no_split) {
        kv.out_rows = job.out_rows.data() + t.row_begin;  // written below (a prefetch hint), or by the kernel
        kv.finished = &finished;
      }
      kernel.fn(kv, job.kv_head, job.q_rows.data() + t.row_begin, rows, job.limits.data() + t.row_begin, t.t0,
                t.t1, scale, m, l, acc);
      if (t.split != no_split) {
        if (chunks_left[t.split].fetch_sub(1, std::memory_order_acq_rel) == 1) merge(splits[t.split]);
        continue;
      }
      if (finished) continue;  // the kernel wrote the rows (attn_kv::finished), and left the sums zero
      for (size_t r = 0; r < rows; ++r) {  // not split: finish here
        float* out = job.out_rows[t.row_begin + r];
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        for (size_t d = 0; d < head_dim; ++d) out[d] = acc[r * head_dim + d] * inv;
      }
      std::fill(acc, acc + rows * head_dim, 0.0f);  // zeros for the thread's next task
    }
  });
}

const attention_entry& kernel_for(format kf, format vf, const char* fn) {
  const attention_entry* k = current_table().attention[format_slot(kf)][format_slot(vf)];
  if (!k)
    throw Error(status::unsupported, std::string(fn) + ": no attention kernel for K " +
                                         std::string(traits(kf).name) + " and V " + std::string(traits(vf).name));
  return *k;
}

}  // namespace

void attention(const attention_shape& shape, const float* q, const float* k, const float* v, float* out) {
  const char* fn = "attention";
  attention_shape s = shape;
  require(s.n_q > 0 && s.n_kv > 0 && s.n_heads > 0 && s.n_kv_heads > 0 && s.head_dim > 0, fn,
          "n_q, n_kv, n_heads, n_kv_heads and head_dim must all be positive");
  require(s.n_heads % s.n_kv_heads == 0, fn, [&] {
    return "n_kv_heads=" + std::to_string(s.n_kv_heads) + " does not divide n_heads=" + std::to_string(s.n_heads);
  });
  require(!s.causal || s.n_kv >= s.n_q, fn, [&] {
    return "causal attention needs n_kv >= n_q (got n_q=" + std::to_string(s.n_q) + ", n_kv=" +
           std::to_string(s.n_kv) + ")";
  });
  const size_t q_row = s.n_heads * s.head_dim, kv_row = s.n_kv_heads * s.head_dim;
  if (s.q_stride == 0) s.q_stride = q_row;
  if (s.out_stride == 0) s.out_stride = q_row;
  if (s.k_stride == 0) s.k_stride = kv_row;
  if (s.v_stride == 0) s.v_stride = kv_row;
  require(s.q_stride >= q_row && s.out_stride >= q_row, fn, "q_stride and out_stride must be at least n_heads*head_dim");
  require(s.k_stride >= kv_row && s.v_stride >= kv_row, fn,
          "k_stride and v_stride must be at least n_kv_heads*head_dim");
  require(std::isfinite(s.scale), fn, "scale must be finite");
  if (s.scale == 0.0f) s.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  require(q && k && v && out, fn, "q, k, v and out must not be null");
  const attention_entry& kernel = kernel_for(format::f32, format::f32, fn);

  // One block holding every token.
  const unsigned char* k_block = reinterpret_cast<const unsigned char*>(k);
  const unsigned char* v_block = reinterpret_cast<const unsigned char*>(v);
  const size_t group = s.n_heads / s.n_kv_heads;
  attention_workspace& w = workspace();
  for (size_t g = 0; g < s.n_kv_heads; ++g) {
    attention_job& job = w.next_job();
    job.kv = {&k_block, &v_block, s.n_kv, s.head_dim * sizeof(float), s.head_dim * sizeof(float),
              s.k_stride * sizeof(float), s.v_stride * sizeof(float), s.head_dim};
    job.kv_head = g;
    job.positions = s.n_q;
    for (size_t i = 0; i < s.n_q; ++i)
      for (size_t h = g * group; h < (g + 1) * group; ++h) {
        job.q_rows.push_back(q + i * s.q_stride + h * s.head_dim);
        job.out_rows.push_back(out + i * s.out_stride + h * s.head_dim);
        job.limits.push_back(s.causal ? s.n_kv - s.n_q + i + 1 : s.n_kv);
      }
  }
  run_jobs(kernel, w, s.head_dim, group, s.scale);
}

void attention(const KvCache& cache, size_t layer, size_t n_heads, const paged_query* queries, size_t count,
               float scale) {
  const char* fn = "attention (paged)";
  const kv_cache_config& c = cache.config();
  require(layer < c.n_layers, fn, [&] {
    return "layer " + std::to_string(layer) + " out of range (n_layers=" + std::to_string(c.n_layers) + ")";
  });
  require(n_heads > 0 && n_heads % c.n_kv_heads == 0, fn, [&] {
    return "n_heads=" + std::to_string(n_heads) + " must be a positive multiple of n_kv_heads=" +
           std::to_string(c.n_kv_heads);
  });
  require(std::isfinite(scale), fn, "scale must be finite");
  require(count == 0 || queries, fn, "queries must not be null");
  if (scale == 0.0f) scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const size_t q_row = n_heads * c.head_dim, group = n_heads / c.n_kv_heads;
  // Validate every query before any work (the messages are built only for
  // a query that fails).
  attention_workspace& w = workspace();
  w.views.resize(count);
  size_t block_count = 0;
  for (size_t i = 0; i < count; ++i) {
    const paged_query& pq = queries[i];
    const auto which = [i] { return "query " + std::to_string(i) + ": "; };
    const size_t len = cache.length(pq.seq, layer);  // throws for a dead sequence
    require(pq.n_q > 0 && pq.n_q <= len, fn, [&] {
      return which() + "n_q=" + std::to_string(pq.n_q) + " must be in [1, " + std::to_string(len) +
             "], the tokens already appended";
    });
    require(pq.q && pq.out, fn, [&] { return which() + "q and out must not be null"; });
    require((pq.q_stride == 0 || pq.q_stride >= q_row) && (pq.out_stride == 0 || pq.out_stride >= q_row), fn,
            [&] { return which() + "strides must be at least n_heads*head_dim = " + std::to_string(q_row); });
    w.views[i] = cache.view(pq.seq, layer);
    block_count += w.views[i].blocks.size();
  }
  const attention_entry& kernel = kernel_for(c.k_format, c.v_format, fn);
  size_t decode_steps = 0;
  for (size_t i = 0; i < count; ++i) decode_steps += queries[i].n_q == 1;

  // Every query's K block pointers, then its V block pointers, in one
  // buffer sized before any job points into it.
  w.blocks.resize(2 * block_count);
  for (size_t i = 0, at = 0; i < count; ++i) {
    const paged_query& pq = queries[i];
    const KvCache::layout& lv = w.views[i];
    const size_t nb = lv.blocks.size();
    const unsigned char** const k_blocks = w.blocks.data() + at;
    const unsigned char** const v_blocks = k_blocks + nb;
    at += 2 * nb;
    for (size_t b = 0; b < nb; ++b) {
      k_blocks[b] = lv.blocks[b] + lv.k_offset;
      v_blocks[b] = lv.blocks[b] + lv.v_offset;
    }
    const size_t len = cache.length(pq.seq, layer);
    const size_t qs = pq.q_stride ? pq.q_stride : q_row, os = pq.out_stride ? pq.out_stride : q_row;
    // A decode step's KV heads go together, a few jobs of several heads
    // (attn_kv::heads), so the kernel reads each cache block's heads one
    // after another, as they lie; prefill's go one job a head.
    const size_t per_job = pq.n_q == 1 ? decode_heads_per_job(len, c.n_kv_heads, decode_steps) : 1;
    for (size_t g0 = 0; g0 < c.n_kv_heads; g0 += per_job) {
      const size_t g1 = std::min(c.n_kv_heads, g0 + per_job);
      attention_job& job = w.next_job();
      job.kv = {k_blocks, v_blocks, lv.block_tokens, lv.k_head_bytes, lv.v_head_bytes, lv.k_row_bytes, lv.v_row_bytes,
                c.head_dim};
      job.kv.heads = g1 - g0;
      job.kv_head = g0;
      job.positions = pq.n_q;
      for (size_t g = g0; g < g1; ++g)  // head by head, then position by position
        for (size_t j = 0; j < pq.n_q; ++j)
          for (size_t h = g * group; h < (g + 1) * group; ++h) {
            job.q_rows.push_back(pq.q + j * qs + h * c.head_dim);
            job.out_rows.push_back(pq.out + j * os + h * c.head_dim);
            job.limits.push_back(len - pq.n_q + j + 1);
          }
    }
  }
  run_jobs(kernel, w, c.head_dim, group, scale);
}

}  // namespace lowbit
