// ISA tiers, the detection result and the run-time overrides.
//
// An ISA tier is a bundle of CPU features that one folder of kernels may use
// (kernels/x86/avx512_vnni needs AVX-512 F/BW/DQ/VL + VNNI and the OS saving
// ZMM state). The enum order is the order of preference within each
// architecture: scalar < avx2 < avx2_vnni < avx512 < avx512_vnni < amx, and
// scalar < neon < dotprod < i8mm. Dispatch picks, per op, the most preferred
// tier that is compiled in, detected and not removed by an override.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

/// ISA tiers in preference order within each architecture.
enum class isa : uint8_t { scalar, avx2, avx2_vnni, avx512, avx512_vnni, amx, neon, dotprod, i8mm };
inline constexpr int isa_count = 9;

/// A set of ISA tiers as a bitmask.
class isa_set {
 public:
  constexpr isa_set() = default;
  constexpr isa_set(std::initializer_list<isa> tiers) {
    for (isa t : tiers) insert(t);
  }
  constexpr static isa_set from_bits(uint32_t bits) {
    isa_set s;
    s.bits_ = bits;
    return s;
  }
  constexpr bool contains(isa t) const { return (bits_ >> static_cast<int>(t)) & 1u; }
  constexpr void insert(isa t) { bits_ |= 1u << static_cast<int>(t); }
  constexpr void erase(isa t) { bits_ &= ~(1u << static_cast<int>(t)); }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr uint32_t bits() const { return bits_; }
  constexpr isa_set operator&(isa_set o) const { return from_bits(bits_ & o.bits_); }
  constexpr isa_set operator|(isa_set o) const { return from_bits(bits_ | o.bits_); }
  constexpr isa_set without(isa_set o) const { return from_bits(bits_ & ~o.bits_); }
  constexpr bool operator==(const isa_set&) const = default;
  /// The tiers in preference order, lowest first.
  std::vector<isa> list() const;

 private:
  uint32_t bits_ = 0;
};

/// "scalar", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "amx", "neon", "dotprod", "i8mm".
std::string_view isa_name(isa t);
/// The tier with that name, or nothing.
std::optional<isa> parse_isa(std::string_view name);
/// Tiers named in a comma- or space-separated list ("amx,avx512_vnni").
/// Throws lowbit::Error (invalid_argument) on an unknown name.
isa_set parse_isa_list(std::string_view text);
/// Space-separated names of the tiers in `s`.
std::string to_string(isa_set s);

/// The architecture family of a tier: "any" for scalar, "x86" or "arm".
std::string_view isa_family(isa t);

/// What detection found on this CPU.
struct cpu_info {
  std::string arch;                   ///< "x86_64", "aarch64", ...
  std::string model;                  ///< CPU brand string where available
  std::vector<std::string> features;  ///< raw features seen: "avx2", "avx512_vnni", "os_zmm", ...
  isa_set isas;                       ///< tiers whose every requirement is met
};

/// Detection runs once and is cached; it also requests AMX tile permission on Linux.
const cpu_info& detected_cpu();
/// Tiers compiled into this build of the library.
isa_set compiled_isas();
/// Tiers dispatch may use now: compiled, detected, and allowed by the overrides.
isa_set enabled_isas();

/// Caps dispatch at `max` (it and the tiers below it). Throws lowbit::Error
/// (isa_unavailable) naming the available tiers when `max` is not available.
void set_isa_max(isa max);
/// Removes `tiers` from dispatch. Each must be available, or lowbit::Error.
void set_disabled_isas(isa_set tiers);
/// Applies overrides given as text, exactly as the environment variables
/// LOWBIT_ISA_MAX and LOWBIT_ISA_DISABLE (comma- or space-separated) would.
/// Empty strings mean "no override". Throws lowbit::Error on an unknown name.
void set_isa_overrides(std::string_view max, std::string_view disable);
/// Drops every override, including those read from the environment.
void clear_isa_overrides();
/// Logs every dispatch decision to stderr (also LOWBIT_VERBOSE=1).
void set_verbose(bool on);

namespace detail {
/// Raw x86 CPUID/XGETBV values detection decodes; split out so it is testable.
struct x86_registers {
  uint32_t max_leaf = 0;
  uint32_t leaf1_ecx = 0;
  uint32_t leaf7_ebx = 0, leaf7_ecx = 0, leaf7_edx = 0;
  uint32_t leaf7_1_eax = 0;
  uint64_t xcr0 = 0;
  bool amx_permitted = false;  ///< the kernel granted XTILEDATA (ARCH_REQ_XCOMP_PERM)
};
/// Decodes x86 registers into tiers and the list of raw features seen.
isa_set decode_x86(const x86_registers& regs, std::vector<std::string>* features = nullptr);
/// Decodes Linux AT_HWCAP / AT_HWCAP2 of an aarch64 CPU.
isa_set decode_arm(uint64_t hwcap, uint64_t hwcap2, std::vector<std::string>* features = nullptr);
}  // namespace detail

}  // namespace lowbit
