// Arm half of CPU detection: Linux AT_HWCAP / AT_HWCAP2.
#include <sys/auxv.h>

#include "dispatch/registry.hpp"

namespace lowbit::detail {

cpu_info detect_this_cpu() {
  cpu_info info;
  info.arch = "aarch64";
  info.isas = decode_arm(getauxval(AT_HWCAP), getauxval(AT_HWCAP2), &info.features);
  return info;
}

}  // namespace lowbit::detail
