"""The peers that run outside lowbit-bench-kernels, through their scripts in
bench/peers: ONNX Runtime's MatMulNBits (onnxruntime_matmulnbits.py) and
llama.cpp tokens/s (compare_llama_cpp.py, the decoder's comparison). Each is
optional: when its packages, lowbit-run or the model are missing, the report
says so in a status line and goes on. Both scripts use one virtual
environment (LOWBIT_PEERS_VENV, default build/peers-venv).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # bench/
REPO = HERE.parent
PEERS = HERE / "peers"


def venv_python() -> Path:
    return Path(os.environ.get("LOWBIT_PEERS_VENV", REPO / "build" / "peers-venv")) / "bin" / "python"


def _importable(python: Path, module: str) -> bool:
    return python.exists() and subprocess.run([str(python), "-c", f"import {module}"],
                                              capture_output=True).returncode == 0


# ---------------------------------------------------------------- ONNX Runtime

def ort_status(install: bool) -> str | None:
    """None when the peer can run, else why not."""
    script = PEERS / "onnxruntime_matmulnbits.py"
    if not script.exists():
        return "not available (bench/peers/onnxruntime_matmulnbits.py not found)"
    cmd = [sys.executable, str(script), "--check"] + (["--setup"] if install else [])
    rc = subprocess.run(cmd, capture_output=True, text=True).returncode
    if rc == 0:
        return None
    return ("not installed (python3 bench/peers/onnxruntime_matmulnbits.py --setup, "
            "or lowbit-bench --install-peers)")


def run_ort(cases: list[tuple[int, int, int, int]], min_time: float, timeout: float) -> tuple[list[dict], str]:
    """Runs the (M, N, K, threads) cases; returns peer records and a status line."""
    script = PEERS / "onnxruntime_matmulnbits.py"
    shapes = sorted({(n, k) for _, n, k, _ in cases})
    ms = sorted({m for m, _, _, _ in cases})
    threads = sorted({t for _, _, _, t in cases})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ort.json"
        cmd = [sys.executable, str(script), "--m", ",".join(map(str, ms)),
               "--threads", ",".join(map(str, threads)), "--min-time", str(min_time), "--json", str(out)]
        for n, k in shapes:
            cmd += ["--shape", f"{n}x{k}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return [], f"timed out after {timeout:.0f} s"
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return [], f"failed (exit {proc.returncode}: {tail[0]})"
        doc = json.loads(out.read_text())
    wanted = set(cases)
    records = []
    for r in doc.get("records", []):
        if (r["M"], r["N"], r["K"], r["threads"]) not in wanted:
            continue
        m = r["M"]
        records.append({
            "kind": "peer", "op": "peer", "isa": "onnxruntime", "format": "q4_0",
            "name": r["name"], "group": "ONNX Runtime peer (weights warm)",
            "title": f"ONNX Runtime {'GEMV' if m == 1 else f'GEMM M={m}'} q4_0 {r['N']}x{r['K']}",
            "label": "MatMulNBits", "accuracy_level": r["accuracy_level"],
            "threads": r["threads"], "params": {"M": m, "N": r["N"], "K": r["K"]},
            "seconds": r["seconds_per_call"], "GOPS": r["GOPS"], "GBps": r["GBps"],
            "intensity": r["GOPS"] / r["GBps"], "weight_bytes": r["weight_bytes"],
            "weights": "warm", "counters": {"pack_s": r["pack_s"], "relative_error": r["relative_error"]},
        })
    return records, f"onnxruntime {doc.get('onnxruntime_version', '?')}, {doc.get('op', '')}"


# ------------------------------------------------------------------- llama.cpp

def default_model() -> Path:
    cache = os.environ.get("LOWBIT_MODEL_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lowbit")
    return Path(cache) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def llama_status(lowbit_run: Path | None, model: Path) -> str | None:
    if not (PEERS / "compare_llama_cpp.py").exists():
        return "not available (bench/peers/compare_llama_cpp.py not found)"
    if not _importable(venv_python(), "llama_cpp"):
        return "not installed (bash bench/peers/setup_llama_cpp.sh)"
    if lowbit_run is None or not lowbit_run.exists():
        return "lowbit-run not built (configure with LOWBIT_BUILD_DECODER=ON)"
    if not model.exists():
        return f"no model ({model}; bash ci/fetch_model.sh)"
    return None


def run_llama(lowbit_run: Path, model: Path, threads: int, timeout: float) -> tuple[list[dict], str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "llama.json"
        cmd = [str(venv_python()), str(PEERS / "compare_llama_cpp.py"), "--model", str(model),
               "--lowbit-run", str(lowbit_run), "--threads", str(threads), "--prompt-tokens", "128",
               "--gen-tokens", "64", "--repeats", "2", "--warmup", "1", "--json", str(out)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return [], f"timed out after {timeout:.0f} s"
        if not out.exists():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return [], f"failed (exit {proc.returncode}: {tail[0]})"
        doc = json.loads(out.read_text())
    records = []
    for m in doc.get("models", []):
        name = Path(m["model"]).name.removesuffix(".gguf")
        for phase in ("decode", "prefill"):
            peer = m["llama_cpp"].get(f"{phase}_tok_s_median")
            mine = m["lowbit"].get(f"{phase}_tok_s_median")
            if not peer:
                continue
            rec = {"kind": "peer", "op": "llama.cpp", "isa": "llama.cpp", "format": name,
                   "name": f"peer/llama.cpp/{phase}/{name}/threads:{threads}", "group": "llama.cpp peer",
                   "title": f"llama.cpp {phase} {name}", "threads": threads, "params": {},
                   "tokens_per_s": peer, "weights": "hot", "counters": {}}
            if mine:
                rec["lowbit_tokens_per_s"] = mine
                rec["ratio_lowbit_over_peer"] = mine / peer
            elif m["lowbit"].get("error"):
                rec["lowbit_error"] = m["lowbit"]["error"][-300:]
            records.append(rec)
    status = f"llama-cpp-python {doc.get('llama_cpp_python_version', '?')}"
    if proc.returncode != 0:
        status += f"; lowbit-run {'failed' if proc.returncode == 1 else 'missing'} (exit {proc.returncode})"
    return records, status
