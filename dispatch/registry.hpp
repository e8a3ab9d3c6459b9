// Kernel registry and dispatch tables (internal to the library).
//
// The registry is every kernel compiled into this build, filled once by the
// generated ISA translation units from the .inc lists. A dispatch table is the
// choice made from it for one set of enabled tiers: per op (and per M class for
// GEMM), the kernel of the most preferred enabled tier. Tables are immutable;
// an override change builds a new one and swaps a pointer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/ukernel.hpp"
#include "lowbit/formats.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/isa.hpp"

namespace lowbit::detail {

/// M classes of GEMM: one row (GEMV), a few rows, many rows.
enum class m_class : uint8_t { gemv = 0, small = 1, large = 2 };
inline constexpr int m_class_count = 3;
inline constexpr const char* m_class_names[m_class_count] = {"gemv", "small", "large"};

/// Bits of the m_classes field of a .inc line.
inline constexpr uint8_t m_class_bit(m_class c) { return static_cast<uint8_t>(1u << static_cast<int>(c)); }

struct quant_entry {
  isa tier;
  const char* name;
  format fmt;
  kernels::quantize_fn fn;
};
struct dequant_entry {
  isa tier;
  const char* name;
  format fmt;
  kernels::dequantize_fn fn;
};
struct packer_entry {
  isa tier;
  const char* name;
  kernels::packed_size_fn packed_size;
  kernels::pack_fn pack;
};
struct linear_entry {
  isa tier;
  const char* name;
  format weights, activations;
  int mr, nr;
  const char* packer;
  uint8_t m_classes;
  kernels::linear_fn fn;
};
struct gemm_s8_entry {
  isa tier;
  const char* name;
  int8_type a_type;
  int mr, nr;
  uint8_t m_classes;
  kernels::gemm_s8_fn fn;
};
struct attention_entry {
  isa tier;
  const char* name;
  format k_format, v_format;
  kernels::attention_fn fn;
};

/// One ISA unit's kernels (dispatch/register_isa.inc): constant data, laid
/// out by the compiler and linker, so that nothing the unit compiled with
/// its ISA's flags runs before dispatch has checked the CPU. Each list ends
/// with one value-initialised entry (an array cannot be empty), not counted.
struct isa_kernels {
  std::span<const quant_entry> quantize;
  std::span<const dequant_entry> dequantize;
  std::span<const packer_entry> packers;
  std::span<const linear_entry> linear;
  std::span<const gemm_s8_entry> gemm_s8;
  std::span<const attention_entry> attention;
};

/// Every kernel compiled into this build.
struct kernel_registry {
  isa_set compiled;
  std::vector<quant_entry> quantize;
  std::vector<dequant_entry> dequantize;
  std::vector<packer_entry> packers;
  std::vector<linear_entry> linear;
  std::vector<gemm_s8_entry> gemm_s8;
  std::vector<attention_entry> attention;
};

/// The registry, built on first use.
const kernel_registry& registry();

/// Index of a format in lowbit::format_table.
inline constexpr size_t format_slots = sizeof(format_table) / sizeof(format_table[0]);
size_t format_slot(format f);

/// The kernels selected for one set of enabled tiers.
struct dispatch_table {
  isa_set enabled;
  const quant_entry* quantize[format_slots] = {};
  const dequant_entry* dequantize[format_slots] = {};
  const linear_entry* linear[format_slots][m_class_count] = {};
  const packer_entry* linear_packer[format_slots][m_class_count] = {};
  const gemm_s8_entry* gemm_s8[2][m_class_count] = {};
  const attention_entry* attention[format_slots][format_slots] = {};  ///< [K format][V format]
};

/// The table for the current overrides. Throws lowbit::Error when the
/// environment's overrides are invalid (every call, until replaced by the API).
const dispatch_table& current_table();

/// Builds a table for `enabled` (exposed for tests of the selection rule).
dispatch_table build_table(const kernel_registry& reg, isa_set enabled);

/// The M class of a GEMM with `m` rows (thresholds in dispatch/thresholds.hpp).
m_class classify_m(size_t m);

/// Detection of this CPU (per-architecture source file).
cpu_info detect_this_cpu();

}  // namespace lowbit::detail
