"""A roofline plot as a standalone SVG, written by hand (no plotting library).

x: arithmetic intensity (operations per byte), y: GOPS, both logarithmic.
Measured bandwidth ceilings are sloped lines (GOPS = GB/s x intensity), compute
ceilings horizontal lines, each labelled with its value. Every kernel is a
numbered point; the legend beside the plot names it with its GOPS and its
share of the bound. Labels are placed greedily where they overlap nothing
drawn before them.
"""
from __future__ import annotations

import math
from xml.sax.saxutils import escape

COLORS = {"gemv": "#1f77b4", "gemm": "#d62728", "attention": "#2ca02c", "quant": "#9467bd", "peer": "#555555"}
BANDWIDTH_COLOR = "#e08a00"
COMPUTE_COLOR = "#3b6fb6"


def _fmt(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:.3g}k" if v < 1e6 else f"{v / 1e6:.3g}M"
    if v >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


class _Axes:
    def __init__(self, x0, y0, w, h, xmin, xmax, ymin, ymax):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.lx0, self.lx1 = math.log10(xmin), math.log10(xmax)
        self.ly0, self.ly1 = math.log10(ymin), math.log10(ymax)

    def px(self, x: float) -> float:
        return self.x0 + (math.log10(x) - self.lx0) / (self.lx1 - self.lx0) * self.w

    def py(self, y: float) -> float:
        return self.y0 + self.h - (math.log10(y) - self.ly0) / (self.ly1 - self.ly0) * self.h


def roofline_svg(title: str, subtitle: str, bandwidths: list[tuple[str, float]], computes: list[tuple[str, float]],
                 points: list[dict]) -> str:
    """bandwidths: (label, GB/s); computes: (label, GOPS); points: dicts with
    label, intensity, GOPS, category (a COLORS key) and note (legend text)."""
    pts = [p for p in points if p.get("intensity", 0) > 0 and p.get("GOPS", 0) > 0]
    xs = [p["intensity"] for p in pts] or [1.0]
    ys = [p["GOPS"] for p in pts] + [c for _, c in computes] or [1.0]
    xmin = 10 ** math.floor(math.log10(min(xs) / 2))
    xmax = 10 ** math.ceil(math.log10(max(xs) * 2))
    if bandwidths and computes:  # show every ridge point
        top = max(c for _, c in computes)
        xmax = max(xmax, 10 ** math.ceil(math.log10(top / min(b for _, b in bandwidths) * 1.5)))
    ylow = min(ys + [b * xmin for _, b in bandwidths])
    ymin = 10 ** math.floor(math.log10(max(ylow, 1e-3) / 1.5))
    ymax = 10 ** math.ceil(math.log10(max(ys) * 2))
    if xmax / xmin < 100:
        xmax = xmin * 100
    if ymax / ymin < 100:
        ymin = ymax / 100

    for p in pts:
        note = p.get("note", p["label"])
        p["note"] = note if len(note) <= 78 else note[:77] + "…"
    legend_w = max(240, 40 + 6.8 * max((len(p["note"]) for p in pts), default=20))
    plot_w, plot_h = 620, 460
    margin_l, margin_t = 70, 64
    legend_lines = max(len(pts), 1) + 1
    height = max(margin_t + plot_h + 60, margin_t + 18 + 15 * legend_lines + 20)
    width = int(margin_l + plot_w + 30 + legend_w)
    ax = _Axes(margin_l, margin_t, plot_w, plot_h, xmin, xmax, ymin, ymax)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{margin_l}" y="24" font-size="16" font-weight="bold">{escape(title)}</text>',
           f'<text x="{margin_l}" y="44" font-size="11" fill="#444">{escape(subtitle)}</text>',
           '<defs><clipPath id="plot"><rect x="%g" y="%g" width="%g" height="%g"/></clipPath></defs>'
           % (ax.x0, ax.y0, ax.w, ax.h)]
    # Grid and ticks at every decade.
    for e in range(round(ax.lx0), round(ax.lx1) + 1):
        x = ax.px(10 ** e)
        out.append(f'<line x1="{x:.1f}" y1="{ax.y0}" x2="{x:.1f}" y2="{ax.y0 + ax.h}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{x:.1f}" y="{ax.y0 + ax.h + 16}" text-anchor="middle">{_fmt(10 ** e)}</text>')
    for e in range(round(ax.ly0), round(ax.ly1) + 1):
        y = ax.py(10 ** e)
        out.append(f'<line x1="{ax.x0}" y1="{y:.1f}" x2="{ax.x0 + ax.w}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{ax.x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(10 ** e)}</text>')
    out.append(f'<rect x="{ax.x0}" y="{ax.y0}" width="{ax.w}" height="{ax.h}" fill="none" stroke="#888"/>')
    out.append(f'<text x="{ax.x0 + ax.w / 2}" y="{ax.y0 + ax.h + 36}" text-anchor="middle" font-size="12">'
               'arithmetic intensity (operations per byte of weights / KV cache)</text>')
    out.append(f'<text transform="translate({ax.x0 - 48},{ax.y0 + ax.h / 2}) rotate(-90)" text-anchor="middle" '
               'font-size="12">GOPS (multiply and add counted apart)</text>')

    placed: list[tuple[float, float, float, float]] = []

    def free(box):
        x0, y0, x1, y1 = box
        if x0 < ax.x0 or x1 > ax.x0 + ax.w or y0 < ax.y0 or y1 > ax.y0 + ax.h:
            return False
        return all(x1 <= a0 or x0 >= a1 or y1 <= b0 or y0 >= b1 for a0, b0, a1, b1 in placed)

    top_peak = max((c for _, c in computes), default=ymax)
    for p in pts:  # the points first, so no label covers one
        x, y = ax.px(p["intensity"]), ax.py(p["GOPS"])
        placed.append((x - 5, y - 5, x + 5, y + 5))
    # Compute ceilings: horizontal lines, label at the right end above the line.
    for label, gops in computes:
        y = ax.py(gops)
        out.append(f'<line x1="{ax.x0}" y1="{y:.1f}" x2="{ax.x0 + ax.w}" y2="{y:.1f}" stroke="{COMPUTE_COLOR}" '
                   f'stroke-width="1.5" clip-path="url(#plot)"/>')
        text = f"{label}: {_fmt(gops)} GOPS"
        tw = 6.2 * len(text)
        for dy in (-4, 12, -16, 24):
            box = (ax.x0 + ax.w - 4 - tw, y + dy - 10, ax.x0 + ax.w - 4, y + dy + 2)
            if free(box):
                break
        placed.append(box)
        out.append(f'<text x="{box[2]:.1f}" y="{box[3] - 2:.1f}" text-anchor="end" fill="{COMPUTE_COLOR}">'
                   f'{escape(text)}</text>')
    # Bandwidth ceilings: GOPS = GB/s x intensity, up to the highest peak.
    for label, gbps in bandwidths:
        x_end = min(xmax, top_peak / gbps) if computes else xmax
        x1, y1, x2, y2 = ax.px(xmin), ax.py(gbps * xmin), ax.px(x_end), ax.py(gbps * x_end)
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{BANDWIDTH_COLOR}" '
                   f'stroke-width="1.5" stroke-dasharray="6 3" clip-path="url(#plot)"/>')
        angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
        text = f"{label}: {gbps:.3g} GB/s"
        # The label runs along the line, just above or just below it, where
        # the small boxes covering it overlap the fewest things placed before.
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        length = 6.3 * len(text)
        best = None
        for frac in [i / 25 for i in range(1, 19)]:
            lx = ax.px(xmin * (x_end / xmin) ** frac)
            ly = y1 + (lx - x1) / max(x2 - x1, 1e-9) * (y2 - y1)
            for side in (-4, 13):  # baseline offset across the line: above, below
                bx0, by0 = lx - side * sin, ly + side * cos
                boxes = []
                for step in range(0, int(length) + 1, 8):
                    bx, by = bx0 + step * cos + 5 * sin, by0 + step * sin - 5 * cos
                    boxes.append((bx - 4, by - 6, bx + 4, by + 6))
                clashes = sum(not free(b) for b in boxes)
                if best is None or clashes < best[0]:
                    best = (clashes, bx0, by0, boxes)
            if best[0] == 0:
                break
        _, tx, ty, boxes = best
        placed.extend(boxes)
        out.append(f'<text transform="translate({tx:.1f},{ty:.1f}) rotate({angle:.1f})" fill="{BANDWIDTH_COLOR}">'
                   f'{escape(text)}</text>')
    # Points, numbered; numbers placed around the point where free.
    for i, p in enumerate(pts, 1):
        x, y = ax.px(p["intensity"]), ax.py(p["GOPS"])
        color = COLORS.get(p.get("category", ""), "#000")
        if p.get("category") == "peer":
            out.append(f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="white" stroke="{color}" '
                       f'stroke-width="1.5" transform="rotate(45 {x:.1f} {y:.1f})"><title>{escape(p["label"])}</title></rect>')
        else:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}" fill-opacity="0.85">'
                       f'<title>{escape(p["label"])}</title></circle>')
    for i, p in enumerate(pts, 1):
        x, y = ax.px(p["intensity"]), ax.py(p["GOPS"])
        tw = 6.5 * len(str(i))
        box = None
        for dx, dy in ((6, -5), (6, 13), (-6 - tw, -5), (-6 - tw, 13), (-tw / 2, -9), (-tw / 2, 19),
                       (14, 4), (-14 - tw, 4), (10, -15), (10, 23), (-10 - tw, -15), (-10 - tw, 23)):
            cand = (x + dx, y + dy - 10, x + dx + tw, y + dy)
            if free(cand):
                box = cand
                break
        if box is None:
            box = (x + 6, y - 15, x + 6 + tw, y - 5)
        placed.append(box)
        color = COLORS.get(p.get("category", ""), "#000")
        out.append(f'<text x="{box[0]:.1f}" y="{box[3] - 1:.1f}" font-size="10" fill="{color}">{i}</text>')
    # Legend.
    lx, ly = ax.x0 + ax.w + 30, margin_t + 4
    out.append(f'<text x="{lx}" y="{ly}" font-weight="bold">kernels (GOPS, share of bound)</text>')
    for i, p in enumerate(pts, 1):
        color = COLORS.get(p.get("category", ""), "#000")
        yy = ly + 15 * i
        out.append(f'<text x="{lx}" y="{yy}" fill="{color}">{i:>2}</text>'
                   f'<text x="{lx + 22}" y="{yy}">{escape(p.get("note", p["label"]))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
