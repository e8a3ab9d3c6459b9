# Cross-compiles lowbit for 64-bit Arm Linux with Debian's GNU cross toolchain
# (apt: g++-aarch64-linux-gnu) and runs the results under qemu user-mode
# emulation (apt: qemu-user), so `ctest` works on an x86 host:
#
#   cmake -S . -B build/aarch64 -G Ninja \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DLOWBIT_BUILD_BENCH=OFF
#   cmake --build build/aarch64 && ctest --test-dir build/aarch64
#
# qemu-aarch64's default CPU ("max") implements NEON, dotprod and i8mm, so every
# Arm tier runs. Set LOWBIT_AARCH64_QEMU_CPU (e.g. cortex-a53, cortex-a76) to
# emulate an older core and exercise the lower tiers of dispatch.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(LOWBIT_AARCH64_TRIPLE aarch64-linux-gnu)
set(LOWBIT_AARCH64_SYSROOT /usr/${LOWBIT_AARCH64_TRIPLE}
    CACHE PATH "Target library root (qemu -L and the find root)")

set(CMAKE_C_COMPILER ${LOWBIT_AARCH64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${LOWBIT_AARCH64_TRIPLE}-g++)

# Libraries, headers and packages come from target roots only, never from the
# host's /usr; programs (python, helpers) from the host. More roots, e.g. an
# aarch64 install prefix of some dependency, can be given with
# -DCMAKE_FIND_ROOT_PATH=<dir;...>: they are kept ahead of the sysroot.
list(APPEND CMAKE_FIND_ROOT_PATH ${LOWBIT_AARCH64_SYSROOT})
list(REMOVE_DUPLICATES CMAKE_FIND_ROOT_PATH)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(LOWBIT_AARCH64_QEMU_CPU "" CACHE STRING "qemu-aarch64 -cpu model for tests (empty = qemu's default, max)")
if(LOWBIT_AARCH64_QEMU_CPU)
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;${LOWBIT_AARCH64_SYSROOT};-cpu;${LOWBIT_AARCH64_QEMU_CPU})
else()
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;${LOWBIT_AARCH64_SYSROOT})
endif()
