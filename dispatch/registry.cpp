// Registry, selection and overrides.
//
// Selection rule: per op, among the registered kernels for that op whose tier is
// enabled, take the one of the most preferred tier (highest enum value). The
// enabled set is compiled & detected, capped by LOWBIT_ISA_MAX and reduced by
// LOWBIT_ISA_DISABLE (or the same through the API). Invalid overrides are
// errors that name what is available, never a silent fallback: a bad
// environment makes every dispatching call throw until the API replaces it.
#include "dispatch/registry.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <sstream>

#include "dispatch/thresholds.hpp"
#include "lowbit/dispatch.hpp"
#include "lowbit/error.hpp"

namespace lowbit::detail {

#define LOWBIT_COMPILED_ISA(i) extern const isa_kernels kernels_##i;
#include "compiled_isas.inc"
#undef LOWBIT_COMPILED_ISA

std::vector<kernel_choice> selected_kernels_of(const dispatch_table& t);

namespace {

/// Every ISA unit's lists, copied here in baseline code (isa_kernels).
kernel_registry build_registry() {
  kernel_registry r;
  const auto append = [](auto& to, auto from) { to.insert(to.end(), from.begin(), from.end()); };
  const auto add = [&](const isa_kernels& k) {
    append(r.quantize, k.quantize);
    append(r.dequantize, k.dequantize);
    append(r.packers, k.packers);
    append(r.linear, k.linear);
    append(r.gemm_s8, k.gemm_s8);
    append(r.attention, k.attention);
  };
#define LOWBIT_COMPILED_ISA(i) \
  add(kernels_##i);            \
  r.compiled.insert(isa::i);
#include "compiled_isas.inc"
#undef LOWBIT_COMPILED_ISA
  return r;
}

/// Picks the entry of the most preferred enabled tier among those `accept`s.
template <typename Entry, typename Accept>
const Entry* best(const std::vector<Entry>& entries, isa_set enabled, Accept accept) {
  const Entry* chosen = nullptr;
  for (const Entry& e : entries) {
    if (!enabled.contains(e.tier) || !accept(e)) continue;
    if (!chosen || static_cast<int>(e.tier) > static_cast<int>(chosen->tier)) chosen = &e;
  }
  return chosen;
}

/// The enabled packer named `name` (a kernel's .inc packer field), or nullptr.
const packer_entry* packer_for(const kernel_registry& reg, isa_set enabled, std::string_view name) {
  return best(reg.packers, enabled, [&](const packer_entry& p) { return std::string_view(p.name) == name; });
}

struct override_state {
  std::optional<isa> max;
  isa_set disabled;
  std::string error;  // non-empty: the environment's overrides were invalid
};

std::mutex state_mutex;
std::atomic<const dispatch_table*> current{nullptr};
std::deque<dispatch_table> tables;  // every table built stays alive: readers hold plain pointers
override_state overrides;
bool environment_read = false;
std::atomic<bool> verbose{false};

isa_set available_isas() { return registry().compiled & detected_cpu().isas; }

std::string describe_available() {
  std::ostringstream os;
  os << "available: " << to_string(available_isas()) << " (detected: " << to_string(detected_cpu().isas)
     << "; compiled: " << to_string(registry().compiled) << ")";
  return os.str();
}

/// Checks that every tier named by an override is available; throws otherwise.
void validate(const std::optional<isa>& max, isa_set disabled, std::string_view source) {
  const isa_set avail = available_isas();
  if (max && !avail.contains(*max))
    throw Error(status::isa_unavailable, std::string(source) + ": ISA_MAX=" + std::string(isa_name(*max)) +
                                             " is not available on this CPU/build; " + describe_available());
  if (disabled.contains(isa::scalar))
    throw Error(status::invalid_argument,
                std::string(source) + ": scalar cannot be disabled, it is the tier every op falls back to");
  for (isa t : disabled.list())
    if (!avail.contains(t))
      throw Error(status::isa_unavailable, std::string(source) + ": cannot disable " + std::string(isa_name(t)) +
                                               ", it is not available on this CPU/build; " + describe_available());
}

isa_set apply(const override_state& s) {
  isa_set enabled = available_isas();
  if (s.max) {
    isa_set capped;
    for (isa t : enabled.list()) {
      const bool same_family = isa_family(t) == isa_family(*s.max) || t == isa::scalar;
      if (same_family && static_cast<int>(t) <= static_cast<int>(*s.max)) capped.insert(t);
    }
    enabled = capped;
  }
  return enabled.without(s.disabled);
}

override_state parse_overrides(std::string_view max, std::string_view disable, std::string_view source) {
  override_state s;
  if (!max.empty()) {
    const auto t = parse_isa(max);
    if (!t)
      throw Error(status::invalid_argument, std::string(source) + ": unknown ISA '" + std::string(max) +
                                                "' for ISA_MAX; " + describe_available());
    s.max = t;
  }
  try {
    s.disabled = parse_isa_list(disable);
  } catch (const Error& e) {
    throw Error(e.code(), std::string(source) + ": " + e.what() + "; " + describe_available());
  }
  validate(s.max, s.disabled, source);
  return s;
}

void log_table(const dispatch_table& t) {
  if (!verbose.load()) return;
  std::fprintf(stderr, "lowbit: enabled ISAs: %s\n", to_string(t.enabled).c_str());
  for (const auto& choice : selected_kernels_of(t))
    std::fprintf(stderr, "lowbit: %-24s -> %s\n", choice.op.c_str(), choice.kernel.c_str());
}

/// Rebuilds the current table from `overrides`; caller holds state_mutex.
void rebuild_locked() {
  tables.push_back(build_table(registry(), apply(overrides)));
  current.store(&tables.back(), std::memory_order_release);
  log_table(tables.back());
}

void read_environment_locked() {
  if (environment_read) return;
  environment_read = true;
  const char* v = std::getenv("LOWBIT_VERBOSE");
  if (v && *v && std::string_view(v) != "0") verbose.store(true);
  const char* max = std::getenv("LOWBIT_ISA_MAX");
  const char* disable = std::getenv("LOWBIT_ISA_DISABLE");
  try {
    overrides = parse_overrides(max ? max : "", disable ? disable : "", "environment (LOWBIT_ISA_MAX/LOWBIT_ISA_DISABLE)");
  } catch (const Error& e) {
    overrides = {};
    overrides.error = e.what();
  }
}

}  // namespace

const kernel_registry& registry() {
  static const kernel_registry r = build_registry();
  return r;
}

size_t format_slot(format f) {
  for (size_t i = 0; i < format_slots; ++i)
    if (format_table[i].id == f) return i;
  throw Error(status::unsupported, "unknown format code " + std::to_string(static_cast<uint32_t>(f)));
}

dispatch_table build_table(const kernel_registry& reg, isa_set enabled) {
  dispatch_table t;
  t.enabled = enabled;
  for (size_t slot = 0; slot < format_slots; ++slot) {
    const format f = format_table[slot].id;
    t.quantize[slot] = best(reg.quantize, enabled, [&](const quant_entry& e) { return e.fmt == f; });
    t.dequantize[slot] = best(reg.dequantize, enabled, [&](const dequant_entry& e) { return e.fmt == f; });
    for (int c = 0; c < m_class_count; ++c) {
      const uint8_t bit = m_class_bit(static_cast<m_class>(c));
      const linear_entry* e = best(reg.linear, enabled, [&](const linear_entry& l) {
        return l.weights == f && (l.m_classes & bit) != 0 && packer_for(reg, enabled, l.packer);
      });
      t.linear[slot][c] = e;
      t.linear_packer[slot][c] = e ? packer_for(reg, enabled, e->packer) : nullptr;
    }
  }
  for (int a = 0; a < 2; ++a)
    for (int c = 0; c < m_class_count; ++c) {
      const uint8_t bit = m_class_bit(static_cast<m_class>(c));
      t.gemm_s8[a][c] = best(reg.gemm_s8, enabled, [&](const gemm_s8_entry& e) {
        return static_cast<int>(e.a_type) == a && (e.m_classes & bit) != 0;
      });
    }
  for (size_t ks = 0; ks < format_slots; ++ks)
    for (size_t vs = 0; vs < format_slots; ++vs)
      t.attention[ks][vs] = best(reg.attention, enabled, [&](const attention_entry& e) {
        return format_slot(e.k_format) == ks && format_slot(e.v_format) == vs;
      });
  return t;
}

const dispatch_table& current_table() {
  const dispatch_table* t = current.load(std::memory_order_acquire);
  if (t) return *t;
  std::lock_guard lock(state_mutex);
  read_environment_locked();
  if (!overrides.error.empty()) throw Error(status::isa_unavailable, overrides.error);
  if (!current.load()) rebuild_locked();
  return *current.load();
}

m_class classify_m(size_t m) {
  static const size_t large_min = [] {
    const char* v = std::getenv("LOWBIT_LARGE_M");
    if (!v || !*v) return default_large_m_min;
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    return (end && *end == '\0' && n >= 2) ? static_cast<size_t>(n) : default_large_m_min;
  }();
  if (m <= 1) return m_class::gemv;
  return m < large_min ? m_class::small : m_class::large;
}

std::vector<kernel_choice> selected_kernels_of(const dispatch_table& t) {
  std::vector<kernel_choice> out;
  auto add = [&](std::string op, const auto* entry) {
    if (entry) out.push_back({std::move(op), entry->name, entry->tier});
  };
  for (size_t slot = 0; slot < format_slots; ++slot) {
    const std::string name(format_table[slot].name);
    add("quantize." + name, t.quantize[slot]);
    add("dequantize." + name, t.dequantize[slot]);
  }
  for (size_t slot = 0; slot < format_slots; ++slot)
    for (int c = 0; c < m_class_count; ++c)
      add("linear." + std::string(format_table[slot].name) + "." + m_class_names[c], t.linear[slot][c]);
  for (int a = 0; a < 2; ++a)
    for (int c = 0; c < m_class_count; ++c)
      add(std::string("gemm_s8.") + (a == 0 ? "s8" : "u8") + "." + m_class_names[c], t.gemm_s8[a][c]);
  for (size_t ks = 0; ks < format_slots; ++ks)
    for (size_t vs = 0; vs < format_slots; ++vs)
      add("attention." + std::string(format_table[ks].name) + "_" + std::string(format_table[vs].name),
          t.attention[ks][vs]);
  return out;
}

}  // namespace lowbit::detail

namespace lowbit {
using namespace detail;

isa_set compiled_isas() { return registry().compiled; }

isa_set parse_isa_list(std::string_view text) {
  isa_set out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find_first_of(", ", pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view name = text.substr(pos, end - pos);
    if (!name.empty()) {
      const auto t = parse_isa(name);
      if (!t)
        throw Error(status::invalid_argument, "unknown ISA '" + std::string(name) +
                                                  "'; known: scalar avx2 avx2_vnni avx512 avx512_vnni amx neon "
                                                  "dotprod i8mm");
      out.insert(*t);
    }
    pos = end + 1;
  }
  return out;
}

isa_set enabled_isas() { return current_table().enabled; }

void set_isa_max(isa max) {
  std::lock_guard lock(state_mutex);
  read_environment_locked();
  validate(max, overrides.error.empty() ? overrides.disabled : isa_set{}, "set_isa_max");
  if (!overrides.error.empty()) overrides = {};
  overrides.max = max;
  rebuild_locked();
}

void set_disabled_isas(isa_set tiers) {
  std::lock_guard lock(state_mutex);
  read_environment_locked();
  const std::optional<isa> max = overrides.error.empty() ? overrides.max : std::nullopt;
  validate(max, tiers, "set_disabled_isas");
  overrides = {};
  overrides.max = max;
  overrides.disabled = tiers;
  rebuild_locked();
}

void set_isa_overrides(std::string_view max, std::string_view disable) {
  std::lock_guard lock(state_mutex);
  read_environment_locked();
  overrides = parse_overrides(max, disable, "set_isa_overrides");
  rebuild_locked();
}

void clear_isa_overrides() {
  std::lock_guard lock(state_mutex);
  read_environment_locked();
  overrides = {};
  rebuild_locked();
}

void set_verbose(bool on) {
  verbose.store(on);
  if (on) {
    const dispatch_table* t = current.load();
    if (t) log_table(*t);
  }
}

std::vector<kernel_choice> selected_kernels() { return selected_kernels_of(current_table()); }

std::string selected_kernel(const std::string& op) {
  for (const auto& c : selected_kernels())
    if (c.op == op) return c.kernel;
  throw Error(status::invalid_argument, "unknown op '" + op +
                                            "'; ops look like quantize.q8_0, dequantize.q4_k, linear.q4_0.gemv, "
                                            "gemm_s8.u8.small, attention.f32_f32");
}

const format_traits& traits(format f) {
  const format_traits* t = find_format(f);
  if (!t) throw Error(status::unsupported, "unknown format code " + std::to_string(static_cast<uint32_t>(f)));
  return *t;
}

}  // namespace lowbit
