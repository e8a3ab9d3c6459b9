#!/usr/bin/env bash
# The test command: builds lowbit four ways and runs every ctest suite of each.
#
#   gcc      GCC 12, Release, warnings as errors              build/gcc
#   clang    Clang 14, Release, warnings as errors            build/clang
#   asan     Clang 14, RelWithDebInfo, ASan + UBSan, no bench build/asan
#   aarch64  GCC 12 cross build for Arm, tests under qemu     build/aarch64
#
# Usage: bash ci/test.sh [--only gcc,aarch64] [--no-setup] [--list]
# Environment:
#   LOWBIT_JOBS        build and ctest parallelism (default: nproc)
#   LOWBIT_CTEST_ARGS  extra ctest arguments, e.g. "-R quant" (word-split)
#   LOWBIT_REQUIRE_MODEL=1  the model tests (ctest label 'model') fail instead
#                      of skipping when the default model cannot be fetched;
#                      .ci/run sets it
#
# The stages share nothing but the source tree, so a developer can run just the
# one they touched. Each build directory is reused between runs (incremental);
# one configured with another compiler or generator is reconfigured from
# scratch. The script stops at the first failing step and exits non-zero; the
# summary at the end says which stages passed, failed or did not run.
set -euo pipefail

ALL_STAGES=(gcc clang asan aarch64)

usage() { sed -n '2,13s/^# \{0,1\}//p' "$0"; }

only=""
run_setup=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --only) [[ $# -ge 2 ]] || { echo "ci/test.sh: --only needs a stage list" >&2; exit 2; }
            only="$2"; shift 2 ;;
    --only=*) only="${1#--only=}"; shift ;;
    --no-setup) run_setup=0; shift ;;
    --list) printf '%s\n' "${ALL_STAGES[@]}"; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "ci/test.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

stages=()
if [[ -z "${only}" ]]; then
  stages=("${ALL_STAGES[@]}")
else
  IFS=',' read -r -a requested <<<"${only}"
  for s in "${requested[@]}"; do
    [[ -z "${s}" ]] && continue
    if [[ " ${ALL_STAGES[*]} " != *" ${s} "* ]]; then
      echo "ci/test.sh: unknown stage '${s}' (stages: ${ALL_STAGES[*]})" >&2
      exit 2
    fi
    stages+=("${s}")
  done
  [[ ${#stages[@]} -gt 0 ]] || { echo "ci/test.sh: --only selected no stage" >&2; exit 2; }
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
JOBS="${LOWBIT_JOBS:-$(nproc)}"
read -r -a CTEST_EXTRA <<<"${LOWBIT_CTEST_ARGS:-}"

# ---- reporting ------------------------------------------------------------------
declare -A RESULT=() SECONDS_TAKEN=()
current=""
stage_start=0

banner() {
  local line="=============================================================================="
  printf '\n%s\n== %s\n%s\n' "${line}" "$*" "${line}"
}

summary() {
  local rc=$?
  if [[ -n "${current}" ]]; then
    RESULT[${current}]="FAILED"
    SECONDS_TAKEN[${current}]=$(( $(date +%s) - stage_start ))
  fi
  banner "ci/test.sh summary"
  for s in "${stages[@]}"; do
    local r="${RESULT[${s}]:-not run}"
    if [[ -n "${SECONDS_TAKEN[${s}]:-}" ]]; then
      printf '  %-8s %-8s %5ss\n' "${s}" "${r}" "${SECONDS_TAKEN[${s}]}"
    else
      printf '  %-8s %s\n' "${s}" "${r}"
    fi
  done
  if [[ ${rc} -eq 0 ]]; then
    echo "ci/test.sh: all selected stages passed"
  else
    echo "ci/test.sh: FAILED (exit ${rc})" >&2
  fi
}
trap summary EXIT

# ---- helpers ----------------------------------------------------------------
# configure <build-dir> <c++ compiler command> <cmake args...>
# Reuses the build directory unless it was made with another C++ compiler or
# generator, in which case it is configured afresh (a cache cannot switch).
configure() {
  local dir="$1" cxx="$2"; shift 2
  local fresh=()
  if [[ -f "${dir}/CMakeCache.txt" ]]; then
    local cached_cxx cached_gen want_cxx
    cached_cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "${dir}/CMakeCache.txt")
    if [[ -z "${cached_cxx}" ]]; then
      # A compiler named by a toolchain file is not cached, only recorded here.
      local f
      for f in "${dir}"/CMakeFiles/[0-9]*/CMakeCXXCompiler.cmake; do
        [[ -f "${f}" ]] && cached_cxx=$(sed -n 's/^set(CMAKE_CXX_COMPILER "\(.*\)")$/\1/p' "${f}")
      done
    fi
    cached_gen=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "${dir}/CMakeCache.txt")
    want_cxx=$(command -v "${cxx}")
    if [[ "${cached_gen}" != "Ninja" ]] ||
       [[ -z "${cached_cxx}" ]] ||
       [[ "$(readlink -f "${cached_cxx}")" != "$(readlink -f "${want_cxx}")" ]]; then
      echo "ci/test.sh: ${dir} was configured with '${cached_cxx:-?}' / '${cached_gen:-?}'; reconfiguring from scratch"
      fresh=(--fresh)
    fi
  fi
  echo "+ cmake -S . -B ${dir} -G Ninja ${fresh[*]} $*"
  cmake -S . -B "${dir}" -G Ninja "${fresh[@]}" "$@"
}

build_and_test() {
  local dir="$1"
  echo "+ cmake --build ${dir} -j ${JOBS}"
  cmake --build "${dir}" -j "${JOBS}"
  echo "+ ctest --test-dir ${dir} --output-on-failure --no-tests=error -j ${JOBS} ${CTEST_EXTRA[*]}"
  ctest --test-dir "${dir}" --output-on-failure --no-tests=error -j "${JOBS}" "${CTEST_EXTRA[@]}"
}

# ---- stages -----------------------------------------------------------------
stage_gcc() {
  # oneDNN is linked here only: it is a benchmark peer, not part of the library.
  CC=gcc CXX=g++ configure build/gcc g++ \
    -DCMAKE_BUILD_TYPE=Release -DLOWBIT_WERROR=ON -DLOWBIT_SANITIZE=OFF -DLOWBIT_ONEDNN=ON
  build_and_test build/gcc
}

stage_clang() {
  CC=clang CXX=clang++ configure build/clang clang++ \
    -DCMAKE_BUILD_TYPE=Release -DLOWBIT_WERROR=ON -DLOWBIT_SANITIZE=OFF
  build_and_test build/clang
}

stage_asan() {
  CC=clang CXX=clang++ configure build/asan clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOWBIT_WERROR=ON -DLOWBIT_SANITIZE=ON -DLOWBIT_BUILD_BENCH=OFF
  ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    build_and_test build/asan
  # The GGUF reader's libFuzzer target, 30 s over its seed corpus.
  LOWBIT_JOBS="${JOBS}" bash "${ROOT}/ci/fuzz.sh" build/asan
}

stage_aarch64() {
  # The toolchain file names the compilers and the qemu emulator ctest runs
  # each test binary under. The decoder is left out here: it is portable code
  # over the public API (the kernels under test are the arch-specific part), and
  # its tokenizer needs an arm64 PCRE2 that Debian's cross toolchain lacks.
  (
    unset CC CXX
    configure build/aarch64 aarch64-linux-gnu-g++ \
      -DCMAKE_TOOLCHAIN_FILE="${ROOT}/cmake/toolchains/aarch64-linux-gnu.cmake" \
      -DCMAKE_BUILD_TYPE=Release -DLOWBIT_WERROR=ON -DLOWBIT_BUILD_BENCH=OFF \
      -DLOWBIT_BUILD_DECODER=OFF
  )
  build_and_test build/aarch64
}

describe() {
  case "$1" in
    gcc)     echo "GCC $(gcc -dumpfullversion), Release, -Werror -> build/gcc" ;;
    clang)   echo "Clang $(clang -dumpversion), Release, -Werror -> build/clang" ;;
    asan)    echo "Clang $(clang -dumpversion), RelWithDebInfo, AddressSanitizer + UBSan -> build/asan" ;;
    aarch64) echo "aarch64 cross build (GCC $(aarch64-linux-gnu-gcc -dumpfullversion)), tests under qemu -> build/aarch64" ;;
  esac
}

# ---- main -------------------------------------------------------------------
if [[ ${run_setup} -eq 1 ]]; then
  banner "setup: ci/setup.sh"
  bash "${ROOT}/ci/setup.sh" base onednn
fi

# The default model for the decoder's end-to-end tests (ctest label 'model'):
# fetched once into the cache; the tests find it through LOWBIT_MODEL.
banner "model: ci/fetch_model.sh"
if model_path=$(bash "${ROOT}/ci/fetch_model.sh"); then
  export LOWBIT_MODEL="${model_path}"
  echo "ci/test.sh: default model at ${LOWBIT_MODEL}"
elif [[ "${LOWBIT_REQUIRE_MODEL:-0}" == "1" ]]; then
  echo "ci/test.sh: the default model could not be fetched and LOWBIT_REQUIRE_MODEL=1" >&2
  exit 1
else
  echo "ci/test.sh: the default model could not be fetched; the model tests will skip" >&2
fi

for s in "${stages[@]}"; do
  current="${s}"
  stage_start=$(date +%s)
  banner "stage ${s}: $(describe "${s}")"
  "stage_${s}"
  RESULT[${s}]="passed"
  SECONDS_TAKEN[${s}]=$(( $(date +%s) - stage_start ))
  current=""
done
