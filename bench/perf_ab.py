"""One lever's before/after in the same run: ``worker.py`` with environment A, then with B, in
paired rounds (the order swapped every round, so load that drifts over the run favours neither).

    ./rr python -m bench.perf_ab --a RR_EVENT_LOOP=asyncio --b RR_EVENT_LOOP=uvloop --rounds 3
    ./rr python -m bench.perf_ab --a PYTHONPATH=DIR --runs 0:1    # DIR/hiredis.py raising ImportError:
                                                                  # redis-py's own parser vs hiredis
    ./rr python -m bench.perf_ab --a-root /tmp/base --runs 0:1,50:1   # a copy of main (git archive)
                                                                      # as A: a lever with no setting

Each round runs every ``--runs`` case (``LATENCY:WORKERS``, ``lim`` for bench.perf's "limit
configured" case: 2 workers, 50 ms, an rpm limit that never waits) with A and with B, on the
same Redis, mock provider and lines as ``bench/perf.py``.  It prints per case the medians of
lines/s, CPU ms per line, Redis commands and Lua runs per line, and the median of the per-round
ratios B/A.  Exit status 1 only on errors.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import ratelimit_bench
from bench.perf import LIMITED_RPM
from bench.perf_runs import Bench, Throughput, rr_run, write_rerank_dataset
from bench.ratelimit_bench import ROOT, Children
from jobs.embedded import EmbeddedRedis

__all__ = ["Case", "main", "parse_case", "report"]

Case = tuple[int, int, int | None]
"""(latency ms, workers, rpm limit or None)."""
FIELDS = (("lines/s", "lines_per_s"), ("CPU ms/line", "cpu_ms_per_line"),
          ("cmds/line", "commands_per_line"), ("Lua runs/line", "scripts_per_line"))  # fmt: skip


def parse_case(text: str) -> Case:
    if text == "lim":
        return (50, 2, LIMITED_RPM)
    latency, workers = text.split(":")
    return (int(latency), int(workers), None)


def _env(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def report(case: Case, runs: list[tuple[Throughput, Throughput]]) -> list[str]:
    latency, workers, rpm = case
    lines = [f"{latency} ms, {workers} worker(s){', rpm limit configured' if rpm else ''}:"]
    for label, name in FIELDS:
        pairs = [(getattr(a, name) or 0.0, getattr(b, name) or 0.0) for a, b in runs]
        ratio = statistics.median(b / a if a else float("nan") for a, b in pairs)
        a_mid = statistics.median(a for a, _ in pairs)
        b_mid = statistics.median(b for _, b in pairs)
        lines.append(f"  {label:<14} A {a_mid:10.2f}   B {b_mid:10.2f}   B/A {ratio:6.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--a", action="append", default=[], metavar="KEY=VALUE", help="worker env A")
    parser.add_argument("--b", action="append", default=[], metavar="KEY=VALUE", help="worker env B")
    parser.add_argument("--a-root", type=Path, default=ROOT, help="checkout whose worker.py runs as A")
    parser.add_argument("--b-root", type=Path, default=ROOT, help="checkout whose worker.py runs as B")
    parser.add_argument("--runs", default="0:1,50:1,lim", help="comma-separated cases")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lines", type=int, default=3000, help="lines per worker run")
    args = parser.parse_args(argv)
    envs = (_env(args.a), _env(args.b))
    roots = (args.a_root.resolve(), args.b_root.resolve())
    cases = [parse_case(c) for c in args.runs.split(",")]
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="perf-ab-")).resolve()
    children = Children(work)
    server = EmbeddedRedis(work / "redis", persist=False)
    found: dict[Case, list[tuple[Throughput, Throughput]]] = {case: [] for case in cases}
    try:
        server.start()
        dataset = write_rerank_dataset(work / "lines.jsonl", args.lines, 20, seed=3)
        bench = Bench(server.url, children, work, dataset, args.lines)
        for n in range(args.rounds):
            order = (0, 1) if n % 2 == 0 else (1, 0)
            for case in cases:
                latency, workers, rpm = case
                got: dict[int, Throughput] = {}
                for side in order:
                    print(f"round {n + 1}: {latency} ms, {workers} worker(s), {'AB'[side]}", flush=True)
                    got[side] = rr_run(bench, latency, workers, envs[side], rpm=rpm, root=roots[side])
                found[case].append((got[0], got[1]))
    except ratelimit_bench.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        children.stop_all()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nA: {envs[0] or 'defaults'}, {roots[0]}   B: {envs[1] or 'defaults'}, {roots[1]}\n"
          f"({args.rounds} rounds, "
          f"{args.lines} lines per run, {time.monotonic() - started:.0f}s)")  # fmt: skip
    for case in cases:
        print("\n".join(report(case, found[case])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
