// x86 half of CPU detection: reads CPUID and XCR0, asks Linux for AMX tiles.
//
// Compiled for the baseline like all non-ISA code; xgetbv is issued as raw
// bytes-free inline asm so no -mxsave flag is needed.
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "dispatch/registry.hpp"

namespace lowbit::detail {

namespace {

uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

#ifdef LOWBIT_SOFT_AMX
/// Emulated-test builds (CMake LOWBIT_SOFT_AMX): the amx tier's tile
/// instructions are functions (tests/emu/soft_amx.hpp), so the tile unit is
/// there whatever the CPU says, and no permission is needed for it.
constexpr bool software_tiles = true;
#else
constexpr bool software_tiles = false;
#endif

/// Linux gates AMX tile data behind a per-process permission (5.16+).
bool request_amx_permission() {
  constexpr long arch_req_xcomp_perm = 0x1023;
  constexpr long xfeature_xtiledata = 18;
  return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
}

std::string brand_string() {
  uint32_t regs[12] = {};
  unsigned max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (max_ext < 0x80000004u) return "";
  for (unsigned i = 0; i < 3; ++i)
    __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
  char text[49] = {};
  std::memcpy(text, regs, 48);
  std::string s(text);
  const size_t first = s.find_first_not_of(' ');
  return first == std::string::npos ? "" : s.substr(first);
}

}  // namespace

cpu_info detect_this_cpu() {
  x86_registers r;
  uint32_t eax, ebx, ecx, edx;
  r.max_leaf = __get_cpuid_max(0, nullptr);
  if (r.max_leaf >= 1 && __get_cpuid(1, &eax, &ebx, &ecx, &edx)) r.leaf1_ecx = ecx;
  if (r.max_leaf >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    r.leaf7_ebx = ebx;
    r.leaf7_ecx = ecx;
    r.leaf7_edx = edx;
    __cpuid_count(7, 1, eax, ebx, ecx, edx);
    r.leaf7_1_eax = eax;
  }
  if ((r.leaf1_ecx >> 27) & 1u) r.xcr0 = read_xcr0();
  if (software_tiles) {
    r.leaf7_edx |= (1u << 22) | (1u << 24) | (1u << 25);  // AMX-BF16, AMX-TILE, AMX-INT8
    r.xcr0 |= 0x60000;                                    // tile configuration and data state
  }
  const bool amx_hw = ((r.leaf7_edx >> 24) & 1u) && ((r.xcr0 & 0x60000) == 0x60000);
  r.amx_permitted = amx_hw && (software_tiles || request_amx_permission());
  cpu_info info;
  info.arch = "x86_64";
  info.model = brand_string();
  info.isas = decode_x86(r, &info.features);
  return info;
}

}  // namespace lowbit::detail
