#!/usr/bin/env bash
# Installs what lowbit's build, tests, benchmarks and cross build need on a
# Debian 12 machine. Idempotent: it asks dpkg which packages are missing and
# installs only those, so on a ready machine it does nothing and needs no
# network. Runs as root, or through sudo when that exists.
#
#   bash ci/setup.sh                 # the base group (everything ci/test.sh needs)
#   bash ci/setup.sh base opencl     # base plus extra groups (see GROUPS below)
#
# Adding a package: add one line to its group below. Adding a group: add one
# `group_<name>` function and pass <name> on the command line.
set -euo pipefail

# ---- package groups: one package per line -----------------------------------
group_base() {
  cat <<'PKGS'
cmake
ninja-build
g++
clang
libgtest-dev
libgmock-dev
libbenchmark-dev
g++-aarch64-linux-gnu
qemu-user
libclang-rt-14-dev
libpcre2-dev
python3
python3-pip
python3-venv
PKGS
}

# oneDNN, the int8 matmul peer in lowbit-bench (-DLOWBIT_ONEDNN=ON). Debian's
# CMake package for it (dnnl-config.cmake) also looks for the OpenCL loader.
group_onednn() {
  cat <<'PKGS'
libdnnl-dev
ocl-icd-opencl-dev
opencl-c-headers
PKGS
}

# ---- argument handling --------------------------------------------------------
groups=("$@")
if [[ ${#groups[@]} -eq 0 ]]; then
  groups=(base)
fi

wanted=()
for group in "${groups[@]}"; do
  if ! declare -F "group_${group}" >/dev/null; then
    known=$(declare -F | sed -n 's/^declare -f group_//p' | tr '\n' ' ')
    echo "ci/setup.sh: unknown package group '${group}' (known: ${known})" >&2
    exit 2
  fi
  while IFS= read -r pkg; do
    [[ -n "${pkg}" ]] && wanted+=("${pkg}")
  done < <("group_${group}")
done

missing=()
for pkg in "${wanted[@]}"; do
  # A package counts as present only when dpkg says it is installed (not just
  # known, e.g. removed with its config files left behind).
  if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("${pkg}")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "ci/setup.sh: all ${#wanted[@]} packages of group(s) ${groups[*]} are installed"
  exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "ci/setup.sh: missing packages (${missing[*]}) and not root, no sudo; install them as root:" >&2
    echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

echo "ci/setup.sh: installing ${missing[*]}"
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
echo "ci/setup.sh: installed ${missing[*]}"
