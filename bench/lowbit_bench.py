#!/usr/bin/env python3
"""lowbit-bench: what this machine does for LLM inference, and how close each
lowbit kernel comes to what the silicon allows.

    lowbit-bench --quick                       # under a minute: limits, a few kernels, peers
    lowbit-bench --json r.json --markdown r.md --svg roofline.svg    # the full suite
    python3 bench/lowbit_bench.py --build build/gcc --quick          # from a source tree

It measures the machine's limits (read bandwidth from the L2 to past the
last-level cache, int8 and f32 multiply-add peaks, AMX where present), runs the
standard suite of lowbit kernels (GEMV/GEMM of every format at model shapes,
attention decode and prefill, quantize and dequantize, at the tier dispatch
selects) and puts each result beside the limit that bounds it. Peers run in
the same run where installed: oneDNN's int8 matmul (built in with
LOWBIT_ONEDNN=ON), ONNX Runtime's MatMulNBits and llama.cpp (bench/peers).
It ends with the decode tokens/s of 1.5B, 7B and 8B Q4_0 models that the
measured GEMV bandwidth implies.

Everything is measured by lowbit-bench-kernels (Google Benchmark); this driver
only chooses the benchmarks, runs them group by group (a progress line while
each runs, its table when it ends) and writes the report: --json (one record
per measurement plus the machine), --markdown, --svg (a roofline).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import catalogue, check, measure, peers, render  # noqa: E402

CHUNK = 100  # benchmarks per run of the binary (keeps the filter regex small)
failures: list[int] = []  # exit statuses of runs of the binary that crashed


# ---------------------------------------------------------------- the tools

class Tools:
    """Where lowbit-bench-kernels, lowbit-info and lowbit-run are."""

    def __init__(self, build: str | None, bin_dir: str | None):
        here = Path(__file__).resolve().parent
        dirs: list[tuple[Path, Path, Path]] = []  # (kernels dir, info dir, run dir)
        if build:
            b = Path(build).resolve()
            dirs.append((b / "bench", b, b / "decoder"))
        if bin_dir:
            d = Path(bin_dir).resolve()
            dirs.append((d, d, d))
        if not build and not bin_dir:
            dirs.append((here, here, here))  # installed side by side
            for name in ("gcc", "clang", "."):
                b = (here.parent / "build" / name).resolve()
                dirs.append((b / "bench", b, b / "decoder"))
        self.kernels = self.info = self.run = None
        for kdir, idir, rdir in dirs:
            if (kdir / "lowbit-bench-kernels").exists():
                self.kernels = kdir / "lowbit-bench-kernels"
                self.info = idir / "lowbit-info" if (idir / "lowbit-info").exists() else None
                self.run = rdir / "lowbit-run" if (rdir / "lowbit-run").exists() else None
                break


def lowbit_info(tools: Tools, env: dict) -> dict:
    if not tools.info:
        return {}
    try:
        out = subprocess.run([str(tools.info), "--json"], capture_output=True, text=True, env=env, timeout=30)
        return json.loads(out.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def list_benchmarks(tools: Tools, env: dict) -> list[str]:
    out = subprocess.run([str(tools.kernels), "--benchmark_list_tests=true"], capture_output=True, text=True,
                         env=env, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"lowbit-bench: {tools.kernels} --benchmark_list_tests failed:\n{out.stderr}")
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


# ---------------------------------------------------------------- progress

class Progress:
    """One line on stderr, rewritten in place on a terminal."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.tty = enabled and sys.stderr.isatty()
        self.enabled = enabled
        self.last_line = time.monotonic()

    def show(self, what: str) -> None:
        if not self.tty:  # a log, not a terminal: a line every half minute
            if self.enabled and time.monotonic() - self.last_line > 30:
                self.note(what)
            return
        el = int(time.monotonic() - self.start)
        text = f"[{self.done:>4}/{self.total}  {el // 60}:{el % 60:02d}] {what}"
        width = shutil.get_terminal_size((100, 20)).columns - 1
        sys.stderr.write("\r\033[K" + text[:width])
        sys.stderr.flush()

    def note(self, text: str) -> None:
        """A line of its own (groups starting, when not on a terminal)."""
        if not self.enabled:
            return
        if self.tty:
            sys.stderr.write("\r\033[K")
        el = int(time.monotonic() - self.start)
        sys.stderr.write(f"[{self.done:>4}/{self.total}  {el // 60}:{el % 60:02d}] {text}\n")
        sys.stderr.flush()
        self.last_line = time.monotonic()

    def clear(self) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# ---------------------------------------------------------------- running

def run_chunk(tools: Tools, env: dict, benches: list[catalogue.Bench], plan: catalogue.Plan, warm: bool,
              progress: Progress, context: dict) -> dict:
    """One run of lowbit-bench-kernels over `benches`; returns its JSON."""
    names = [b.full for b in benches]
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [str(tools.kernels), f"--benchmark_filter={pattern}", f"--benchmark_min_time={plan.min_time}",
               f"--benchmark_repetitions={plan.repetitions}", "--benchmark_color=false",
               f"--benchmark_out={out}", "--benchmark_out_format=json"]
        if plan.repetitions > 1:
            cmd.append("--benchmark_report_aggregates_only=true")
        if warm:
            cmd.append("--lowbit_warm")
        # Line-buffered stdout, so each finished benchmark shows at once.
        if shutil.which("stdbuf"):
            cmd = ["stdbuf", "-oL"] + cmd
        remaining = list(names)
        progress.show("running " + remaining[0])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        stderr_lines: list[str] = []

        def drain():
            for line in proc.stderr:
                stderr_lines.append(line)

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        for line in proc.stdout:
            for n in list(remaining):
                if line.startswith(n) and (len(line) == len(n) or line[len(n)] in " \t_\n"):
                    remaining.remove(n)
                    progress.done += 1
                    progress.show("running " + remaining[0] if remaining else "…")
                    break
        proc.wait()
        t.join(timeout=5)
        progress.done += len(remaining)  # anything not seen (errors print differently)
        if not out.exists():  # it crashed: every benchmark of the chunk becomes an error record
            progress.note(f"lowbit-bench-kernels exited {proc.returncode} without results:\n"
                          + "".join(stderr_lines[-20:]))
            failures.append(proc.returncode)
            return {"benchmarks": [{"name": n, "run_name": n, "run_type": "iteration", "error_occurred": True,
                                    "error_message": f"lowbit-bench-kernels exited {proc.returncode}"}
                                   for n in names]}
        doc = json.loads(out.read_text())
    if not context:
        context.update(doc.get("context", {}))
    return doc


def run_group(tools: Tools, env: dict, group: catalogue.Group, plan: catalogue.Plan, progress: Progress,
              context: dict, listed: dict[str, int]) -> list[dict]:
    by_name = {b.full: b for b in group.benches}
    # In the binary's own order (the order it registered them), so the
    # progress line can name the benchmark running now.
    benches = sorted(group.benches, key=lambda b: listed.get(b.full, 0))
    records = []
    for i in range(0, len(benches), CHUNK):
        doc = run_chunk(tools, env, benches[i:i + CHUNK], plan, group.warm, progress, context)
        records += measure.records_from_run(doc, by_name, group.title, group.warm)
    order = {b.base: i for i, b in enumerate(group.benches)}
    records.sort(key=lambda r: order.get(r["name"], 1 << 30))
    return records


# ---------------------------------------------------------------- machine

def machine_info(info: dict, context: dict, threads: int) -> dict:
    cpu = info.get("cpu") or ""
    if not cpu:
        try:
            cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                       if line.startswith(("model name", "Model name")))
        except (OSError, StopIteration):
            cpu = "?"
    def num(key):
        try:
            return int(context.get(key, ""))
        except ValueError:
            return None
    return {
        "cpu": cpu, "arch": info.get("arch") or os.uname().machine, "threads": threads,
        "features": info.get("features", []), "compiled": info.get("compiled", []),
        "detected": info.get("detected", []), "enabled": info.get("enabled", []),
        "selected": info.get("selected", {}),
        "compiler": context.get("lowbit_compiler", "?"),
        "lowbit_version": info.get("version") or context.get("lowbit_version", "?"),
        "l2_bytes": num("lowbit_l2_bytes"), "llc_bytes": num("lowbit_llc_bytes"),
        "memory_bytes": num("lowbit_memory_bytes"),
        "mhz_per_cpu": context.get("mhz_per_cpu"), "load_avg": context.get("load_avg"),
        "onednn_version": context.get("onednn_version"),
        "benchmark_library_build": context.get("library_build_type"),
    }


def busy_warning(load_start: float, threads: int) -> str | None:
    """A warning when other work was using the CPUs as the run began (the
    1-minute load average then, before this run added its own)."""
    if load_start > 0.5 * threads:
        return (f"warning: the load average was {load_start:.1f} on {os.cpu_count()} CPUs when the run began: "
                "other processes shared the CPUs, so figures and their ratios to limits are noisy")
    return None


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(prog="lowbit-bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    suite = ap.add_mutually_exclusive_group()
    suite.add_argument("--quick", action="store_const", dest="suite", const="quick",
                       help="a short report (under a minute on two cores)")
    suite.add_argument("--full", action="store_const", dest="suite", const="full", help="the full suite (default)")
    suite.add_argument("--smoke", action="store_const", dest="suite", const="smoke",
                       help="a few benchmarks with a tiny min time (the ctest of this tool)")
    ap.add_argument("--json", metavar="FILE", help="one record per measurement, plus machine info")
    ap.add_argument("--markdown", metavar="FILE", help="the report as Markdown")
    ap.add_argument("--svg", metavar="FILE", help="the roofline plot")
    ap.add_argument("--build", metavar="DIR", help="a lowbit build directory (build/gcc)")
    ap.add_argument("--bin-dir", metavar="DIR", help="where lowbit-bench-kernels and lowbit-info are")
    ap.add_argument("--threads", type=int, help="'all threads' means this many (default: every hardware thread)")
    ap.add_argument("--min-time", type=float, help="Google Benchmark min time per benchmark, seconds")
    ap.add_argument("--repetitions", type=int, help="repetitions per benchmark (the median is reported)")
    ap.add_argument("--filter", metavar="REGEX", help="also run every listed benchmark matching REGEX")
    ap.add_argument("--no-peers", action="store_true", help="skip ONNX Runtime and llama.cpp")
    ap.add_argument("--install-peers", action="store_true", help="pip-install ONNX Runtime into the peers venv first")
    ap.add_argument("--lowbit-run", metavar="PATH", help="lowbit-run for the llama.cpp comparison "
                    "(default: the build's decoder/lowbit-run)")
    ap.add_argument("--model", metavar="GGUF", help="model for the llama.cpp comparison (default: ci/fetch_model.sh's)")
    ap.add_argument("--list", action="store_true", help="print the benchmarks the suite would run, and exit")
    ap.add_argument("--self-check", action="store_true", help="validate the files written; exit 1 on a problem")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    args = ap.parse_args()
    suite_name = args.suite or "full"
    started = datetime.datetime.now().astimezone()
    load_start = os.getloadavg()[0]
    t_start = time.monotonic()

    tools = Tools(args.build, args.bin_dir)
    if args.lowbit_run:
        tools.run = Path(args.lowbit_run).resolve()
    if not tools.kernels:
        raise SystemExit("lowbit-bench: lowbit-bench-kernels not found (build with LOWBIT_BUILD_BENCH=ON and pass "
                         "--build DIR)")
    env = dict(os.environ)
    if args.threads:
        env["LOWBIT_NUM_THREADS"] = str(args.threads)
    info = lowbit_info(tools, env)
    all_threads = args.threads or int(info.get("threads") or os.cpu_count() or 1)

    names = list_benchmarks(tools, env)
    listed = {n: i for i, n in enumerate(names)}
    cat = catalogue.Catalogue(names, info.get("selected", {}), all_threads)
    plan = catalogue.plan(cat, suite_name)
    if args.min_time is not None:
        plan.min_time = args.min_time
    if args.repetitions is not None:
        plan.repetitions = max(1, args.repetitions)
    if args.filter:
        rx = re.compile(args.filter)
        extra = [b for b in cat.benches if rx.search(b.base)]
        if extra:
            plan.groups.append(catalogue.Group(f"Filter {args.filter}", extra))

    if args.list:
        for g in plan.groups:
            print(f"# {g.title} ({len(g.benches)}{', weights warm' if g.warm else ''})")
            print("\n".join(b.full for b in g.benches))
        print(f"# ONNX Runtime cases (M, N, K, threads): {plan.ort}\n# llama.cpp: {plan.llama_cpp}")
        return 0

    peer_status = []
    if not any(b.op == "peer" and b.isa == "onednn" for b in cat.benches):
        peer_status.append({"peer": "oneDNN int8 matmul", "status": "not built (configure with -DLOWBIT_ONEDNN=ON; "
                                                                    "Debian: libdnnl-dev)"})
    else:
        peer_status.append({"peer": "oneDNN int8 matmul", "status": "in lowbit-bench-kernels (weights cold)"})
    ort_cases = [] if args.no_peers else plan.ort
    if ort_cases:
        why = peers.ort_status(args.install_peers)
        if why:
            peer_status.append({"peer": "ONNX Runtime MatMulNBits", "status": why})
            ort_cases = []
        else:
            warm = []
            for m, n, k, t in ort_cases:
                warm += cat.pick("gemm", "q4_0", M=m, N=n, K=k, threads=t)
            plan.groups.append(catalogue.Group("ONNX Runtime peer (weights warm)", warm, warm=True))
    model = Path(args.model) if args.model else peers.default_model()
    llama = False
    if not args.no_peers and plan.llama_cpp:
        why = peers.llama_status(tools.run, model)
        if why:
            peer_status.append({"peer": "llama.cpp", "status": why})
        else:
            llama = True
    elif not args.no_peers:
        peer_status.append({"peer": "llama.cpp", "status": "full suite only (lowbit-bench --full)"})

    total = sum(len(g.benches) for g in plan.groups) + len(ort_cases) + (1 if llama else 0)
    progress = Progress(total, not args.quiet)
    print(f"lowbit-bench {info.get('version', '?')} — {suite_name} suite — {info.get('cpu', '?')}, "
          f"{all_threads} threads, ISAs: {' '.join(info.get('enabled', [])) or '?'}")
    print(f"limits and kernels by {tools.kernels}; 'bound' is a limit measured in this run, "
          "'% of bound' the result's share of it\n", flush=True)

    records: list[dict] = []
    context: dict = {}
    for group in plan.groups:
        progress.note(f"{group.title}: {len(group.benches)} benchmarks")
        recs = run_group(tools, env, group, plan, progress, context, listed)
        if group.warm and ort_cases:
            progress.note(f"ONNX Runtime MatMulNBits: {len(ort_cases)} cases")
            progress.show("running onnxruntime_matmulnbits.py")
            ort_recs, status = peers.run_ort(ort_cases, max(plan.min_time, 0.2), timeout=600)
            progress.done += len(ort_cases)
            peer_status.append({"peer": "ONNX Runtime MatMulNBits", "status": status})
            recs += ort_recs
        measure.attach_bounds(records + recs)
        measure.attach_peer_ratios(recs)
        records += recs
        progress.clear()
        print(render.terminal_table(group.title, recs), flush=True)
    if llama:
        progress.note("llama.cpp vs lowbit-run (compare_llama_cpp.py)")
        progress.show("running compare_llama_cpp.py")
        recs, status = peers.run_llama(tools.run, model, all_threads, timeout=900)
        progress.done += 1
        peer_status.append({"peer": "llama.cpp", "status": status})
        records += recs
        progress.clear()
        if recs:
            print(render.terminal_table("llama.cpp peer (tokens/s, lowbit-run vs llama-cpp-python)", recs),
                  flush=True)
    measure.attach_bounds(records)
    estimates = measure.model_estimates(records, all_threads)
    records += estimates
    progress.clear()
    if estimates:
        print(render.terminal_table("Model estimates (Q4_0 decode, from the measured GEMV bandwidth)", estimates))
        print(render.estimates_note(estimates) + "\n")
    for p in peer_status:
        print(f"peer {p['peer']}: {p['status']}")
    load = busy_warning(load_start, all_threads)
    if load:
        print(load)

    doc = {
        "schema": "lowbit-bench/1", "suite": suite_name,
        "command": "lowbit-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": time.monotonic() - t_start,
        "settings": {"min_time_s": plan.min_time, "repetitions": plan.repetitions},
        "machine": machine_info(info, context, all_threads),
        "peers": peer_status, "records": records,
        "load_average": {"start": load_start, "end": os.getloadavg()[0]},
    }
    if load:
        doc["warning"] = load
    svg_points = 0
    if args.svg:
        svg_text = render.roofline(doc)
        svg_points = len(render.roofline_records(records, render.plot_threads(records, all_threads)))
        Path(args.svg).parent.mkdir(parents=True, exist_ok=True)
        Path(args.svg).write_text(svg_text)
    doc["elapsed_s"] = time.monotonic() - t_start
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        svg_rel = os.path.relpath(args.svg, Path(args.markdown).parent) if args.svg else None
        Path(args.markdown).write_text(render.markdown(doc, svg_rel))
    print(f"\nlowbit-bench: {len(records)} measurements in {doc['elapsed_s']:.0f} s"
          + "".join(f"; {kind} {path}" for kind, path in (("JSON", args.json), ("Markdown", args.markdown),
                                                           ("SVG", args.svg)) if path))
    if failures:
        print(f"lowbit-bench: {len(failures)} run(s) of lowbit-bench-kernels crashed (exit {failures})",
              file=sys.stderr)
    if args.self_check:
        problems = check.self_check(args.json, args.markdown, args.svg, svg_points)
        for p in problems:
            print(f"lowbit-bench: self-check: {p}", file=sys.stderr)
        if problems:
            return 1
        print("lowbit-bench: self-check passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
