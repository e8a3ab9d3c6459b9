"""What lowbit-bench-kernels offers, and which of it each suite runs.

The benchmark binary lists every benchmark it registered (one per kernel x tier
x shape x thread count, plus the machine's limits and the in-process peers).
This module parses those names, picks for every operation the tier dispatch
would select on this machine (from `lowbit-info --json`), and turns a suite
(smoke, quick, full) into groups of benchmark names, each group one run of
the binary. Names are matched by their parts, never by position in the list,
so new kernels and tiers join the report without a change here.
"""
from __future__ import annotations

import dataclasses
import re

# Tier preference within each architecture (include/lowbit/isa.hpp).
TIER_ORDER = ["scalar", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "amx", "neon", "dotprod", "i8mm"]

# The int8 and f32 peak probes a tier's kernels are measured against
# (bench/peak.cpp: int8_peak_for, fma_peak_for).
INT8_PEAK = {"avx512_vnni": "int8_vnni512", "amx": "int8_vnni512", "avx2_vnni": "int8_vnni256",
             "avx512": "int8_madd512", "avx2": "int8_madd256"}
FMA_PEAK = {"avx512": "f32_fma512", "avx512_vnni": "f32_fma512", "amx": "f32_fma512",
            "avx2": "f32_fma256", "avx2_vnni": "f32_fma256"}
PEAK_NAMES = {
    "int8_vnni512": "int8 vpdpbusd zmm", "int8_vnni256": "int8 vpdpbusd ymm",
    "int8_madd512": "int8 vpmaddubsw zmm", "int8_madd256": "int8 vpmaddubsw ymm",
    "f32_fma512": "f32 FMA zmm", "f32_fma256": "f32 FMA ymm",
    "int8_amx": "int8 AMX tdpbssd", "int8_sdot128": "int8 sdot", "f32_fma128": "f32 FMA neon",
    "int8_portable": "int8 portable",
}

# The linear-layer shapes (N x K) of bench_kernels.cpp, by model.
MODEL_SHAPES = {
    "SmolLM2-135M": [(576, 576), (192, 576), (1536, 576), (576, 1536)],
    "Qwen2-1.5B": [(1536, 1536), (256, 1536), (8960, 1536), (1536, 8960)],
    "Llama-8B": [(4096, 4096), (1024, 4096), (14336, 4096), (4096, 14336)],
}

_SUFFIXES = re.compile(r"(/manual_time|/real_time|/iterations:\d+|/repeats:\d+)+$")


@dataclasses.dataclass(frozen=True)
class Bench:
    """One registered benchmark: `full` is its name as listed, `base` without
    Google Benchmark's suffixes; op/fmt/isa/params come from the name's parts."""
    full: str
    base: str
    op: str
    fmt: str = ""
    isa: str = ""
    params: tuple = ()

    def p(self, key, default=None):
        return dict(self.params).get(key, default)

    @property
    def threads(self) -> int:
        return int(self.p("threads", 1))


def parse_name(full: str) -> Bench | None:
    base = _SUFFIXES.sub("", full.strip())
    parts = base.split("/")
    params = tuple((k, int(v)) for k, v in (p.split(":", 1) for p in parts if ":" in p) if v.isdigit())
    plain = [p for p in parts if ":" not in p]
    if not plain:
        return None
    head = plain[0]
    if head == "limits" and len(plain) >= 2:
        if plain[1] == "read":
            return Bench(full, base, "read", "read", "", params)
        if plain[1] == "peak" and len(plain) >= 3:
            return Bench(full, base, "peak", plain[2], "", params)
        return None
    if head == "peak" and len(plain) >= 2:
        return Bench(full, base, "peak", plain[1], "", params)
    if head == "peer" and len(plain) >= 3:
        return Bench(full, base, "peer", plain[2], plain[1], params)
    if head in ("gemm", "quantize", "dequantize", "attn_decode", "attn_prefill") and len(plain) >= 3:
        return Bench(full, base, head, plain[1], plain[2], params)
    if head == "attn_prefill_baseline" and len(plain) >= 2:
        return Bench(full, base, head, plain[1], "", params)
    return Bench(full, base, head, plain[1] if len(plain) > 1 else "", "", params)


def tier_rank(isa: str) -> int:
    return TIER_ORDER.index(isa) if isa in TIER_ORDER else -1


class Catalogue:
    """Every benchmark the binary offers, with the tier dispatch selects per op."""

    def __init__(self, names: list[str], selected: dict[str, str], all_threads: int):
        self.benches = [b for b in (parse_name(n) for n in names) if b is not None]
        self.selected = selected
        self.all_threads = all_threads
        self.thread_counts = sorted({1, all_threads})

    # -- tiers ------------------------------------------------------------------
    def _selected_tiers(self, b: Bench) -> set[str]:
        """The tiers dispatch picks for benchmark b's op ({} when lowbit-info said nothing)."""
        keys: list[str] = []
        if b.op == "gemm":
            if b.fmt in ("s8s8", "u8s8"):
                stem = "gemm_s8." + b.fmt[:2]
            else:
                stem = "linear." + b.fmt
            keys = [stem + ".gemv"] if b.p("M") == 1 else [stem + ".small", stem + ".large"]
        elif b.op in ("attn_decode", "attn_prefill"):
            keys = ["attention." + b.fmt]
        elif b.op == "quantize":
            keys = ["quantize." + b.fmt]
        elif b.op == "dequantize":
            keys = ["dequantize." + b.fmt.rsplit("_", 1)[0]]
        tiers = set()
        for k in keys:
            kernel = self.selected.get(k, "")
            if "__" in kernel:
                tiers.add(kernel.rsplit("__", 1)[1])
        return tiers

    def best(self, candidates: list[Bench]) -> Bench | None:
        """Of one op x shape x threads at several tiers: the tier dispatch
        selects, else the most preferred tier listed."""
        if not candidates:
            return None
        want = self._selected_tiers(candidates[0])
        chosen = [c for c in candidates if c.isa in want]
        pool = chosen or candidates
        return max(pool, key=lambda c: tier_rank(c.isa))

    def pick(self, op: str, fmt: str | tuple | None = None, **params) -> list[Bench]:
        """The selected-tier benchmark of op (and fmt) for every parameter set
        matching `params` (a value may be a collection of allowed values)."""
        groups: dict[tuple, list[Bench]] = {}
        for b in self.benches:
            if b.op != op or (fmt is not None and b.fmt not in ((fmt,) if isinstance(fmt, str) else fmt)):
                continue
            ok = True
            for key, want in params.items():
                have = b.p(key)
                allowed = want if isinstance(want, (list, tuple, set, frozenset)) else (want,)
                if have not in allowed:
                    ok = False
                    break
            if ok:
                groups.setdefault((b.fmt, b.params), []).append(b)
        return [x for x in (self.best(c) for c in groups.values()) if x is not None]

    def formats(self, op: str) -> list[str]:
        seen = []
        for b in self.benches:
            if b.op == op and b.fmt not in seen:
                seen.append(b.fmt)
        return seen

    def gemm_tier(self) -> str:
        """The tier of the Q4_0 GEMM at large M (the int8 peak the GEMMs are held to)."""
        picks = self.pick("gemm", "q4_0", M=512)
        return picks[0].isa if picks else ""

    def attention_tier(self) -> str:
        picks = self.pick("attn_prefill")
        return picks[0].isa if picks else ""

    def read_sizes(self) -> list[int]:
        return sorted({b.p("bytes") for b in self.benches if b.op == "read"})

    def peer(self, peer: str, fmt: str, **params) -> list[Bench]:
        return [b for b in self.benches if b.op == "peer" and b.isa == peer and b.fmt == fmt
                and all(b.p(k) in (v if isinstance(v, (list, tuple, set)) else (v,)) for k, v in params.items())]


@dataclasses.dataclass
class Group:
    """One run of lowbit-bench-kernels: a titled set of benchmarks."""
    title: str
    benches: list[Bench]
    warm: bool = False  # --lowbit_warm: weights kept in the caches


@dataclasses.dataclass
class Plan:
    suite: str
    groups: list[Group]
    min_time: float
    repetitions: int
    ort: list[tuple[int, int, int, int]]  # (M, N, K, threads) for the ONNX Runtime peer
    llama_cpp: bool


def _uniq(benches: list[Bench]) -> list[Bench]:
    seen, out = set(), []
    for b in benches:
        if b.full not in seen:
            seen.add(b.full)
            out.append(b)
    return out


def plan(cat: Catalogue, suite: str) -> Plan:
    T = cat.thread_counts
    all_t = cat.all_threads
    sizes = cat.read_sizes()
    int8_probe = INT8_PEAK.get(cat.gemm_tier(), "")
    fma_probe = FMA_PEAK.get(cat.attention_tier(), "")
    peaks_all = [b for b in cat.benches if b.op == "peak"]

    if suite == "smoke":
        groups = [
            Group("Limits", _uniq([b for b in cat.benches if b.op == "read" and b.p("bytes") == (sizes[0] if sizes else -1)
                                   and b.threads == 1]
                                  + [b for b in peaks_all if b.fmt == int8_probe and b.threads == 1])),
            Group("Kernels", _uniq(cat.pick("gemm", "q4_0", M=1, N=576, K=576, threads=1)
                                   + cat.pick("quantize", "q8_0", M=1, K=576, threads=1))),
        ]
        return Plan("smoke", [g for g in groups if g.benches], 0.01, 1, [], False)

    if suite == "quick":
        mid = [s for s in sizes if s <= max(sizes[0], (sizes[-1] // 8 if sizes else 0))] if sizes else []
        quick_sizes = sorted({sizes[0], mid[-1], sizes[-1]}) if sizes else []
        limits = [b for b in cat.benches if b.op == "read" and b.p("bytes") in quick_sizes]
        limits += [b for b in peaks_all if b.fmt in (int8_probe, fma_probe) or b.base.startswith("limits/")]
        gemv = cat.pick("gemm", "q4_0", M=1, N=(8960, 14336), K=(1536, 4096), threads=T)
        gemv = [b for b in gemv if (b.p("N"), b.p("K")) in ((8960, 1536), (14336, 4096))]
        for fmt in ("q4_1", "q8_0", "q4_k", "q6_k", "s8s8"):
            gemv += cat.pick("gemm", fmt, M=1, N=4096, K=4096, threads=all_t)
        gemm = cat.pick("gemm", "q4_0", M=(16, 512), N=4096, K=4096, threads=all_t)
        gemm += cat.pick("gemm", "s8s8", M=512, N=4096, K=4096, threads=all_t)
        attn = cat.pick("attn_decode", ("f16_f16", "q8_0_q8_0"), ctx=4096, threads=all_t)
        attn += cat.pick("attn_prefill", "f16_f16", len=512, threads=all_t)
        quant = cat.pick("quantize", "q8_0", M=1, K=4096, threads=all_t)
        quant += cat.pick("dequantize", "q4_0_f32", N=4096, K=4096, threads=all_t)
        onednn = cat.peer("onednn", "s8s8", M=512, N=4096, K=4096, threads=all_t)
        groups = [Group("Limits", _uniq(limits)), Group("GEMV (M = 1)", _uniq(gemv)),
                  Group("GEMM", _uniq(gemm + onednn)), Group("Attention", _uniq(attn)),
                  Group("Quantize / dequantize", _uniq(quant))]
        ort = [(1, 14336, 4096, all_t)]
        return Plan("quick", [g for g in groups if g.benches], 0.05, 1, ort, False)

    # full
    limits = [b for b in cat.benches if b.op == "read"] + peaks_all
    # GEMV at every model shape; GEMM (M = 16 and 512) at the 1.5B and 8B
    # shapes, where prefill time goes (the 135M model's are too small to tell).
    big = MODEL_SHAPES["Qwen2-1.5B"] + MODEL_SHAPES["Llama-8B"]
    gemv, gemm = [], []
    for fmt in cat.formats("gemm"):
        gemv += cat.pick("gemm", fmt, M=1, threads=T)
        gemm += [b for b in cat.pick("gemm", fmt, M=(16, 512), threads=T) if (b.p("N"), b.p("K")) in big]
    attn = cat.pick("attn_decode", threads=T) + cat.pick("attn_prefill", threads=T)
    attn += [b for b in cat.benches if b.op == "attn_prefill_baseline"]
    quant = cat.pick("quantize", threads=T) + cat.pick("dequantize", threads=T)
    # oneDNN runs in the same process as lowbit's rows of the same shapes.
    onednn_gemv = cat.peer("onednn", "s8s8", M=1, threads=T)
    onednn_gemm = [b for b in cat.peer("onednn", "s8s8", M=(16, 512), threads=T) if (b.p("N"), b.p("K")) in big]
    groups = [Group("Limits", _uniq(limits)), Group("GEMV (M = 1)", _uniq(onednn_gemv + gemv)),
              Group("GEMM", _uniq(onednn_gemm + gemm)), Group("Attention", _uniq(attn)),
              Group("Quantize / dequantize", _uniq(quant))]
    ort = [(m, n, k, t) for t in T for m in (1, 16)
           for n, k in MODEL_SHAPES["Qwen2-1.5B"] + MODEL_SHAPES["Llama-8B"]]
    # A short min time with three repetitions: the weights are flushed before
    # every call, and for the small shapes the flush, not the kernel, is what
    # takes the time (Google Benchmark counts only the kernel towards it).
    return Plan("full", [g for g in groups if g.benches], 0.01, 3, ort, True)
