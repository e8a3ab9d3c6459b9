#!/usr/bin/env bash
# The AVX-512 and AMX tiers' tests on an emulated CPU, for machines that lack them.
#
# ctest runs every tier this machine has; on an AVX2-only machine (an AMD
# Zen 2 or 3, an Intel client core) the avx512, avx512_vnni and amx kernels,
# and avx2_vnni's on cores without AVX-VNNI, are compiled but never run. This
# builds the kernel suites as a shared library (build/emu) and runs them on
# Bochs' Sapphire Rapids model through tests/emu/run_emulated.py, with
# for_each_tier limited to those tiers (LOWBIT_TEST_TIERS). Emulation is some
# hundreds of times slower than the hardware, so it runs the tiers' tests in
# parallel shards and leaves out what needs threads. The emulator has no AMX,
# so the library is built with LOWBIT_SOFT_AMX: the amx tier's few tile
# instructions become functions (tests/emu/soft_amx.hpp) and the rest of its
# kernels run emulated as they are.
#
# Usage: bash ci/test_emulated.sh [--force] [GTEST_FILTER]
#   --force        run even where the CPU has the tiers natively
#   GTEST_FILTER   the tests to run (default: EMULATED_FILTER below)
# Environment:
#   LOWBIT_JOBS        jobs (a tier's shard each) run at once (default: nproc)
#   LOWBIT_TEST_TIERS  the tiers to test (default: avx2_vnni,avx512,avx512_vnni,amx)
set -euo pipefail

# The suites that walk the tiers, less the tests that start threads (one
# emulated CPU runs one thread) and the dispatch tests that name the host's
# own CPU.
EMULATED_FILTER='Attention.*:PagedAttention.*:Gemm.*:Quant.*:Formats.*:Overrides.*:CApi.*'
EMULATED_FILTER+=':-PagedAttention.ResultsDoNotDependOnTheThreadCount:Quant.DequantizeToF16AndBf16AcrossManyTasks'
EMULATED_FILTER+=':CApi.NumThreads'

force=0
filter="${EMULATED_FILTER}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) force=1; shift ;;
    -h|--help) sed -n '2,23s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "ci/test_emulated.sh: unknown option '$1'" >&2; exit 2 ;;
    *) filter="$1"; shift ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
JOBS="${LOWBIT_JOBS:-$(nproc)}"
export LOWBIT_TEST_TIERS="${LOWBIT_TEST_TIERS:-avx2_vnni,avx512,avx512_vnni,amx}"

if [[ ${force} -eq 0 ]] && grep -qw avx512_vnni /proc/cpuinfo && grep -qw avx_vnni /proc/cpuinfo &&
  grep -qw amx_tile /proc/cpuinfo; then
  echo "ci/test_emulated.sh: this CPU runs ${LOWBIT_TEST_TIERS} natively (ci/test.sh tests them); --force to emulate anyway"
  exit 0
fi

PY=$(bash tests/emu/setup.sh | tail -n 1)

echo "+ cmake -S . -B build/emu (Release, position-independent, LOWBIT_EMU_TESTS=ON, LOWBIT_SOFT_AMX=ON)"
CC=gcc CXX=g++ cmake -S . -B build/emu -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWBIT_WERROR=ON \
  -DLOWBIT_BUILD_BENCH=OFF -DLOWBIT_BUILD_DECODER=OFF \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DLOWBIT_EMU_TESTS=ON -DLOWBIT_SOFT_AMX=ON >/dev/null
cmake --build build/emu -j "${JOBS}" --target lowbit-tests-emu

lib=build/emu/tests/liblowbit-tests-emu.so
logs=build/emu/emulated-logs
rm -rf "${logs}" && mkdir -p "${logs}"
# One job per tier and shard, JOBS at a time: a tier's tests in one process
# would leave the slowest test's tiers in series (GEMM's sweep takes most of
# the time), and the tiers split it evenly.
IFS=',' read -r -a tiers <<<"${LOWBIT_TEST_TIERS}"
shards=${JOBS}
echo "ci/test_emulated.sh: ${filter} on tiers ${LOWBIT_TEST_TIERS}: ${#tiers[@]} x ${shards} jobs, ${JOBS} at a time; logs in ${logs}"
start=$(date +%s)
run_job() {  # tier shard
  LOWBIT_TEST_TIERS="$1" GTEST_TOTAL_SHARDS=${shards} GTEST_SHARD_INDEX="$2" \
    "${PY}" tests/emu/run_emulated.py "${lib}" --gtest_filter="${filter}" --gtest_brief=1 \
    >"${logs}/$1-shard-$2.log" 2>&1
  echo $? >"${logs}/$1-shard-$2.status"
}
export -f run_job
export PY lib filter logs shards
for t in "${tiers[@]}"; do
  for ((i = 0; i < shards; ++i)); do echo "${t} ${i}"; done
done | xargs -P "${JOBS}" -L 1 bash -c 'run_job "$0" "$1"'
failed=0
for t in "${tiers[@]}"; do
  for ((i = 0; i < shards; ++i)); do
    log="${logs}/${t}-shard-${i}.log"
    if [[ "$(cat "${logs}/${t}-shard-${i}.status" 2>/dev/null)" == "0" ]]; then
      echo "ci/test_emulated.sh: ${t} shard ${i} passed: $(grep -h 'PASSED\|SKIPPED' "${log}" | tr '\n' ' ')"
    else
      failed=1
      echo "ci/test_emulated.sh: ${t} shard ${i} FAILED; its log:" >&2
      cat "${log}" >&2
    fi
  done
done
echo "ci/test_emulated.sh: $(( $(date +%s) - start )) s"
exit ${failed}
