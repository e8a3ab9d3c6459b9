#!/usr/bin/env bash
# Fuzzes the GGUF reader for a bounded time with libFuzzer (ASan + UBSan).
#
#   bash ci/fuzz.sh [build-dir]     default build-dir: build/asan
#
# The build directory must be a Clang one (the fuzz target lowbit-gguf-fuzz
# exists only there); when it does not exist yet it is configured with Clang.
# The fuzzer runs over a temporary copy of tests/fuzz/corpus/gguf, so nothing
# it discovers is written into the repository. Any crash, sanitizer report,
# timeout or out-of-memory fails the script; the reproducer is kept under
# <build-dir>/fuzz-artifacts/ (rerun it: <build-dir>/tests/lowbit-gguf-fuzz FILE).
#
# Environment:
#   LOWBIT_FUZZ_SECONDS  fuzzing time (default 30)
#   LOWBIT_JOBS          build parallelism (default: nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
dir="${1:-build/asan}"
seconds="${LOWBIT_FUZZ_SECONDS:-30}"
jobs="${LOWBIT_JOBS:-$(nproc)}"

if [[ ! -f "${dir}/CMakeCache.txt" ]]; then
  echo "+ configuring ${dir} with Clang"
  CC=clang CXX=clang++ cmake -S . -B "${dir}" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOWBIT_BUILD_BENCH=OFF
fi
if ! grep -q '^LOWBIT_HAVE_LIBFUZZER:INTERNAL=1$' "${dir}/CMakeCache.txt"; then
  echo "ci/fuzz.sh: ${dir} has no lowbit-gguf-fuzz target: it needs a Clang build with libFuzzer" \
       "(libclang-rt-dev); configure it with CC=clang CXX=clang++" >&2
  exit 2
fi
echo "+ cmake --build ${dir} -j ${jobs} --target lowbit-gguf-fuzz"
cmake --build "${dir}" -j "${jobs}" --target lowbit-gguf-fuzz

work="$(mktemp -d "${TMPDIR:-/tmp}/lowbit-fuzz.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/corpus" "${work}/artifacts"
cp "${ROOT}"/tests/fuzz/corpus/gguf/* "${work}/corpus/"

echo "+ lowbit-gguf-fuzz for ${seconds} s over a copy of tests/fuzz/corpus/gguf"
status=0
ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
  "${dir}/tests/lowbit-gguf-fuzz" \
    -max_total_time="${seconds}" -rss_limit_mb=2048 -timeout=10 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="${work}/artifacts/" \
    "${work}/corpus" || status=$?

if [[ ${status} -ne 0 ]] || [[ -n "$(ls -A "${work}/artifacts")" ]]; then
  mkdir -p "${dir}/fuzz-artifacts"
  cp "${work}"/artifacts/* "${dir}/fuzz-artifacts/" 2>/dev/null || true
  echo "ci/fuzz.sh: FAILED (exit ${status}); reproducers in ${dir}/fuzz-artifacts:" >&2
  ls -l "${dir}/fuzz-artifacts" >&2 || true
  exit 1
fi
echo "ci/fuzz.sh: no crash in ${seconds} s"
