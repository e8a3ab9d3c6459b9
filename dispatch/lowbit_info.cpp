// lowbit-info: what this build has, what this CPU has, what dispatch picks.
//
// Three things, kept separate on purpose: the ISA tiers compiled in, the
// features and tiers detected, and the kernel selected per op (after the
// LOWBIT_ISA_* overrides). --json prints the same as one object.
#include <cstdio>
#include <cstring>
#include <string>

#include "lowbit/lowbit.hpp"

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

template <typename List, typename Name>
std::string json_list(const List& items, Name name) {
  std::string out = "[";
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += ", ";
    first = false;
    out += json_string(std::string(name(item)));
  }
  return out + "]";
}

void usage() {
  std::puts(
      "usage: lowbit-info [--json]\n"
      "  Prints the ISA tiers compiled in, the CPU features and tiers detected,\n"
      "  and the kernel dispatch selects per op. Honours LOWBIT_ISA_MAX,\n"
      "  LOWBIT_ISA_DISABLE, LOWBIT_NUM_THREADS and LOWBIT_VERBOSE.");
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "lowbit-info: unknown argument '%s'\n", argv[i]);
      usage();
      return 2;
    }
  }
  try {
    const lowbit::cpu_info& cpu = lowbit::detected_cpu();
    const auto compiled = lowbit::compiled_isas().list();
    const auto detected = cpu.isas.list();
    const auto enabled = lowbit::enabled_isas().list();
    const auto selected = lowbit::selected_kernels();
    const size_t threads = lowbit::num_threads();
    auto name = [](lowbit::isa t) { return lowbit::isa_name(t); };
    if (json) {
      std::string out = "{\"version\": " + json_string(lowbit::version());
      out += ", \"arch\": " + json_string(cpu.arch) + ", \"cpu\": " + json_string(cpu.model);
      out += ", \"threads\": " + std::to_string(threads);
      out += ", \"compiled\": " + json_list(compiled, name);
      out += ", \"detected\": " + json_list(detected, name);
      out += ", \"features\": " + json_list(cpu.features, [](const std::string& s) { return s; });
      out += ", \"enabled\": " + json_list(enabled, name);
      out += ", \"selected\": {";
      for (size_t i = 0; i < selected.size(); ++i)
        out += (i ? ", " : "") + json_string(selected[i].op) + ": " + json_string(selected[i].kernel);
      out += "}}";
      std::puts(out.c_str());
      return 0;
    }
    std::printf("lowbit %s on %s%s%s, %zu threads\n", lowbit::version(), cpu.arch.c_str(),
                cpu.model.empty() ? "" : " — ", cpu.model.c_str(), threads);
    std::printf("compiled ISAs : %s\n", lowbit::to_string(lowbit::compiled_isas()).c_str());
    std::printf("detected ISAs : %s\n", lowbit::to_string(cpu.isas).c_str());
    std::printf("CPU features  :");
    for (const auto& f : cpu.features) std::printf(" %s", f.c_str());
    std::printf("\nenabled ISAs  : %s\n", lowbit::to_string(lowbit::enabled_isas()).c_str());
    std::printf("selected kernels:\n");
    for (const auto& c : selected)
      std::printf("  %-24s %-36s [%s]\n", c.op.c_str(), c.kernel.c_str(), std::string(lowbit::isa_name(c.tier)).c_str());
    return 0;
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "lowbit-info: %s\n", e.what());
    return 2;
  }
}
