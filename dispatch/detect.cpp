// Portable half of CPU detection: tier names and the decoders.
//
// The decoders turn raw register values (x86 CPUID/XGETBV, Arm HWCAP) into
// tiers. They are pure functions, compiled on every architecture, so tests can
// feed them synthetic values: a detection bug (a logical AND where a bitwise
// one was meant) would otherwise silently disable fast paths.
#include <mutex>
#include <sstream>

#include "dispatch/registry.hpp"
#include "lowbit/isa.hpp"

namespace lowbit {

namespace {
constexpr std::string_view names[isa_count] = {"scalar", "avx2",   "avx2_vnni", "avx512", "avx512_vnni",
                                               "amx",    "neon",   "dotprod",   "i8mm"};
constexpr bool bit(uint64_t v, int b) { return (v >> b) & 1u; }
}  // namespace

std::vector<isa> isa_set::list() const {
  std::vector<isa> out;
  for (int i = 0; i < isa_count; ++i)
    if (contains(static_cast<isa>(i))) out.push_back(static_cast<isa>(i));
  return out;
}

std::string_view isa_name(isa t) {
  const int i = static_cast<int>(t);
  return i >= 0 && i < isa_count ? names[i] : "unknown";
}

std::optional<isa> parse_isa(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : (c == '-' ? '_' : c);
  // Common spellings without the underscore.
  if (lower == "avx2vnni" || lower == "avxvnni") lower = "avx2_vnni";
  if (lower == "avx512vnni") lower = "avx512_vnni";
  for (int i = 0; i < isa_count; ++i)
    if (names[i] == lower) return static_cast<isa>(i);
  return std::nullopt;
}

std::string to_string(isa_set s) {
  std::string out;
  for (isa t : s.list()) {
    if (!out.empty()) out += ' ';
    out += isa_name(t);
  }
  return out.empty() ? "(none)" : out;
}

std::string_view isa_family(isa t) {
  switch (t) {
    case isa::scalar: return "any";
    case isa::neon:
    case isa::dotprod:
    case isa::i8mm: return "arm";
    default: return "x86";
  }
}

const cpu_info& detected_cpu() {
  static const cpu_info info = detail::detect_this_cpu();
  return info;
}

namespace detail {

isa_set decode_x86(const x86_registers& r, std::vector<std::string>* features) {
  auto note = [&](bool present, const char* name) {
    if (present && features) features->push_back(name);
    return present;
  };
  const bool leaf7 = r.max_leaf >= 7;
  const bool osxsave = note(bit(r.leaf1_ecx, 27), "osxsave");
  const bool fma = note(bit(r.leaf1_ecx, 12), "fma");
  const bool avx = note(bit(r.leaf1_ecx, 28), "avx");
  const bool f16c = note(bit(r.leaf1_ecx, 29), "f16c");
  const bool avx2 = note(leaf7 && bit(r.leaf7_ebx, 5), "avx2");
  const bool bmi2 = note(leaf7 && bit(r.leaf7_ebx, 8), "bmi2");
  const bool avx512f = note(leaf7 && bit(r.leaf7_ebx, 16), "avx512f");
  const bool avx512dq = note(leaf7 && bit(r.leaf7_ebx, 17), "avx512dq");
  const bool avx512bw = note(leaf7 && bit(r.leaf7_ebx, 30), "avx512bw");
  const bool avx512vl = note(leaf7 && bit(r.leaf7_ebx, 31), "avx512vl");
  const bool avx512vnni = note(leaf7 && bit(r.leaf7_ecx, 11), "avx512_vnni");
  const bool amx_bf16 = note(leaf7 && bit(r.leaf7_edx, 22), "amx_bf16");
  const bool amx_tile = note(leaf7 && bit(r.leaf7_edx, 24), "amx_tile");
  const bool amx_int8 = note(leaf7 && bit(r.leaf7_edx, 25), "amx_int8");
  const bool avxvnni = note(leaf7 && bit(r.leaf7_1_eax, 4), "avx_vnni");
  const bool avx512bf16 = note(leaf7 && bit(r.leaf7_1_eax, 5), "avx512_bf16");
  // The OS must save the register state: XCR0 bits 1-2 (SSE, AVX), 5-7 (opmask,
  // ZMM_Hi256, Hi16_ZMM), 17-18 (XTILECFG, XTILEDATA).
  const bool os_ymm = note(osxsave && (r.xcr0 & 0x6) == 0x6, "os_ymm");
  const bool os_zmm = note(os_ymm && (r.xcr0 & 0xe0) == 0xe0, "os_zmm");
  const bool os_tile = note(osxsave && (r.xcr0 & 0x60000) == 0x60000, "os_tile");
  const bool amx_perm = note(r.amx_permitted, "amx_permission");

  isa_set s{isa::scalar};
  const bool tier_avx2 = avx && avx2 && fma && f16c && bmi2 && os_ymm;
  if (tier_avx2) s.insert(isa::avx2);
  if (tier_avx2 && avxvnni) s.insert(isa::avx2_vnni);
  const bool tier_avx512 = tier_avx2 && avx512f && avx512bw && avx512dq && avx512vl && os_zmm;
  if (tier_avx512) s.insert(isa::avx512);
  if (tier_avx512 && avx512vnni) s.insert(isa::avx512_vnni);
  // The amx tier: int8 and bf16 tile products (every CPU with AMX so far
  // has both), and AVX-512 BF16 for the conversions around them.
  if (tier_avx512 && avx512vnni && avx512bf16 && amx_tile && amx_int8 && amx_bf16 && os_tile && amx_perm)
    s.insert(isa::amx);
  return s;
}

isa_set decode_arm(uint64_t hwcap, uint64_t hwcap2, std::vector<std::string>* features) {
  auto note = [&](bool present, const char* name) {
    if (present && features) features->push_back(name);
    return present;
  };
  // Linux arm64 hwcaps: HWCAP_ASIMD bit 1, HWCAP_ASIMDDP bit 20, HWCAP2_I8MM bit 13.
  const bool asimd = note(bit(hwcap, 1), "asimd");
  const bool dotprod = note(bit(hwcap, 20), "asimddp");
  const bool i8mm = note(bit(hwcap2, 13), "i8mm");
  isa_set s{isa::scalar};
  if (asimd) s.insert(isa::neon);
  if (asimd && dotprod) s.insert(isa::dotprod);
  if (asimd && dotprod && i8mm) s.insert(isa::i8mm);
  return s;
}

}  // namespace detail
}  // namespace lowbit
