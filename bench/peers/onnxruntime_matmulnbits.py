#!/usr/bin/env python3
"""ONNX Runtime's int4 MatMulNBits as a peer of lowbit's Q4_0 GEMV/GEMM.

For each N x K (and M, and thread count) it builds the one-node graph
Y[M x N] = A[M x K] . dequant(B)^T with com.microsoft MatMulNBits (bits 4,
block_size 32, no zero points: ONNX Runtime then uses 8, so a block is
(q - 8) * scale, exactly Q4_0's arithmetic with an f32 scale), checks its output
against numpy on the same dequantized weights, times it and prints JSON.

    python3 bench/peers/onnxruntime_matmulnbits.py --setup          # venv + pip, once
    python3 bench/peers/onnxruntime_matmulnbits.py --shape 4096x14336 --m 1 --threads 2

The packages live in a virtual environment (LOWBIT_PEERS_VENV, default
build/peers-venv, shared with the llama.cpp peer); run with another python,
the script re-runs itself with the venv's. --setup creates the venv when
missing and pip-installs the pinned onnxruntime and onnx (nothing when they
are there already). Without them the script exits with status 3.

Timing: weights are constant initializers, so ONNX Runtime prepacks them once at
session creation (untimed, reported as pack_s, with the graph's construction). Each call goes through an I/O
binding (no Python-side allocation); the figure is the median call time over
--min-time seconds. The weights stay hot in the caches between calls (they
live inside ONNX Runtime), so lowbit-bench compares this with lowbit's
--lowbit_warm figures. accuracy_level 4 (the default here) lets ONNX Runtime
quantize A to int8 and use its VNNI kernels, as lowbit's Q4_0 x Q8_0 does.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ORT_VERSION = "1.32.0"
ONNX_VERSION = "1.23.2"
REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("LOWBIT_PEERS_VENV", REPO / "build" / "peers-venv"))
VENV_PY = VENV / "bin" / "python"
BLOCK = 32


def have_packages(python: Path) -> bool:
    if not python.exists():
        return False
    return subprocess.run([str(python), "-c", "import onnxruntime, onnx, numpy"],
                          capture_output=True).returncode == 0


def setup() -> Path:
    """Creates the venv when missing and installs the pinned packages into it."""
    if have_packages(VENV_PY):
        print(f"onnxruntime_matmulnbits.py: onnxruntime and onnx already in {VENV}", file=sys.stderr)
        return VENV_PY
    if not VENV_PY.exists():
        print(f"onnxruntime_matmulnbits.py: creating venv {VENV}", file=sys.stderr)
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV_PY), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    subprocess.run(pip + [f"onnxruntime=={ORT_VERSION}", f"onnx=={ONNX_VERSION}", "numpy"],
                   check=True, stdout=sys.stderr)
    return VENV_PY


def in_venv() -> bool:
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def build_model(n: int, k: int, rng, accuracy_level: int, flat_scales: bool):
    """The one-node graph, its dequantized weights (for the check) and their bytes."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    blocks = k // BLOCK
    q = rng.integers(0, 16, size=(n, blocks, BLOCK), dtype=np.uint8)
    scales = (rng.random((n, blocks), dtype=np.float32) * 0.02 + 0.001).astype(np.float32)
    # Two 4-bit values a byte, the even element in the low nibble.
    packed = (q[:, :, 0::2] | (q[:, :, 1::2] << 4)).astype(np.uint8)
    w = ((q.astype(np.float32) - 8.0) * scales[:, :, None]).reshape(n, k)
    node = helper.make_node("MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft",
                            K=k, N=n, bits=4, block_size=BLOCK, accuracy_level=accuracy_level)
    graph = helper.make_graph(
        [node], "matmulnbits",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        initializer=[numpy_helper.from_array(packed, "B"),
                     numpy_helper.from_array(scales.reshape(-1) if flat_scales else scales, "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model.SerializeToString(), w, packed.nbytes + scales.nbytes


def session(model_bytes: bytes, threads: int):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def prepare(n: int, k: int, threads: int, accuracy_level: int, rng):
    """A session for N x K on `threads` threads, the weights it holds, and its set-up time."""
    t0 = time.perf_counter()
    try:
        model_bytes, w, weight_bytes = build_model(n, k, rng, accuracy_level, flat_scales=True)
        sess = session(model_bytes, threads)
    except Exception:  # older/newer releases want scales as [N, blocks]
        model_bytes, w, weight_bytes = build_model(n, k, rng, accuracy_level, flat_scales=False)
        sess = session(model_bytes, threads)
    return sess, w, weight_bytes, time.perf_counter() - t0


def measure(sess, w, weight_bytes: int, setup_s: float, m: int, threads: int, min_time: float,
            accuracy_level: int, rng) -> dict:
    import numpy as np
    import onnxruntime as ort

    n, k = w.shape
    a = rng.standard_normal((m, k), dtype=np.float32)
    y = np.empty((m, n), dtype=np.float32)
    binding = sess.io_binding()
    binding.bind_ortvalue_input("A", ort.OrtValue.ortvalue_from_numpy(a))
    y_value = ort.OrtValue.ortvalue_from_numpy(y)
    binding.bind_ortvalue_output("Y", y_value)
    sess.run_with_iobinding(binding)  # first call at this M: lazy set-up, untimed
    got = y_value.numpy()
    want = a @ w.T
    rel = float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))
    # accuracy_level 4 quantizes A to int8 per block: about 1% relative error.
    if not rel < 0.05:
        raise RuntimeError(f"MatMulNBits output is off by {rel:.3g} (relative) at M={m} N={n} K={k}")
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        t = time.perf_counter()
        sess.run_with_iobinding(binding)
        times.append(time.perf_counter() - t)
    times.sort()
    sec = times[len(times) // 2]
    return {
        "name": f"peer/onnxruntime/q4_0/M:{m}/N:{n}/K:{k}/threads:{threads}",
        "M": m, "N": n, "K": k, "threads": threads,
        "seconds_per_call": sec, "calls": len(times),
        "GOPS": 2.0 * m * n * k / sec / 1e9,
        "GBps": weight_bytes / sec / 1e9,
        "weight_bytes": weight_bytes,
        "pack_s": setup_s,
        "relative_error": rel,
        "accuracy_level": accuracy_level,
        "weights": "warm",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setup", action="store_true", help="create the venv and install the pinned packages first")
    ap.add_argument("--check", action="store_true", help="exit 0 when the packages are installed, 3 when not")
    ap.add_argument("--shape", action="append", default=[], metavar="NxK", help="repeatable (default 4096x4096)")
    ap.add_argument("--m", default="1", help="comma-separated M values (default 1)")
    ap.add_argument("--threads", default=str(len(os.sched_getaffinity(0))), help="comma-separated thread counts")
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds of timed calls per measurement")
    ap.add_argument("--accuracy-level", type=int, default=4)
    ap.add_argument("--json", metavar="FILE", help="write the JSON here instead of stdout")
    args = ap.parse_args()

    if args.setup:
        setup()
    if not in_venv():
        if not have_packages(VENV_PY):
            print(f"onnxruntime_matmulnbits.py: onnxruntime is not installed in {VENV} "
                  f"(run: python3 {Path(__file__).relative_to(REPO)} --setup)", file=sys.stderr)
            return 3
        argv = [a for a in sys.argv[1:] if a != "--setup"]
        return subprocess.run([str(VENV_PY), __file__, *argv]).returncode
    if args.check:
        return 0

    import numpy as np
    import onnxruntime as ort

    shapes = []
    for s in args.shape or ["4096x4096"]:
        n, k = (int(x) for x in s.lower().split("x"))
        if k % BLOCK:
            ap.error(f"K={k} is not a multiple of {BLOCK}")
        shapes.append((n, k))
    rng = np.random.default_rng(1)
    records = []
    for threads in (int(t) for t in args.threads.split(",")):
        for n, k in shapes:
            sess, w, weight_bytes, setup_s = prepare(n, k, threads, args.accuracy_level, rng)
            for m in (int(x) for x in args.m.split(",")):
                rec = measure(sess, w, weight_bytes, setup_s, m, threads, args.min_time, args.accuracy_level, rng)
                print(f"onnxruntime_matmulnbits.py: {rec['name']}: {rec['GOPS']:.1f} GOPS, "
                      f"{rec['GBps']:.2f} GB/s", file=sys.stderr)
                records.append(rec)
            del sess, w
    doc = {"peer": "onnxruntime", "onnxruntime_version": ort.__version__,
           "op": "com.microsoft MatMulNBits bits=4 block_size=32", "records": records}
    text = json.dumps(doc, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
