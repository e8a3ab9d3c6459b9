#!/usr/bin/env bash
# Makes the virtual environment tests/emu/run_emulated.py runs in: Python 3.11
# (the wheel's ABI, Debian 12's python3) with bochscpu-python pinned below, and
# a shim library for the C library names that wheel links against but glibc
# before 2.38 lacks (__isoc23_strtoull, __isoc23_sscanf). Idempotent: with the
# pinned version installed and the shim built it does nothing (no network).
# Prints the venv's python path as the last line on stdout.
#
#   PY=$(bash tests/emu/setup.sh | tail -n 1)
#
# Environment:
#   LOWBIT_EMU_VENV   venv directory (default: <repo>/build/emu-venv)
set -euo pipefail

BOCHSCPU_PYTHON_VERSION=0.4.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
venv="${LOWBIT_EMU_VENV:-${repo}/build/emu-venv}"
py="${venv}/bin/python"
shim="${venv}/lib/liblowbit_emu_shim.so"

log() { echo "tests/emu/setup.sh: $*" >&2; }

if [[ "$(uname -m)" != "x86_64" ]]; then
  log "the emulator runs x86-64 code in an x86-64 process; this is $(uname -m)"
  exit 2
fi

# shellcheck source=ci/venv.sh
source "${repo}/ci/venv.sh"
installed_version() { venv_package_version "${py}" bochscpu-python; }

if [[ "$(installed_version)" != "${BOCHSCPU_PYTHON_VERSION}" ]]; then
  if [[ ! -x "${py}" ]]; then
    log "creating ${venv}"
    python3 -m venv "${venv}"
  fi
  log "installing bochscpu-python==${BOCHSCPU_PYTHON_VERSION}"
  "${py}" -m pip install --quiet --disable-pip-version-check "bochscpu-python==${BOCHSCPU_PYTHON_VERSION}" >&2
fi

if [[ ! -f "${shim}" || "${here}/glibc_shim.c" -nt "${shim}" ]]; then
  log "building ${shim}"
  cc -O2 -fPIC -shared -o "${shim}.tmp" "${here}/glibc_shim.c"
  mv "${shim}.tmp" "${shim}"
fi

echo "${py}"
