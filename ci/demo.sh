#!/usr/bin/env bash
# The demo: lowbit answers a chat prompt with the default model, then reports
# what this machine does for LLM inference.
#
#   bash ci/demo.sh
#
# Installs dependencies (ci/setup.sh), builds the Release tree build/gcc (the
# same tree and options as ci/test.sh's gcc stage, so either reuses the other's
# build), fetches SmolLM2-135M-Instruct Q4_1 once into a cache
# (ci/fetch_model.sh) and answers a chat prompt with lowbit-run. It then prints
# lowbit-info (compiled ISAs, detected ISAs, the kernel chosen per op) and the
# quick hardware report (lowbit-bench --quick, under a minute): the machine's
# read bandwidth and compute peaks, GEMV/GEMM/attention/quantize results beside
# the limit that bounds them, decode estimates for 1.5B-8B models, and the
# peers that are installed. The report is also written to build/gcc/report/
# (report.md, report.json, roofline.svg).
#
# Environment:
#   LOWBIT_DEMO_PROMPT    the chat prompt (default: see DEFAULT_PROMPT)
#   LOWBIT_JOBS           build parallelism (default: nproc)
set -euo pipefail

DEFAULT_FILTER='/M:1/N:576/K:576/|^quantize/q8_0/.*/M:1/K:576/'
DEFAULT_PROMPT='What is the capital of France, and what is it famous for?'
PROMPT="${LOWBIT_DEMO_PROMPT:-${DEFAULT_PROMPT}}"
FILTER="${LOWBIT_DEMO_FILTER:-${DEFAULT_FILTER}}"
MIN_TIME="${LOWBIT_DEMO_MIN_TIME:-0.05}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
JOBS="${LOWBIT_JOBS:-$(nproc)}"
BUILD=build/gcc

banner() {
  local line="=============================================================================="
  printf '\n%s\n== %s\n%s\n' "${line}" "$*" "${line}"
}

banner "setup: ci/setup.sh"
bash "${ROOT}/ci/setup.sh" base onednn

banner "build: GCC $(gcc -dumpfullversion), Release -> ${BUILD}"
fresh=()
if [[ -f "${BUILD}/CMakeCache.txt" ]]; then
  # A tree made with another compiler or generator cannot be switched in place.
  cached_cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "${BUILD}/CMakeCache.txt")
  cached_gen=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "${BUILD}/CMakeCache.txt")
  if [[ "${cached_gen}" != "Ninja" || -z "${cached_cxx}" ||
        "$(readlink -f "${cached_cxx}")" != "$(readlink -f "$(command -v g++)")" ]]; then
    echo "ci/demo.sh: ${BUILD} was configured with '${cached_cxx:-?}' / '${cached_gen:-?}'; reconfiguring from scratch"
    fresh=(--fresh)
  fi
fi
CC=gcc CXX=g++ cmake -S . -B "${BUILD}" -G Ninja "${fresh[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DLOWBIT_WERROR=ON -DLOWBIT_SANITIZE=OFF -DLOWBIT_BUILD_BENCH=ON -DLOWBIT_ONEDNN=ON
cmake --build "${BUILD}" -j "${JOBS}" --target lowbit-info lowbit-bench-kernels lowbit-run

banner "model: ci/fetch_model.sh"
MODEL=$(bash "${ROOT}/ci/fetch_model.sh")
echo "${MODEL}"

banner "lowbit-run --chat: SmolLM2-135M-Instruct answers"
echo "> ${PROMPT}"
"${BUILD}/decoder/lowbit-run" -m "${MODEL}" --chat -p "${PROMPT}" -n 96

banner "lowbit-info: what this machine has and what lowbit will run"
"${BUILD}/lowbit-info"

banner "lowbit-bench --quick: the hardware report"
mkdir -p "${BUILD}/report"
"${BUILD}/bench/lowbit-bench" --quick --lowbit-run "${BUILD}/decoder/lowbit-run" \
  --json "${BUILD}/report/report.json" --markdown "${BUILD}/report/report.md" --svg "${BUILD}/report/roofline.svg"

echo
echo "ci/demo.sh: done. Report: ${BUILD}/report/ (report.md, report.json, roofline.svg);"
echo "the full suite: ${BUILD}/bench/lowbit-bench --json r.json --markdown r.md --svg roofline.svg"
