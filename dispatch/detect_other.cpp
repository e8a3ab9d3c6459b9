// Detection on architectures lowbit has no SIMD tiers for: scalar only.
#include "dispatch/registry.hpp"

namespace lowbit::detail {

cpu_info detect_this_cpu() {
  cpu_info info;
  info.arch = "unknown";
  info.isas = isa_set{isa::scalar};
  return info;
}

}  // namespace lowbit::detail
