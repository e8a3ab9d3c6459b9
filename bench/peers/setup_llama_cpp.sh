#!/usr/bin/env bash
# Builds the llama.cpp peer used by bench/peers/*.py: a Python virtual
# environment with llama-cpp-python (pinned below) compiled from its PyPI
# source distribution for this machine's CPU only, plus numpy. Idempotent:
# when the venv already holds the pinned version it does nothing (no network).
# Prints the venv's python path as the last line on stdout.
#
#   bash bench/peers/setup_llama_cpp.sh
#   PY=$(bash bench/peers/setup_llama_cpp.sh | tail -n 1)
#
# Environment:
#   LOWBIT_PEERS_VENV     venv directory (default: <repo>/build/peers-venv)
#   LOWBIT_PEERS_JOBS     parallel compile jobs (default: 2)
#   LOWBIT_PEERS_CMAKE_ARGS  extra CMake arguments appended to the defaults
#
# The build takes several minutes on two cores. Its log goes to
# <venv>/llama-cpp-python-build.log.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
venv="${LOWBIT_PEERS_VENV:-${repo}/build/peers-venv}"
jobs="${LOWBIT_PEERS_JOBS:-2}"
py="${venv}/bin/python"

log() { echo "setup_llama_cpp.sh: $*" >&2; }

# shellcheck source=ci/venv.sh
source "${repo}/ci/venv.sh"
installed_version() { venv_package_version "${py}" llama_cpp_python; }

# CPU backend only, tuned for this machine, no GPU backends, no multimodal
# (mtmd) library, no curl. Tests/tools/examples are off by default when
# llama.cpp is built as a subproject.
#
# On x86-64 the ISA extensions are listed explicitly from /proc/cpuinfo instead
# of -march=native, to keep AMX off: with gcc 12 and -march=native, llama.cpp's
# AMX matmul segfaults in ldtilecfg on the first decode (llama.cpp#20824; the
# tile config is built on the stack, see llama.cpp PR #26954). Everything else
# the CPU has (AVX2, AVX-512, VNNI, BF16) stays on.
cmake_args="-DCMAKE_BUILD_TYPE=Release"
if [[ "$(uname -m)" == "x86_64" ]] && [[ -r /proc/cpuinfo ]]; then
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  has() { [[ "${flags}" == *" $1 "* ]] && echo ON || echo OFF; }
  cmake_args+=" -DGGML_NATIVE=OFF -DGGML_SSE42=$(has sse4_2) -DGGML_AVX=$(has avx)"
  cmake_args+=" -DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma) -DGGML_F16C=$(has f16c)"
  cmake_args+=" -DGGML_BMI2=$(has bmi2) -DGGML_AVX_VNNI=$(has avx_vnni)"
  avx512=OFF
  if [[ $(has avx512f)$(has avx512cd)$(has avx512vl)$(has avx512dq)$(has avx512bw) == ONONONONON ]]; then avx512=ON; fi
  cmake_args+=" -DGGML_AVX512=${avx512} -DGGML_AVX512_VBMI=$(has avx512vbmi)"
  cmake_args+=" -DGGML_AVX512_VNNI=$(has avx512_vnni) -DGGML_AVX512_BF16=$(has avx512_bf16)"
  cmake_args+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
else
  cmake_args+=" -DGGML_NATIVE=ON"
fi
cmake_args+=" -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_HIP=OFF"
cmake_args+=" -DGGML_OPENCL=OFF -DGGML_SYCL=OFF -DGGML_RPC=OFF -DGGML_BLAS=OFF"
cmake_args+=" -DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF"
cmake_args+=" -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
if [[ -n "${LOWBIT_PEERS_CMAKE_ARGS:-}" ]]; then
  cmake_args+=" ${LOWBIT_PEERS_CMAKE_ARGS}"
fi
stamp="${venv}/llama-cpp-python.stamp"
want_stamp="llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION} ${cmake_args}"

if [[ "$(installed_version)" == "${LLAMA_CPP_PYTHON_VERSION}" ]] \
   && [[ "$(cat "${stamp}" 2>/dev/null)" == "${want_stamp}" ]] \
   && "${py}" -c 'import numpy, llama_cpp' >/dev/null 2>&1; then
  log "llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION} already installed in ${venv}"
  echo "${py}"
  exit 0
fi

if ! python3 -m venv --help >/dev/null 2>&1; then
  log "python3 -m venv is not available; run 'bash ci/setup.sh' first"
  exit 1
fi
if [[ ! -x "${py}" ]]; then
  log "creating venv ${venv}"
  mkdir -p "$(dirname "${venv}")"
  python3 -m venv "${venv}"
fi

pip=("${py}" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade pip >&2
"${pip[@]}" install --quiet numpy >&2

buildlog="${venv}/llama-cpp-python-build.log"
log "building llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION} from source (${jobs} jobs; log: ${buildlog})"
start=$(date +%s)
# --no-binary: always compile (never a prebuilt wheel); --no-cache-dir: never
# reuse a wheel cached from a build with other CMake arguments.
if ! CMAKE_ARGS="${cmake_args}" CMAKE_BUILD_PARALLEL_LEVEL="${jobs}" FORCE_CMAKE=1 \
     "${pip[@]}" install --force-reinstall --no-deps --no-cache-dir --no-binary llama-cpp-python --verbose \
     "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" >"${buildlog}" 2>&1; then
  log "build failed; last lines of ${buildlog}:"
  tail -n 40 "${buildlog}" >&2
  exit 1
fi
log "built in $(( $(date +%s) - start )) s"
"${pip[@]}" install --quiet "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" >&2  # its dependencies

got="$(installed_version)"
if [[ "${got}" != "${LLAMA_CPP_PYTHON_VERSION}" ]]; then
  log "expected llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION}, found '${got}'"
  exit 1
fi
echo "${want_stamp}" >"${stamp}"
"${py}" -c 'import llama_cpp; print(llama_cpp.llama_print_system_info().decode())' >&2
echo "${py}"
