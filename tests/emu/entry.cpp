// Entry points of lowbit-tests-emu, the test suites as a shared library.
// tests/emu/run_emulated.py loads it into its own process, so that its
// relocations, its static constructors (GoogleTest's registrations) and the
// C library it uses are the host's, then runs lowbit_emu_main on an emulated
// CPU. Nothing here runs natively except lowbit_emu_fs_base.
#include <gtest/gtest.h>

#include <cstdint>

/// The calling thread's TLS base (the thread pointer glibc keeps at %fs:0):
/// the emulated CPU runs with the same FS base, so thread-locals (errno,
/// malloc's cache, GoogleTest's state) are the ones the host set up.
extern "C" __attribute__((visibility("default"))) uint64_t lowbit_emu_fs_base() {
  uint64_t base;
  __asm__("mov %%fs:0, %0" : "=r"(base));
  return base;
}

/// GoogleTest's main, for the emulated CPU.
extern "C" __attribute__((visibility("default"))) int lowbit_emu_main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

/// CPUID as the CPU running this sees it: run emulated, it tells the driver
/// which model the emulator presents.
extern "C" __attribute__((visibility("default"))) void lowbit_emu_cpuid(uint32_t leaf, uint32_t subleaf,
                                                                        uint32_t* out) {
  uint32_t a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(leaf), "c"(subleaf));
  out[0] = a;
  out[1] = b;
  out[2] = c;
  out[3] = d;
}
