# Sourced by the scripts that keep a Python virtual environment of pinned
# packages (bench/peers/setup_llama_cpp.sh, tests/emu/setup.sh).

# venv_package_version PYTHON PACKAGE: the installed version of PACKAGE in
# the environment of PYTHON, or nothing (no such python, or not installed).
venv_package_version() {
  [[ -x "$1" ]] || return 0
  "$1" - "$2" <<'PY' 2>/dev/null || true
import importlib.metadata as m
import sys
try:
    print(m.version(sys.argv[1]))
except m.PackageNotFoundError:
    pass
PY
}
