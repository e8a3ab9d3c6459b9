#!/usr/bin/env python3
"""A/B two builds of lowbit-bench-kernels on a noisy machine.

    python3 bench/ab.py OLD/lowbit-bench-kernels NEW/lowbit-bench-kernels \\
        --filter 'attn_decode/q8_0_q8_0/avx512_vnni/ctx:4096/' --rounds 8
    python3 bench/ab.py A B --filter 'attn_prefill/.*/len:512/threads:1' -- --lowbit_warm

On a shared machine one run of a benchmark can be 10-30% off the next, and
the drift is slow: minutes of a busy neighbour, then a quiet spell. Two
builds timed one after the other would measure the neighbour. This script
runs them in rounds instead: each round runs both binaries (in alternating
order), each for a few repetitions, and takes the ratio of their medians
(B / A); the report is, per benchmark, the median of those per-round ratios,
their range, and in how many rounds B was faster. A change that is real
shows up as a median away from 1 with most rounds on one side of it.

The last column is a second estimate: B's fastest repetition over all
rounds against A's. A neighbour only ever adds time, so for a kernel bound
by the core (data in cache, --lowbit_warm) the fastest runs are the least
disturbed ones: one build against a copy of itself (8 rounds of 5, Zen 4,
warm decode) gave fastest ratios 0.997-1.027 where the medians of per-round
ratios gave 0.943-1.058. From DRAM it went the other way (fastest 0.948 and
1.029, medians 0.984 and 0.996): there read the median.

Arguments after `--` go to both binaries (for example --lowbit_warm).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def timings(binary: str, flt: str, reps: int, min_time: float, extra: list[str]) -> dict[str, list[float]]:
    """One run of `binary`: benchmark name -> the times of its repetitions."""
    cmd = [binary, f"--benchmark_filter={flt}", f"--benchmark_repetitions={reps}",
           f"--benchmark_min_time={min_time}", "--benchmark_format=json", *extra]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise SystemExit(f"ab.py: cannot run {binary}: {e.strerror}")
    if run.returncode != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"ab.py: {binary} exited with status {run.returncode}:\n{tail}")
    try:
        out = json.loads(run.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"ab.py: {binary} did not print Google Benchmark JSON (is it lowbit-bench-kernels?)")
    result: dict[str, list[float]] = {}
    for b in out.get("benchmarks", []):
        if b.get("run_type") == "iteration" and not b.get("error_occurred"):
            result.setdefault(b["run_name"], []).append(float(b["real_time"]))
    return result


def summarize(rounds: list[tuple[dict[str, list[float]], dict[str, list[float]]]]) -> list[dict]:
    """Per benchmark timed by both binaries in at least one round: the median,
    lowest and highest of the per-round ratios B / A of median times, the
    rounds B was faster in, the rounds counted, and B's fastest time over
    those rounds divided by A's."""
    names = sorted({n for a, b in rounds for n in a.keys() & b.keys()})
    rows = []
    for name in names:
        both = [(a[name], b[name]) for a, b in rounds if a.get(name) and b.get(name) and min(a[name]) > 0]
        ratios = [statistics.median(tb) / statistics.median(ta) for ta, tb in both]
        fastest = min(t for _, tb in both for t in tb) / min(t for ta, _ in both for t in ta)
        rows.append({"benchmark": name, "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                     "b_faster": sum(r < 1 for r in ratios), "rounds": len(ratios), "fastest": fastest})
    return rows


def self_test() -> None:
    """summarize() on rounds with known ratios."""
    rounds = [({"x": [10.0, 9.0, 12.0], "y": [4.0]}, {"x": [9.0, 8.5, 30.0], "y": [4.4]}),
              ({"x": [10.0], "y": [4.0]}, {"x": [11.0], "y": [3.6, 3.2, 5.0]}),
              ({"x": [20.0, 8.0, 25.0]}, {"x": [16.0], "z": [1.0]}),
              ({"y": [0.0]}, {"y": [1.0]})]  # a zero time under A: the round is left out, not divided by
    rows = {r["benchmark"]: r for r in summarize(rounds)}
    assert sorted(rows) == ["x", "y"], rows  # z ran under B only
    x, y = rows["x"], rows["y"]
    assert (x["rounds"], x["b_faster"]) == (3, 2), x
    assert abs(x["median"] - 0.9) < 1e-12 and abs(x["min"] - 0.8) < 1e-12 and abs(x["max"] - 1.1) < 1e-12, x
    assert abs(x["fastest"] - 8.5 / 8.0) < 1e-12, x  # over every repetition of every round
    assert (y["rounds"], y["b_faster"]) == (2, 1) and abs(y["median"] - 1.0) < 1e-12, y
    assert abs(y["fastest"] - 3.2 / 4.0) < 1e-12, y
    print("ab.py self-test: ok")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("a", nargs="?", help="the baseline lowbit-bench-kernels")
    ap.add_argument("b", nargs="?", help="the build to compare with it")
    ap.add_argument("--filter", default=".", help="--benchmark_filter for both (default: all)")
    ap.add_argument("--rounds", type=int, default=6, help="rounds of both binaries (default 6)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per binary and round (default 5)")
    ap.add_argument("--min-time", type=float, default=0.1, help="--benchmark_min_time (default 0.1)")
    ap.add_argument("--check", action="store_true",
                    help="fail unless every benchmark was timed by both binaries in every round")
    ap.add_argument("--self-test", action="store_true", help="check the summary arithmetic and exit")
    args, extra = ap.parse_known_args()
    if extra and extra[0] == "--":
        extra = extra[1:]
    if args.self_test:
        self_test()
        return 0
    if not args.a or not args.b:
        ap.error("two binaries are needed: A (the baseline) and B")
    if args.rounds < 1 or args.reps < 1:
        ap.error("--rounds and --reps must be at least 1")
    rounds = []
    for r in range(args.rounds):
        order = [(0, args.a), (1, args.b)] if r % 2 == 0 else [(1, args.b), (0, args.a)]
        pair: list[dict[str, list[float]]] = [{}, {}]
        for slot, binary in order:
            pair[slot] = timings(binary, args.filter, args.reps, args.min_time, extra)
        rounds.append((pair[0], pair[1]))
        print(f"round {r + 1}/{args.rounds}: {len(pair[0])} / {len(pair[1])} benchmarks", file=sys.stderr)
    rows = summarize(rounds)
    if not rows:
        print("no benchmark matched the filter in both binaries", file=sys.stderr)
        return 1
    width = max(len(r["benchmark"]) for r in rows)
    print(f"{'benchmark':<{width}}  B/A median  (min - max)       B faster  fastest B/A")
    for r in rows:
        won = f"{r['b_faster']}/{r['rounds']}"
        print(f"{r['benchmark']:<{width}}  {r['median']:10.3f}  ({r['min']:.3f} - {r['max']:.3f})  "
              f"{won:>8}  {r['fastest']:11.3f}")
    if args.check:
        missing = [r["benchmark"] for r in rows if r["rounds"] != args.rounds]
        if missing:
            print(f"timed in fewer than {args.rounds} rounds: {', '.join(missing)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
