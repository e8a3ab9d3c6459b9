#!/usr/bin/env bash
# Installs a lowbit build tree and proves the installed package works for an
# outside project:
#
#   bash tests/package/run.sh <build-dir> <work-dir>
#
#   1. cmake --install <build-dir> --prefix <work-dir>/prefix
#   2. configure tests/package against that prefix alone, into <work-dir>/build,
#      with the build tree's own C++ compiler (so the clang build is tested
#      with clang) and generator
#   3. build it, run the consumer, run the installed <prefix>/bin/lowbit-info --json
#
# <work-dir>/prefix and <work-dir>/build are recreated each run. Every step
# that fails stops the script with a line naming the step. ctest registers
# this as the package_install test.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 <lowbit-build-dir> <work-dir>" >&2
  exit 2
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD_DIR="$(cd "$1" && pwd)"
mkdir -p "$2"
WORK_DIR="$(cd "$2" && pwd)"
PREFIX="${WORK_DIR}/prefix"
CONSUMER_BUILD="${WORK_DIR}/build"
CACHE="${BUILD_DIR}/CMakeCache.txt"

die() { echo "package test: FAILED: $*" >&2; exit 1; }
step() { echo; echo "---- package test: $*"; }
run() { echo "+ $*"; "$@" || die "'$*' exited with status $?"; }

[[ -f "${CACHE}" ]] || die "${BUILD_DIR} is not a configured CMake build directory (no CMakeCache.txt)"
[[ "${WORK_DIR}" != "/" && "${WORK_DIR}" != "${BUILD_DIR}" ]] || die "refusing work dir ${WORK_DIR}"

# cache_value NAME: the value of NAME in the build tree's cache ("" if unset).
cache_value() { sed -n "s/^$1:[A-Za-z]*=//p" "${CACHE}" | head -n 1; }

# The C++ compiler: cached when chosen on the command line or found by CMake,
# only recorded under CMakeFiles/ when a toolchain file set it.
cxx="$(cache_value CMAKE_CXX_COMPILER)"
if [[ -z "${cxx}" ]]; then
  for f in "${BUILD_DIR}"/CMakeFiles/[0-9]*/CMakeCXXCompiler.cmake; do
    [[ -f "${f}" ]] && cxx="$(sed -n 's/^set(CMAKE_CXX_COMPILER "\(.*\)")$/\1/p' "${f}")"
  done
fi
generator="$(cache_value CMAKE_GENERATOR)"
build_type="$(cache_value CMAKE_BUILD_TYPE)"
toolchain="$(cache_value CMAKE_TOOLCHAIN_FILE)"
sanitize="$(cache_value LOWBIT_SANITIZE)"
[[ -n "${cxx}" ]] || die "no CMAKE_CXX_COMPILER in ${CACHE}"

configure_args=(
  -S "${HERE}" -B "${CONSUMER_BUILD}"
  -DCMAKE_PREFIX_PATH="${PREFIX}"
  -DLOWBIT_EXPECTED_PREFIX="${PREFIX}"
  -DCMAKE_BUILD_TYPE="${build_type:-Release}"
  # Only the prefix: never a build tree that registered itself somewhere.
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
)
[[ -n "${generator}" ]] && configure_args+=(-G "${generator}")
if [[ -n "${toolchain}" ]]; then
  # The toolchain names the compiler. Cross toolchains search for packages
  # only under their find roots: make the install prefix one.
  configure_args+=(-DCMAKE_TOOLCHAIN_FILE="${toolchain}" -DCMAKE_FIND_ROOT_PATH="${PREFIX}")
else
  configure_args+=(-DCMAKE_CXX_COMPILER="${cxx}")
fi
if [[ "${sanitize}" =~ ^(ON|on|1|TRUE|true|YES|yes)$ ]]; then
  # The installed library was compiled with the sanitizers; its users must link them.
  configure_args+=(-DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer"
                   -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined")
fi

step "install ${BUILD_DIR} into ${PREFIX}"
rm -rf "${PREFIX}" "${CONSUMER_BUILD}"
install_args=(--install "${BUILD_DIR}" --prefix "${PREFIX}")
[[ -n "${build_type}" ]] && install_args+=(--config "${build_type}")
run cmake "${install_args[@]}"
for f in include/lowbit/lowbit.h include/lowbit/lowbit.hpp include/lowbit/kernels/ref/quant.hpp bin/lowbit-info; do
  [[ -e "${PREFIX}/${f}" ]] || die "the install has no ${f}"
done
config=$(find "${PREFIX}" -name lowbitConfig.cmake -print -quit)
[[ -n "${config}" ]] || die "the install has no lowbitConfig.cmake"
echo "installed: ${config}"

step "configure the consumer with ${cxx}"
run env -u CC -u CXX -u CXXFLAGS -u LDFLAGS cmake "${configure_args[@]}"

step "build the consumer"
run cmake --build "${CONSUMER_BUILD}"

# A cross build runs its programs under the toolchain's emulator (e.g. qemu).
emulator=()
if [[ -s "${CONSUMER_BUILD}/emulator.txt" ]]; then
  IFS=';' read -r -a emulator <"${CONSUMER_BUILD}/emulator.txt" || true  # no final newline
fi

step "run the consumer"
run "${emulator[@]}" "${CONSUMER_BUILD}/consumer"

step "run the installed lowbit-info --json"
json="$("${emulator[@]}" "${PREFIX}/bin/lowbit-info" --json)" || die "${PREFIX}/bin/lowbit-info --json exited with status $?"
echo "${json}"
[[ "${json}" == "{"*'"compiled": ['*'"selected": {'*"}" ]] || die "lowbit-info --json printed no JSON object with compiled and selected"
if command -v python3 >/dev/null 2>&1; then
  python3 -c 'import json, sys; json.loads(sys.stdin.read())' <<<"${json}" || die "lowbit-info --json is not valid JSON"
fi

echo
echo "package test: PASSED (${cxx}, prefix ${PREFIX})"
