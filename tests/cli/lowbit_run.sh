#!/usr/bin/env bash
# ctest driver for lowbit-run's command line: runs it the way a user would and
# checks what it prints. Usage: lowbit_run.sh <lowbit-run> <case>
#   json        --json on the default model: the keys the peers script reads
#   chat        --chat streaming on the default model, then the speed line
#   bad-path    a missing model file: a clear error, exit 1
#   bad-file    a truncated model file: a clear error, exit 1
#   bad-flag    an unknown flag: usage, exit 2
#   kv-q8       -ctk q8_0 -ctv q8_0 on the default model: the same answer, the cache named
#   bad-kv      a KV cache format the cache cannot hold: usage naming the choices, exit 2
# The default model comes from LOWBIT_MODEL (ci/test.sh sets it); without it
# the model cases skip (exit 77) unless LOWBIT_REQUIRE_MODEL=1.
set -uo pipefail
run="$1"
case_name="$2"
tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT

need_model() {
  if [[ -z "${LOWBIT_MODEL:-}" || ! -f "${LOWBIT_MODEL}" ]]; then
    if [[ "${LOWBIT_REQUIRE_MODEL:-0}" == "1" ]]; then
      echo "LOWBIT_REQUIRE_MODEL=1 but LOWBIT_MODEL ('${LOWBIT_MODEL:-}') is not a file" >&2
      exit 1
    fi
    echo "skipped: no default model (run: bash ci/fetch_model.sh; export LOWBIT_MODEL=...)"
    exit 77
  fi
}

fail() { echo "FAIL: $*" >&2; exit 1; }

case "${case_name}" in
  json)
    need_model
    "${run}" -m "${LOWBIT_MODEL}" -p "The capital of France is" -n 8 -t 2 --json > "${tmp}/out" 2> "${tmp}/err" ||
      fail "exit $? ($(cat "${tmp}/err"))"
    python3 - "${tmp}/out" <<'PY' || exit 1
import json, sys
doc = json.load(open(sys.argv[1]))
for key in ("prompt_tokens", "tokens", "text", "load_s", "prefill_tok_s", "decode_tok_s"):
    assert key in doc, f"missing {key}: {doc}"
assert doc["prompt_tokens"] == [504, 3575, 282, 4649, 314], doc["prompt_tokens"]
assert len(doc["tokens"]) == 8 and doc["tokens"][0] == 7042, doc["tokens"]   # " Paris"
assert doc["text"].startswith(" Paris"), doc["text"]
assert doc["prefill_tok_s"] > 0 and doc["decode_tok_s"] > 0 and doc["load_s"] > 0
print("ok:", doc["text"])
PY
    ;;
  chat)
    need_model
    "${run}" -m "${LOWBIT_MODEL}" --chat -p "What is the capital of France?" -n 24 -t 2 > "${tmp}/out" 2> "${tmp}/err" ||
      fail "exit $? ($(cat "${tmp}/err"))"
    grep -q "Paris" "${tmp}/out" || fail "the answer does not name Paris: $(cat "${tmp}/out")"
    grep -Eq "lowbit-run: load [0-9.]+ s .*prefill [0-9]+ tokens, [0-9.]+ tok/s \| decode [0-9]+ tokens, [0-9.]+ tok/s" \
      "${tmp}/err" || fail "no speed line: $(cat "${tmp}/err")"
    cat "${tmp}/out"
    ;;
  bad-path)
    "${run}" -m "${tmp}/missing.gguf" -p hi > "${tmp}/out" 2> "${tmp}/err"
    rc=$?
    [[ ${rc} -eq 1 ]] || fail "exit ${rc}, expected 1"
    grep -q "cannot open GGUF file '${tmp}/missing.gguf'" "${tmp}/err" || fail "unclear error: $(cat "${tmp}/err")"
    ;;
  bad-file)
    printf 'GGUF\003\000\000\000' > "${tmp}/short.gguf"
    "${run}" -m "${tmp}/short.gguf" -p hi > "${tmp}/out" 2> "${tmp}/err"
    rc=$?
    [[ ${rc} -eq 1 ]] || fail "exit ${rc}, expected 1"
    grep -q "bad GGUF file '${tmp}/short.gguf'" "${tmp}/err" || fail "unclear error: $(cat "${tmp}/err")"
    ;;
  bad-flag)
    "${run}" --no-such-flag > "${tmp}/out" 2> "${tmp}/err"
    rc=$?
    [[ ${rc} -eq 2 ]] || fail "exit ${rc}, expected 2"
    grep -q "unknown argument '--no-such-flag'" "${tmp}/err" || fail "no usage error: $(cat "${tmp}/err")"
    ;;
  kv-q8)
    need_model
    "${run}" -m "${LOWBIT_MODEL}" -p "The capital of France is" -n 8 -t 2 -ctk q8_0 --cache-type-v q8_0 \
      > "${tmp}/out" 2> "${tmp}/err" || fail "exit $? ($(cat "${tmp}/err"))"
    grep -q "^The capital of France is Paris" "${tmp}/out" || fail "not Paris: $(cat "${tmp}/out")"
    grep -q "| KV cache q8_0/q8_0$" "${tmp}/err" || fail "the speed line does not name the cache: $(cat "${tmp}/err")"
    cat "${tmp}/out"
    ;;
  bad-kv)
    # Each bad flag exits 2; a bad format's message names the choices.
    bad_kv() {
      # shellcheck disable=SC2086
      "${run}" -m unused.gguf -p hi $1 > "${tmp}/out" 2> "${tmp}/err"
      rc=$?
      [[ ${rc} -eq 2 ]] || fail "$1: exit ${rc}, expected 2"
      [[ -z "${2:-}" ]] || grep -q -- "$2" "${tmp}/err" || fail "$1: unclear error: $(cat "${tmp}/err")"
    }
    bad_kv "-ctk q4_0" "-ctk expects one of f16, f32, q8_0, got 'q4_0'"
    bad_kv "--cache-type-v q6_k" "--cache-type-v expects one of f16, f32, q8_0, q4_0, got 'q6_k'"
    bad_kv "-ctk"  # no value
    ;;
  *)
    fail "unknown case ${case_name}"
    ;;
esac
