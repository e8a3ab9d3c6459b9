"""The report as text: the terminal table (group by group, as the run goes),
the Markdown file, and the roofline's choice of ceilings and points.

Every row reads the same way: what was measured, on how many threads, the
result, the limit that bounds it and the result as a percentage of that limit;
peer rows add the ratio lowbit / peer.
"""
from __future__ import annotations

import math

from .catalogue import FMA_PEAK, INT8_PEAK, PEAK_NAMES
from .measure import human_bytes
from .svg import roofline_svg


def _num(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def result_text(r: dict) -> str:
    if r["kind"] == "estimate":
        return f"{r['tokens_per_s']:.1f} tok/s ({_num(r['gemv_GBps'])} GB/s)"
    if r["op"] == "llama.cpp":
        mine = r.get("lowbit_tokens_per_s")
        return f"{r['tokens_per_s']:.1f} tok/s" + (f" (lowbit-run {mine:.1f})" if mine else "")
    parts = []
    if r["op"] == "read":
        return f"{_num(r.get('GBps'))} GB/s"
    if r.get("GBps") is not None and r["op"] not in ("peak", "attn_prefill", "attn_prefill_baseline"):
        parts.append(f"{_num(r['GBps'])} GB/s")
    if r.get("GOPS") is not None:
        parts.append(f"{_num(r['GOPS'])} GOPS")
    return ", ".join(parts) or "—"


def bound_text(r: dict) -> str:
    b = r.get("bound")
    if not b:
        return ""
    text = f"{b['what']} {_num(b['value'])} {b['unit']}"
    if b.get("tokens_per_s"):
        text += f" = {b['tokens_per_s']:.1f} tok/s"
    return text


def row_name(r: dict) -> str:
    name = r["title"]
    if r["kind"] == "kernel" and r.get("isa"):
        name += f" [{r['isa']}]"
    if r["kind"] == "limit" and r.get("label"):
        name += f" ({r['label']})"
    if r["kind"] == "peer" and r.get("label") and r["op"] == "peer":
        name += f" [{r['label']}]"
    return name


def cells(r: dict) -> list[str]:
    if "error" in r:
        return [row_name(r), str(r.get("threads", "")), "error: " + r["error"], "", "", ""]
    pct = r.get("percent_of_bound")
    ratio = r.get("ratio_lowbit_over_peer")
    return [row_name(r), str(r.get("threads", "")), result_text(r), bound_text(r),
            f"{pct:.0f}%" if pct is not None else "", f"{ratio:.2f}x" if ratio is not None else ""]


HEADER = ["measurement", "T", "result", "bound (limit measured in this run)", "% of bound", "lowbit/peer"]


def terminal_table(title: str, records: list[dict]) -> str:
    rows = [cells(r) for r in records]
    show_ratio = any(c[5] for c in rows)
    header = HEADER if show_ratio else HEADER[:5]
    rows = [c[: len(header)] for c in rows]
    widths = [max(len(h), *(len(c[i]) for c in rows)) if rows else len(h) for i, h in enumerate(header)]
    widths[0] = min(widths[0], 64)

    def line(cs):
        out = []
        for i, (c, w) in enumerate(zip(cs, widths)):
            c = c if len(c) <= w else c[: w - 1] + "…"
            out.append(c.rjust(w) if i in (1, 4, 5) else c.ljust(w))
        return "  ".join(out).rstrip()

    bar = "─" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([f"{title}", bar, line(header), bar] + [line(c) for c in rows] + [""])


def markdown_table(records: list[dict]) -> list[str]:
    rows = [cells(r) for r in records]
    show_ratio = any(c[5] for c in rows)
    header = HEADER if show_ratio else HEADER[:5]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i in (1, 4, 5) else "---"
                                                             for i in range(len(header))) + "|"]
    for c in rows:
        out.append("| " + " | ".join(x.replace("|", "\\|") for x in c[: len(header)]) + " |")
    return out


def markdown(doc: dict, svg_name: str | None) -> str:
    m = doc["machine"]
    lines = [f"# lowbit-bench report ({doc['suite']} suite)", "",
             f"`{doc['command']}` — {doc['started']}, {doc['elapsed_s']:.0f} s", "",
             "| machine | |", "|---|---|",
             f"| CPU | {m.get('cpu', '?')} ({m.get('arch', '?')}) |",
             f"| threads | {m.get('threads', '?')} |",
             f"| caches | L2 {human_bytes(m.get('l2_bytes') or 0)} per core, LLC {human_bytes(m.get('llc_bytes') or 0)} |",
             f"| ISAs detected / enabled | {' '.join(m.get('detected', []))} / {' '.join(m.get('enabled', []))} |",
             f"| compiler | {m.get('compiler', '?')} |",
             f"| lowbit | {m.get('lowbit_version', '?')} |",
             f"| selected kernels | {selected_summary(m.get('selected', {}))} |", ""]
    if doc.get("warning"):
        lines += [f"> {doc['warning']}", ""]
    if svg_name:
        lines += [f"![roofline]({svg_name})", ""]
    order = []
    for r in doc["records"]:
        if r["group"] not in order:
            order.append(r["group"])
    for g in order:
        recs = [r for r in doc["records"] if r["group"] == g]
        lines += [f"## {g}", ""] + markdown_table(recs) + [""]
        if g == "Model estimates":
            lines += [estimates_note(recs), ""]
    if doc.get("peers"):
        lines += ["## Peers", "", "| peer | status |", "|---|---|"]
        lines += [f"| {p['peer']} | {p['status']} |" for p in doc["peers"]] + [""]
    lines += ["Each bound is a limit measured in the same run: a plain read of the same bytes on the same "
              "threads (cold when the kernel's weights are cold) or the multiply-add peak of the kernel's "
              "tier; between the two, the roofline at the kernel's arithmetic intensity decides. "
              "Peers are held to the best int8 peak of the machine.", ""]
    return "\n".join(lines)


def estimates_note(recs: list[dict]) -> str:
    seen, parts = set(), []
    for r in recs:
        if r["model"] in seen:
            continue
        seen.add(r["model"])
        parts.append(f"{r['model']} {r['weights_per_token'] / 1e9:.2f} G weights, "
                     f"{r['bytes_per_token'] / 2**30:.2f} GiB")
    return ("Decode tokens/s = measured Q4_0 GEMV bandwidth (bytes-weighted over the model's shapes, weights "
            "cold) / bytes of weights read per token: every linear layer plus the output head at Q4_0 "
            "(4.5 bits a weight); embedding row, norms and KV cache left out. " + "; ".join(parts) +
            ". The bound is the same division at the GEMVs' own ceiling (a cold read of the same bytes).")


def selected_summary(selected: dict) -> str:
    keep = [k for k in ("linear.q4_0.gemv", "linear.q4_0.large", "gemm_s8.s8.large", "attention.f16_f16",
                        "quantize.q8_0", "dequantize.q4_0") if k in selected]
    return ", ".join(f"{k}: `{selected[k]}`" for k in keep) or "—"


def roofline(doc: dict) -> str:
    """The roofline of the all-threads results, with this run's ceilings."""
    m = doc["machine"]
    recs = doc["records"]
    t = plot_threads(recs, m.get("threads", 1))
    reads = sorted((r for r in recs if r["kind"] == "limit" and r["op"] == "read" and r["threads"] == t
                    and r.get("GBps")), key=lambda r: r["params"].get("bytes", 0))
    bandwidths = []
    if reads:
        chosen = {reads[0]["name"]: reads[0], reads[-1]["name"]: reads[-1]}
        in_llc = [r for r in reads if r.get("label") in ("L3", "LLC")]
        if in_llc:
            chosen[in_llc[-1]["name"]] = in_llc[-1]
        for r in sorted(chosen.values(), key=lambda r: -r["GBps"]):
            bandwidths.append((f"read {human_bytes(r['params']['bytes'])} ({r.get('label', '')})", r["GBps"]))
    peaks = {r["format"]: r["GOPS"] for r in recs if r["kind"] == "limit" and r["op"] == "peak"
             and r["threads"] == t and r.get("GOPS")}
    gemm_isa = next((r["isa"] for r in recs if r["op"] == "gemm" and r.get("isa")), "")
    attn_isa = next((r["isa"] for r in recs if r["op"].startswith("attn_") and r.get("isa")), "")
    wanted = [p for p in ("int8_amx", INT8_PEAK.get(gemm_isa), FMA_PEAK.get(attn_isa), "int8_sdot128",
                          "f32_fma128") if p]
    if not any(p in peaks for p in wanted):
        wanted = list(peaks)
    computes = [(PEAK_NAMES.get(p, p), peaks[p]) for p in dict.fromkeys(wanted) if p in peaks]
    points = []
    for r in roofline_records(recs, t):
        cat = ("peer" if r["kind"] == "peer" else "gemv" if r["op"] == "gemm" and r["params"].get("M") == 1 else
               "gemm" if r["op"] == "gemm" else "attention" if r["op"].startswith("attn") else "quant")
        pct = r.get("percent_of_bound")
        label = row_name(r)
        note = f"{label}: {_num(r['GOPS'])} GOPS" + (f", {pct:.0f}%" if pct is not None else "")
        points.append({"label": label, "intensity": r["intensity"], "GOPS": r["GOPS"], "category": cat,
                       "note": note})
    title = "lowbit roofline"
    subtitle = (f"{m.get('cpu', '?')}, {t} thread{'s' if t > 1 else ''}, {doc['suite']} suite, {doc['started'][:10]}; "
                "ceilings measured in the same run")
    return roofline_svg(title, subtitle, bandwidths, computes, points)


def plot_threads(recs: list[dict], all_threads: int) -> int:
    """All threads, unless nothing ran on all threads (a one-thread smoke run)."""
    if any(r["threads"] == all_threads and r["kind"] in ("kernel", "peer") for r in recs):
        return all_threads
    return 1


def roofline_records(recs: list[dict], threads: int) -> list[dict]:
    """The points: all-threads kernel and peer results; in a large suite, per
    op x format x M only the largest shape, so the legend stays readable."""
    cand = [r for r in recs if r["kind"] in ("kernel", "peer") and r["threads"] == threads and "error" not in r
            and r.get("intensity") and r.get("GOPS")]
    seen = {}
    for r in cand:
        if r["weights"] == "warm" and r["kind"] == "kernel":
            continue  # the warm copies made for a peer duplicate a cold row
        p = r["params"]
        key = (r["kind"], r["op"], r["format"], r.get("isa"), p.get("M"))
        size = (p.get("N") or p.get("M") or 1) * (p.get("K") or 1) + (p.get("ctx") or 0) + (p.get("len") or 0)
        if r["op"] == "dequantize" and not r["format"].endswith("_f32"):
            continue
        if r["op"] == "quantize" and not r["format"].startswith("q8"):
            continue  # weight quantizers run offline, not on the inference path
        if key not in seen or size > seen[key][0]:
            seen[key] = (size, r)
    if len(cand) <= 24:
        return [r for r in cand if not (r["weights"] == "warm" and r["kind"] == "kernel")]
    return [r for _, r in seen.values()]
