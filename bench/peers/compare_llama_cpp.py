#!/usr/bin/env python3
"""Side-by-side speed of llama.cpp (through llama-cpp-python) and lowbit-run:
same machine, same model, same prompt, same thread count, greedy decoding.

Run it with the peers venv's python (bench/peers/setup_llama_cpp.sh):

    PY=$(bash bench/peers/setup_llama_cpp.sh | tail -n 1)
    "$PY" bench/peers/compare_llama_cpp.py                       # default model
    "$PY" bench/peers/compare_llama_cpp.py --model a.gguf --model b.gguf \\
        --threads 2 --prompt-tokens 128 --gen-tokens 128 --repeats 3 --json out.json

For every model it builds an English prompt of exactly --prompt-tokens tokens
(by llama.cpp's tokenizer, BOS included when the model asks for one) and passes
the same text to both sides. Runs are interleaved (llama.cpp, lowbit, llama.cpp,
lowbit, ...) after one untimed warm-up of each; the table shows medians and the
ratios lowbit / llama.cpp.

llama.cpp side (low-level API, model loaded once per model):
  prefill tok/s = prompt tokens / time of one llama_decode of the whole prompt
  decode tok/s  = (gen - 1) / time of the gen - 1 single-token llama_decode
                  calls (each followed by an argmax) that produce tokens 2..gen;
                  token 1 comes from the prefill logits. EOS is ignored.
lowbit side: one process per run,
  lowbit-run -m MODEL -p TEXT -n GEN -t N --temp 0 --ignore-eos --json
which prints one JSON object {"prompt_tokens", "tokens", "text", "load_s",
"prefill_tok_s", "decode_tok_s"}; its own figures are used as reported.

--cache-type q8_0 puts both engines' KV caches in q8_0 (K and V; default
f16): lowbit-run gets -ctk q8_0 -ctv q8_0, llama.cpp type_k = type_v =
Q8_0 with its flash attention on, which a quantized V cache requires there
(with f16 caches llama.cpp runs without it, as its defaults do).

Exit status: 0 on success, 2 when lowbit-run is missing (llama.cpp's figures
are still printed), 1 when a lowbit-run run failed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

try:
    import llama_cpp
except ImportError:  # pragma: no cover
    sys.exit("llama_cpp is not importable: run this with the python printed by "
             "bench/peers/setup_llama_cpp.sh")

REPO = Path(__file__).resolve().parents[2]

PARAGRAPH = (
    "The history of computing is a story of steadily shrinking machines and steadily "
    "growing ambitions. Early computers filled entire rooms, consumed enormous amounts "
    "of power, and were programmed by rewiring panels or feeding in punched cards. "
    "Over the following decades, transistors replaced vacuum tubes, integrated circuits "
    "replaced individual transistors, and microprocessors put a whole central processing "
    "unit on a single chip. Each step made computers cheaper, faster, and more widely "
    "available, which in turn encouraged new kinds of software: operating systems, "
    "compilers, databases, spreadsheets, games, and eventually the web browser. "
)


def default_model() -> str:
    return subprocess.run(["bash", str(REPO / "ci" / "fetch_model.sh")], check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


class LlamaSide:
    def __init__(self, model: str, threads: int, n_ctx: int, n_batch: int, cache_type: str = "f16"):
        t0 = time.perf_counter()
        cache = {} if cache_type == "f16" else {
            "type_k": llama_cpp.GGML_TYPE_Q8_0, "type_v": llama_cpp.GGML_TYPE_Q8_0, "flash_attn": True}
        self.llm = llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_batch=n_batch,
                                   n_ubatch=n_batch, n_threads=threads,
                                   n_threads_batch=threads, logits_all=False, seed=0,
                                   verbose=False, **cache)
        self.load_s = time.perf_counter() - t0
        self.ctx = self.llm._ctx.ctx
        self.n_vocab = self.llm.n_vocab()

    def tokenize(self, text: str, add_special: bool = True):
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=False)

    def detokenize(self, tokens) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="replace")

    def last_logits(self) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def run(self, prompt_tokens, gen: int) -> dict:
        llm = self.llm
        llm.reset()  # the next eval drops the whole KV cache (positions >= 0)
        t0 = time.perf_counter()
        llm.eval(prompt_tokens)
        llama_cpp.llama_synchronize(self.ctx)
        t1 = time.perf_counter()
        out = [int(np.argmax(self.last_logits()))]
        t2 = time.perf_counter()
        for _ in range(gen - 1):
            llm.eval([out[-1]])
            out.append(int(np.argmax(self.last_logits())))
        t3 = time.perf_counter()
        return {
            "prefill_tok_s": len(prompt_tokens) / (t1 - t0),
            "decode_tok_s": (gen - 1) / (t3 - t2) if gen > 1 else float("nan"),
            "tokens": out,
        }

    def close(self):
        self.llm.close()


def build_prompt(side: LlamaSide, n: int) -> tuple[str, list[int]]:
    """English text whose llama.cpp tokenization (with BOS if the model adds
    one) is exactly n tokens long."""
    n_special = len(side.tokenize(""))  # BOS (and nothing else) when the model adds it
    want = n - n_special
    text = PARAGRAPH
    while len(side.tokenize(text, add_special=False)) < want + 32:
        text += PARAGRAPH
    toks = side.tokenize(text, add_special=False)
    for k in sorted(range(max(1, want - 16), want + 17), key=lambda k: abs(k - want)):
        # Cut near n tokens; re-tokenizing the cut text can merge or split at
        # the cut, so try cuts around n until one gives exactly n tokens.
        cand = side.detokenize(toks[:k]).rstrip(" ")
        full = side.tokenize(cand)
        if len(full) == n:
            return cand, full
    raise SystemExit(f"could not build a prompt of exactly {n} tokens")


def run_lowbit(binary: str, model: str, text: str, gen: int, threads: int,
               extra: list[str], timeout: float) -> dict:
    cmd = [binary, "-m", model, "-p", text, "-n", str(gen), "-t", str(threads),
           "--temp", "0", "--ignore-eos", "--json", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"lowbit-run exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    for line in reversed(proc.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            res = json.loads(line)
            break
    else:
        try:
            res = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise RuntimeError(f"lowbit-run printed no JSON object:\n{proc.stdout[-2000:]}")
    for key in ("prefill_tok_s", "decode_tok_s"):
        if key not in res:
            raise RuntimeError(f"lowbit-run's JSON has no '{key}': {sorted(res)}")
    res["wall_s"] = wall
    return res


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def fmt(x, digits=1):
    return "—" if x is None else f"{x:.{digits}f}"


def compare_model(args, model: str, lowbit_ok: bool) -> dict:
    n_ctx = args.prompt_tokens + args.gen_tokens + 16
    n_batch = max(512, args.prompt_tokens)
    side = LlamaSide(model, args.threads, n_ctx, n_batch, args.cache_type)
    text, prompt_tokens = build_prompt(side, args.prompt_tokens)
    rec = {
        "model": model,
        "prompt_text": text,
        "llama_cpp": {"load_s": side.load_s, "prompt_tokens": len(prompt_tokens),
                      "prefill_tok_s": [], "decode_tok_s": []},
        "lowbit": {"load_s": [], "prompt_tokens": None, "prefill_tok_s": [],
                   "decode_tok_s": [], "error": None},
    }
    llama_tokens = None
    lowbit_tokens = None
    timeout = max(600.0, 10.0 * (args.prompt_tokens + args.gen_tokens))
    for r in range(-args.warmup, args.repeats):  # r < 0: untimed warm-up
        res = side.run(prompt_tokens, args.gen_tokens)
        llama_tokens = res["tokens"]
        if r >= 0:
            rec["llama_cpp"]["prefill_tok_s"].append(res["prefill_tok_s"])
            rec["llama_cpp"]["decode_tok_s"].append(res["decode_tok_s"])
        print(f"  [{os.path.basename(model)}] {'warm-up' if r < 0 else f'run {r + 1}'} "
              f"llama.cpp: prefill {res['prefill_tok_s']:.1f} tok/s, "
              f"decode {res['decode_tok_s']:.1f} tok/s", file=sys.stderr)
        if not lowbit_ok or rec["lowbit"]["error"]:
            continue
        try:
            cache = [] if args.cache_type == "f16" else ["-ctk", args.cache_type, "-ctv", args.cache_type]
            lb = run_lowbit(args.lowbit_run, model, text, args.gen_tokens, args.threads,
                            cache + args.lowbit_arg, timeout)
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            rec["lowbit"]["error"] = str(e)
            print(f"  lowbit-run failed: {e}", file=sys.stderr)
            continue
        lowbit_tokens = lb.get("tokens")
        if lb.get("prompt_tokens") is not None:
            rec["lowbit"]["prompt_tokens"] = len(lb["prompt_tokens"])
            rec["lowbit"]["prompt_tokens_match"] = list(lb["prompt_tokens"]) == prompt_tokens
        if r >= 0:
            rec["lowbit"]["prefill_tok_s"].append(float(lb["prefill_tok_s"]))
            rec["lowbit"]["decode_tok_s"].append(float(lb["decode_tok_s"]))
            if lb.get("load_s") is not None:
                rec["lowbit"]["load_s"].append(float(lb["load_s"]))
        print(f"  [{os.path.basename(model)}] {'warm-up' if r < 0 else f'run {r + 1}'} "
              f"lowbit:    prefill {float(lb['prefill_tok_s']):.1f} tok/s, "
              f"decode {float(lb['decode_tok_s']):.1f} tok/s", file=sys.stderr)
    side.close()

    for who in ("llama_cpp", "lowbit"):
        d = rec[who]
        d["prefill_tok_s_median"] = median(d["prefill_tok_s"])
        d["decode_tok_s_median"] = median(d["decode_tok_s"])
    rec["lowbit"]["load_s_median"] = median(rec["lowbit"]["load_s"])
    lp, ld = rec["lowbit"]["prefill_tok_s_median"], rec["lowbit"]["decode_tok_s_median"]
    cp, cd = rec["llama_cpp"]["prefill_tok_s_median"], rec["llama_cpp"]["decode_tok_s_median"]
    rec["ratio_prefill"] = lp / cp if lp and cp else None
    rec["ratio_decode"] = ld / cd if ld and cd else None
    rec["llama_cpp"]["tokens"] = llama_tokens
    if lowbit_tokens is not None and llama_tokens is not None:
        rec["lowbit"]["tokens"] = list(lowbit_tokens)
        rec["greedy_tokens_agree"] = common_prefix(lowbit_tokens, llama_tokens)
    return rec


def markdown(results, args) -> str:
    lines = [
        f"threads {args.threads}, prompt {args.prompt_tokens} tokens, "
        f"generate {args.gen_tokens} tokens, KV cache {args.cache_type}, median of {args.repeats} runs "
        f"(llama-cpp-python {llama_cpp.__version__}; {cpu_name()})",
        "",
        "| model | engine | prompt tokens | load s | prefill tok/s | decode tok/s |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for rec in results:
        name = os.path.basename(rec["model"])
        c, l = rec["llama_cpp"], rec["lowbit"]
        lines.append(f"| {name} | llama.cpp | {c['prompt_tokens']} | {fmt(c['load_s'], 2)} | "
                     f"{fmt(c['prefill_tok_s_median'])} | {fmt(c['decode_tok_s_median'])} |")
        if l["prefill_tok_s"]:
            pt = l["prompt_tokens"] if l["prompt_tokens"] is not None else "?"
            lines.append(f"| {name} | lowbit | {pt} | {fmt(l['load_s_median'], 2)} | "
                         f"{fmt(l['prefill_tok_s_median'])} | {fmt(l['decode_tok_s_median'])} |")
            lines.append(f"| {name} | **lowbit / llama.cpp** | | | "
                         f"**{fmt(rec['ratio_prefill'], 2)}x** | **{fmt(rec['ratio_decode'], 2)}x** |")
        else:
            why = "missing" if l["error"] is None else "failed"
            lines.append(f"| {name} | lowbit ({why}) | | | — | — |")
    notes = []
    for rec in results:
        if "greedy_tokens_agree" in rec:
            notes.append(f"{os.path.basename(rec['model'])}: greedy tokens agree for the first "
                         f"{rec['greedy_tokens_agree']} of {args.gen_tokens}; prompt tokens "
                         f"{'match' if rec['lowbit'].get('prompt_tokens_match') else 'DIFFER'}")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[],
                    help="GGUF model; repeat for several (default: ci/fetch_model.sh's)")
    ap.add_argument("--lowbit-run", default=str(REPO / "build" / "gcc" / "decoder" / "lowbit-run"),
                    help="lowbit-run binary (default: build/gcc/decoder/lowbit-run)")
    ap.add_argument("--lowbit-arg", action="append", default=[],
                    help="extra argument passed to lowbit-run (repeatable)")
    ap.add_argument("--threads", type=int, default=nproc())
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of each side first")
    ap.add_argument("--cache-type", choices=["f16", "q8_0"], default="f16",
                    help="both engines' KV cache format, K and V (default f16)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    if args.prompt_tokens < 128:
        ap.error("--prompt-tokens must be at least 128")
    if args.gen_tokens < 2 or args.repeats < 1 or args.threads < 1 or args.warmup < 0:
        ap.error("--gen-tokens >= 2, --repeats >= 1, --threads >= 1, --warmup >= 0")
    models = args.model or [default_model()]
    lowbit = Path(args.lowbit_run)
    if not lowbit.is_absolute():
        lowbit = (Path.cwd() / lowbit) if (Path.cwd() / lowbit).exists() else REPO / lowbit
    args.lowbit_run = str(lowbit)
    lowbit_ok = lowbit.is_file() and os.access(lowbit, os.X_OK)
    if not lowbit_ok:
        print(f"compare_llama_cpp.py: lowbit-run is missing ({lowbit}); "
              f"measuring llama.cpp only", file=sys.stderr)

    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"compare_llama_cpp.py: warning: load average is {load_before:.2f}; other work "
              f"on the machine skews both sides (OpenMP barriers in llama.cpp suffer most "
              f"when its threads compete for cores)", file=sys.stderr)
    results = [compare_model(args, m, lowbit_ok) for m in models]
    table = markdown(results, args)
    print(table)
    if args.json:
        doc = {
            "llama_cpp_python_version": llama_cpp.__version__,
            "system_info": llama_cpp.llama_print_system_info().decode().strip(),
            "cpu": cpu_name(), "nproc": nproc(),
            "threads": args.threads, "prompt_tokens": args.prompt_tokens,
            "gen_tokens": args.gen_tokens, "repeats": args.repeats, "warmup": args.warmup,
            "cache_type": args.cache_type,
            "lowbit_run": args.lowbit_run, "lowbit_run_found": lowbit_ok,
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
            "models": results, "markdown": table,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
    if not lowbit_ok:
        print(f"compare_llama_cpp.py: lowbit-run is missing: {lowbit} "
              f"(build it, or pass --lowbit-run PATH)", file=sys.stderr)
        return 2
    if any(r["lowbit"]["error"] for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
