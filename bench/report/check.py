"""--self-check: the report files must say what the report promises.

The JSON must hold the machine description and one well-formed record per
measurement, with at least one limit and one kernel that ran; the Markdown a
table row for each record; the SVG must parse and draw a ceiling and a point
per plotted kernel. Returns the list of problems (empty when all is well).
"""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

MACHINE_KEYS = ("cpu", "arch", "threads", "features", "compiler", "lowbit_version", "selected")
KINDS = ("limit", "kernel", "peer", "estimate")


def check_json(path: Path) -> list[str]:
    problems = []
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return [f"{path}: not readable JSON ({e})"]
    if doc.get("schema") != "lowbit-bench/1":
        problems.append(f"{path}: schema is {doc.get('schema')!r}")
    machine = doc.get("machine", {})
    problems += [f"{path}: machine has no '{k}'" for k in MACHINE_KEYS if k not in machine]
    records = doc.get("records")
    if not isinstance(records, list) or not records:
        return problems + [f"{path}: no records"]
    for r in records:
        where = f"{path}: record {r.get('name', '?')}"
        if r.get("kind") not in KINDS:
            problems.append(f"{where}: kind {r.get('kind')!r}")
        for key in ("name", "title", "group", "threads"):
            if key not in r:
                problems.append(f"{where}: no '{key}'")
        if "error" in r:
            continue
        for key in ("GOPS", "GBps", "percent_of_bound", "tokens_per_s"):
            v = r.get(key)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                problems.append(f"{where}: {key} = {v!r}")
        if r.get("kind") == "kernel" and not (r.get("GOPS") or r.get("GBps")):
            problems.append(f"{where}: a kernel without GOPS or GBps")
        if r.get("bound") and r.get("percent_of_bound") is None:
            problems.append(f"{where}: a bound without a percentage")
    ran = {r.get("kind") for r in records if "error" not in r}
    problems += [f"{path}: no {k} measured" for k in ("limit", "kernel") if k not in ran]
    return problems


def check_markdown(path: Path, doc: dict) -> list[str]:
    try:
        text = path.read_text()
    except OSError as e:
        return [f"{path}: {e}"]
    problems = []
    if not text.startswith("# lowbit-bench report"):
        problems.append(f"{path}: no title line")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for r in doc.get("records", []):
        if not any(r["title"] in row for row in rows):
            problems.append(f"{path}: no table row for {r['name']}")
    return problems


def check_svg(path: Path, points: int) -> list[str]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        return [f"{path}: not well-formed SVG ({e})"]
    ns = "{http://www.w3.org/2000/svg}"
    problems = []
    if root.tag != ns + "svg":
        problems.append(f"{path}: root element is {root.tag}")
    lines = [e for e in root.iter(ns + "line") if e.get("clip-path")]
    if not lines:
        problems.append(f"{path}: no ceiling lines")
    marks = len(list(root.iter(ns + "circle"))) + len([e for e in root.iter(ns + "rect") if e.find(ns + "title") is not None])
    if marks != points:
        problems.append(f"{path}: {marks} points drawn, {points} expected")
    return problems


def self_check(json_path: str | None, md_path: str | None, svg_path: str | None, svg_points: int) -> list[str]:
    problems = []
    doc = {}
    if json_path:
        problems += check_json(Path(json_path))
        try:
            doc = json.loads(Path(json_path).read_text())
        except (OSError, ValueError):
            pass
    if md_path:
        problems += check_markdown(Path(md_path), doc)
    if svg_path:
        problems += check_svg(Path(svg_path), svg_points)
    return problems
