"""Google Benchmark's JSON into report records, each beside the limit that bounds it.

A kernel's bound is the roofline at its own arithmetic intensity I (operations
per byte of weights, or of KV cache for attention): min(peak, I x bandwidth),
where both ceilings were measured in the same process as the kernel: the
bandwidth is a plain read of the same number of bytes on the same threads
(cold when the kernel's weights are cold), the peak the multiply-add peak of
the kernel's tier (vpdpbusd, vpmaddubsw, f32 FMA; bench/peak.cpp). So a GEMV is
held to the read bandwidth, a large-M GEMM or a prefill to the compute peak,
and a GEMM in between to whichever its intensity meets first. Peers are held
to the best int8 peak this machine has (AMX where present), since they may use
it, and carry the ratio lowbit / peer for the same problem.

The model-level estimate divides the measured Q4_0 GEMV bandwidth by the bytes
of weights a decoded token reads (every linear layer plus the output head, at
Q4_0's 4.5 bits a weight); its bound is the same division at the GEMVs' own
ceiling, a cold read of the same bytes.
"""
from __future__ import annotations

from .catalogue import INT8_PEAK, MODEL_SHAPES, PEAK_NAMES, Bench, parse_name

Q4_0_BYTES_PER_WEIGHT = 18 / 32  # 16 bytes of nibbles + an f16 scale per 32 weights

# Decode reads every linear weight once per token: per layer q, k, v, o and the
# gated MLP's gate, up and down, plus the output head (vocab x hidden). The
# embedding lookup (one row), norms, biases and the KV cache are left out.
MODELS = [
    # name, layers, hidden, intermediate, kv dim (kv heads x head dim), vocab, shapes measured
    ("Qwen2-1.5B", 28, 1536, 8960, 256, 151936, "Qwen2-1.5B"),
    ("Qwen2-7B", 28, 3584, 18944, 512, 152064, "Llama-8B"),
    ("Llama-3-8B", 32, 4096, 14336, 1024, 128256, "Llama-8B"),
]


def model_weights(layers, hidden, inter, kv, vocab) -> int:
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter
    return layers * per_layer + vocab * hidden


def _seconds(entry: dict) -> float | None:
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}.get(entry.get("time_unit", "ns"), 1e-9)
    t = entry.get("real_time")
    return t * unit if isinstance(t, (int, float)) else None


def pick_entries(doc: dict) -> dict[str, dict]:
    """One entry per benchmark: the median aggregate when repetitions ran, else
    the first run (an error is reported as a run)."""
    chosen: dict[str, dict] = {}
    for e in doc.get("benchmarks", []):
        name = e.get("run_name") or e.get("name", "")
        if e.get("run_type") == "aggregate":
            if e.get("aggregate_name") == "median":
                chosen[name] = e
            continue
        chosen.setdefault(name, e)
    return chosen


COUNTERS = ("GOPS", "GBps", "probe_GBps", "ratio_to_probe", "peak_GOPS", "ratio_to_peak", "pack_s", "bytes")


def title(b: Bench) -> str:
    """A short readable name: 'GEMV q4_0 4096x14336', 'read 2 MiB'."""
    p = dict(b.params)
    if b.op == "gemm":
        shape = f"{p.get('N')}x{p.get('K')}"
        return f"GEMV {b.fmt} {shape}" if p.get("M") == 1 else f"GEMM {b.fmt} M={p.get('M')} {shape}"
    if b.op == "attn_decode":
        return f"attn decode {kv_title(b.fmt)} ctx {p.get('ctx')}"
    if b.op == "attn_prefill":
        return f"attn prefill {kv_title(b.fmt)} len {p.get('len')}"
    if b.op == "attn_prefill_baseline":
        return f"attn prefill baseline {kv_title(b.fmt)} len {p.get('len')}"
    if b.op == "quantize":
        return f"quantize {b.fmt} {p.get('M')}x{p.get('K')}"
    if b.op == "dequantize":
        src, _, out = b.fmt.rpartition("_")
        return f"dequantize {src}->{out} {p.get('N')}x{p.get('K')}"
    if b.op == "read":
        return f"read {human_bytes(p.get('bytes', 0))}"
    if b.op == "peak":
        return f"peak {PEAK_NAMES.get(b.fmt, b.fmt)}"
    if b.op == "peer":
        m = p.get("M")
        kind = "GEMV" if m == 1 else f"GEMM M={m}"
        return f"{PEER_NAMES.get(b.isa, b.isa)} {kind} {b.fmt} {p.get('N')}x{p.get('K')}"
    return b.base


PEER_NAMES = {"onednn": "oneDNN", "onnxruntime": "ONNX Runtime"}


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{int(n)} B"


def _cold(b: Bench, warm_group: bool) -> bool:
    return not warm_group and b.op in ("gemm", "dequantize", "attn_decode", "peer")


def records_from_run(doc: dict, benches: dict[str, Bench], group: str, warm: bool) -> list[dict]:
    """Report records of one run of the binary (`benches`: listed name -> Bench)."""
    out = []
    for name, e in pick_entries(doc).items():
        b = benches.get(name) or parse_name(name)
        if b is None:
            continue
        counters = {k: e[k] for k in COUNTERS if isinstance(e.get(k), (int, float))}
        kind = "limit" if b.op in ("read", "peak") else "peer" if b.op == "peer" else "kernel"
        rec = {
            "kind": kind, "name": b.base, "group": group, "title": title(b),
            "op": b.op, "format": b.fmt, "isa": b.isa, "threads": b.threads,
            "params": {k: v for k, v in b.params if k != "threads"},
            "seconds": _seconds(e), "counters": counters,
            "weights": "warm" if warm else ("cold" if _cold(b, warm) else "hot"),
        }
        if e.get("label"):
            rec["label"] = e["label"]
        if e.get("error_occurred"):
            rec["error"] = e.get("error_message", "error")
        for key in ("GOPS", "GBps"):
            if key in counters:
                rec[key] = counters[key]
        if rec.get("GOPS") and rec.get("GBps"):
            rec["intensity"] = rec["GOPS"] / rec["GBps"]
        out.append(rec)
    return out


def attach_bounds(records: list[dict]) -> None:
    """Sets bound and percent_of_bound on every kernel and peer record."""
    peaks = {}  # (probe, threads) -> GOPS
    for r in records:
        if r["kind"] == "limit" and r["op"] == "peak" and r.get("GOPS"):
            peaks[(r["format"], r["threads"])] = r["GOPS"]
    reads = sorted((r["params"].get("bytes", 0), r["threads"], r["GBps"]) for r in records
                   if r["kind"] == "limit" and r["op"] == "read" and r.get("GBps"))

    def best_int8(threads):
        cands = [(g, p) for (p, t), g in peaks.items() if t == threads and p.startswith("int8")]
        return max(cands) if cands else None

    def hot_read(nbytes, threads):
        fits = [g for size, t, g in reads if t == threads and size >= nbytes]
        return fits[0] if fits else None

    for r in records:
        if r["kind"] not in ("kernel", "peer") or "error" in r or not r.get("GOPS"):
            continue
        c = r["counters"]
        bw = c.get("probe_GBps")
        bw_what = f"read {'cold' if r['weights'] == 'cold' else 'hot'}, same bytes"
        if bw is None and r["kind"] == "peer" and r.get("weight_bytes"):
            bw = hot_read(r["weight_bytes"], r["threads"])
            bw_what = "read hot, same working set"
        peak, peak_what = c.get("peak_GOPS"), None
        if peak:
            if r["op"] in ("attn_decode", "attn_prefill"):
                peak_what = attention_peak_name(r.get("label", ""))
            else:
                probe = "f32_fma256" if r["op"] == "attn_prefill_baseline" else INT8_PEAK.get(r["isa"], "")
                peak_what = PEAK_NAMES.get(probe, "peak")
        elif r["kind"] == "peer":
            best = best_int8(r["threads"])
            if best:
                peak, peak_what = best[0], PEAK_NAMES.get(best[1], best[1]) + " (best int8)"
        intensity = r.get("intensity")
        options = []
        if bw and intensity:
            options.append(("bandwidth", bw_what, bw, "GB/s", intensity * bw))
        if peak:
            options.append(("compute", peak_what, peak, "GOPS", peak))
        if not options:
            continue
        kind, what, value, unit, attainable = min(options, key=lambda o: o[4])
        r["bound"] = {"kind": kind, "what": what, "value": value, "unit": unit, "attainable_GOPS": attainable}
        r["percent_of_bound"] = 100.0 * r["GOPS"] / attainable


def kv_title(fmt: str) -> str:
    """An attention benchmark's "<k>_<v>" formats as "k/v" ("q8_0_q8_0" ->
    "q8_0/q8_0")."""
    for k in ("q8_0", "q4_0"):  # the formats whose names hold an underscore
        if fmt.startswith(k + "_"):
            return f"{k}/{fmt[len(k) + 1:]}"
    return fmt.replace("_", "/", 1)


def attention_peak_name(label: str) -> str:
    """The peak an attention benchmark's ratio_to_peak is against, from the
    label bench_kernels.cpp's attn_peak gives the row: "peak:<id>", or
    "peak:<int8 id>+<fma id>" where integer QKᵀ meets float values (their
    harmonic mean)."""
    ids = label.removeprefix("peak:").split("+") if label.startswith("peak:") else []
    names = [PEAK_NAMES.get(i, i) for i in ids]
    if len(names) == 2:
        return f"{names[0]} (QKᵀ) + {names[1]} (P·V)"
    return names[0] if names else "peak"


def attach_peer_ratios(records: list[dict]) -> None:
    """ratio_lowbit_over_peer on each peer record: lowbit's GOPS over the
    peer's for the same op, shape and threads, from the same group (run)."""
    for r in records:
        if r["kind"] != "peer" or not r.get("GOPS") or r["op"] != "peer":
            continue
        fmt = r["format"]
        for cand in records:
            if (cand["kind"] == "kernel" and cand["op"] == "gemm" and cand["format"] == fmt
                    and cand["group"] == r["group"] and cand["threads"] == r["threads"]
                    and cand["params"] == r["params"] and cand.get("GOPS") and "error" not in cand):
                r["lowbit_name"] = cand["name"]
                r["lowbit_GOPS"] = cand["GOPS"]
                r["ratio_lowbit_over_peer"] = cand["GOPS"] / r["GOPS"]
                break


def model_estimates(records: list[dict], all_threads: int) -> list[dict]:
    """Decode tokens/s of Q4_0 models implied by the measured Q4_0 GEMV bandwidth."""
    gemv = [r for r in records if r["kind"] == "kernel" and r["op"] == "gemm" and r["format"] == "q4_0"
            and r["params"].get("M") == 1 and r.get("GBps") and "error" not in r
            and r["weights"] == "cold"]
    memory = [r for r in records if r["kind"] == "limit" and r["op"] == "read" and r.get("GBps")
              and r.get("label") == "memory"]  # past the last-level cache
    out = []
    for threads in sorted({1, all_threads}):
        mem = [r for r in memory if r["threads"] == threads]
        mem_bw = max(mem, key=lambda r: r["params"].get("bytes", 0))["GBps"] if mem else None
        for name, layers, hidden, inter, kv, vocab, family in MODELS:
            weights = model_weights(layers, hidden, inter, kv, vocab)
            nbytes = weights * Q4_0_BYTES_PER_WEIGHT
            shapes = set(MODEL_SHAPES[family])
            used = [r for r in gemv if r["threads"] == threads
                    and (r["params"].get("N"), r["params"].get("K")) in shapes]
            basis = f"{family} shapes"
            if not used:
                used = [r for r in gemv if r["threads"] == threads]
                basis = "all measured shapes"
            if not used:
                continue
            # Bytes-weighted harmonic mean: the time a token's weights take.
            w = [r["params"]["N"] * r["params"]["K"] for r in used]
            gbps = sum(w) / sum(wi / r["GBps"] for wi, r in zip(w, used))
            probes = [r["counters"].get("probe_GBps") for r in used]
            probe = (sum(w) / sum(wi / p for wi, p in zip(w, probes))) if all(probes) else None
            rec = {
                "kind": "estimate", "name": f"estimate/decode/{name}/q4_0/threads:{threads}",
                "group": "Model estimates", "title": f"{name} Q4_0 decode", "op": "estimate",
                "threads": threads, "model": name, "weights_per_token": weights,
                "bytes_per_token": nbytes, "gemv_GBps": gbps, "gemv_basis": basis,
                "gemv_measurements": [r["name"] for r in used],
                "tokens_per_s": gbps * 1e9 / nbytes,
            }
            if mem_bw:  # the read sweep past the LLC, for reference
                rec["memory_GBps"] = mem_bw
                rec["memory_tokens_per_s"] = mem_bw * 1e9 / nbytes
            if probe:  # the same GEMVs' own ceiling: a cold read of the same bytes
                rec["bound_tokens_per_s"] = probe * 1e9 / nbytes
                rec["percent_of_bound"] = 100.0 * gbps / probe
                rec["bound"] = {"kind": "bandwidth", "what": "read cold, same bytes", "value": probe,
                                "unit": "GB/s", "attainable_GOPS": None,
                                "tokens_per_s": probe * 1e9 / nbytes}
            out.append(rec)
    return out
