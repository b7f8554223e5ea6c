"""Performance benchmark (issue 12): every figure with its anchor, measured in the same run.

    ./rr python -m bench.perf                       # ~7 min, plus the LiteLLM venv the first time
    ./rr python -m bench.perf --rounds 3            # paired rounds; figures and ratios are medians
    ./rr python -m bench.perf --worker-env RR_MAX_JOBS=16 --skip-enqueue   # one lever, before/after

Everything is real except the provider: a throwaway ``redis-server``, ``bench/mock_provider.py``
(Cohere wire, one process per latency, no limit, scores by document position unless
``--mock-scores words``), ``enqueue.py`` and ``worker.py`` processes at
their default settings; the anchors run the same lines against the same mock: ``litellm.arerank``
in an asyncio loop (``bench/litellm_loop.py``) in its own virtual environment, created here
(``--litellm-venv``, ``pip install litellm``), and plain arq + httpx workers
(``bench/plain_arq.py``).  Lines have 20 documents of 200 characters.  See bench/README.md for
what each row measures; docs/performance.md records a run.  Exit status 1 only on errors (a
failed line, a process that died), never on a missed goal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import enqueue_bench, ratelimit_bench
from bench.enqueue_goals import perf_figures
from bench.perf_profile import py_spy, summary
from bench.perf_runs import (
    Bench,
    Throughput,
    ensure_litellm_venv,
    litellm_run,
    plain_run,
    rr_run,
    write_rerank_dataset,
)
from bench.ratelimit_bench import ROOT, Children
from jobs.embedded import EmbeddedRedis
from jobs.settings import RunnerSettings

__all__ = ["BREAKDOWN", "Row", "breakdown", "main", "one_round", "rows", "scale_out_rows"]

Figures = dict[str, float]
CORES = os.cpu_count() or 1
LIMITED_RPM = 6_000_000
"""A limit that is configured (the gate runs its scripts) but never waits."""


def _throughput(figures: Figures, name: str, run: Throughput, workers: int = 1) -> None:
    figures[f"{name}.lps"] = run.lines_per_s
    figures[f"{name}.cpu"] = run.cpu_ms_per_line
    if run.commands_per_line is not None:
        figures[f"{name}.cmd"] = run.commands_per_line
        figures[f"{name}.scripts"] = run.scripts_per_line or 0.0
        for command, per_line in run.by_command.items():
            figures[f"{name}.cmd:{command}"] = per_line
    for part, cpu in run.shared_cpu_ms_per_line.items():
        figures[f"{name}.{part}"] = cpu
    if shared := run.shared_cpu_ms_per_line:
        cpu_ms = run.cpu_ms_per_line + sum(shared.values())
        figures[f"{name}.cores"] = cpu_ms * run.lines_per_s / 1000
        # a quiet machine's bound: each worker runs on one core at most, all of them share the cores
        figures[f"{name}.ceiling"] = min(workers * 1000 / run.cpu_ms_per_line, CORES * 1000 / cpu_ms)
    figures[f"{name}.load"] = os.getloadavg()[0]
    if per_worker := run.per_worker_lines_per_s():
        figures[f"{name}.slowest"] = min(per_worker)


def one_round(args: argparse.Namespace, bench: Bench, python: Path | None, round_no: int = 0) -> Figures:
    figures: Figures = {}
    env = dict(item.split("=", 1) for item in args.worker_env)
    for latency in (0, 50):
        for workers in (1, 2):
            bench.log(f"  rerank-runner, {workers} worker(s), {latency} ms")
            _throughput(figures, f"rr{workers}_{latency}", rr_run(bench, latency, workers, env), workers)
        if python is not None:
            bench.log(f"  LiteLLM loop, {args.in_flight} in flight, {latency} ms")
            _throughput(figures, f"lit_{latency}", litellm_run(bench, python, latency, args.in_flight))
    bench.log("  rerank-runner, 2 workers, 50 ms, a rate limit configured")
    _throughput(figures, "rrlim_50", rr_run(bench, 50, 2, env, rpm=LIMITED_RPM))
    for workers in (1, 2):
        bench.log(f"  plain arq + httpx, {workers} worker(s), 50 ms")
        _throughput(figures, f"plain{workers}_50", plain_run(bench, 50, workers, args.in_flight))
    if not args.skip_enqueue:
        bench.log(f"  enqueue goals: {args.enqueue_lines:,} lines of 1, 4 and 15 KB (bench/enqueue_goals.py)")
        figures.update(perf_figures(args.enqueue_lines, bench.work, bench.url, round_no))
    return figures


class Row:
    def __init__(
        self, label: str, ours: str, anchor: str | None, unit: str, goal: str,
        met: Callable[[float], bool] | None, ratio: Callable[[Figures], float] | None = None,
    ) -> None:  # fmt: skip
        self.label, self.ours, self.anchor, self.unit, self.goal = label, ours, anchor, unit, goal
        self.met = met
        self.ratio = ratio or (lambda f: f[ours] / f[anchor] if anchor else float("nan"))


def rows(max_jobs: int) -> list[Row]:
    ceiling = max_jobs / 0.05
    return [
        Row("end to end, 2 worker.py, 50 ms, defaults", "rr2_50.lps", "lit_50.lps", "lines/s",
            ">= 1.5x LiteLLM loop", lambda r: r >= 1.5),
        Row("  same, vs 2 plain arq + httpx workers", "rr2_50.lps", "plain2_50.lps", "lines/s",
            ">= 1.3x", lambda r: r >= 1.3),
        Row(f"  1 worker.py (RR_MAX_JOBS={max_jobs}: ceiling {ceiling:.0f}/s)", "rr1_50.lps", None,
            "lines/s", "vs ceiling", None, lambda f: f["rr1_50.lps"] / ceiling),
        Row("worker CPU per line, 0 ms (1 worker)", "rr1_0.cpu", "lit_0.cpu", "ms",
            "<= 0.6x LiteLLM per call", lambda r: r <= 0.6),
        Row("worker CPU per line, 50 ms (1 worker)", "rr1_50.cpu", "lit_50.cpu", "ms",
            "<= 0.6x LiteLLM per call", lambda r: r <= 0.6),
        Row("  plain arq + httpx CPU per line, 50 ms", "plain1_50.cpu", "lit_50.cpu", "ms", "", None),
        Row("scale-out 2 vs 1 worker.py, 0 ms", "rr2_0.lps", "rr1_0.lps", "lines/s", ">= 1.8x",
            lambda r: r >= 1.8),
        Row("scale-out 2 vs 1 worker.py, 50 ms", "rr2_50.lps", "rr1_50.lps", "lines/s", ">= 1.8x",
            lambda r: r >= 1.8),
        *scale_out_rows(),
        Row("Redis commands per line, limit configured (2 w)", "rrlim_50.cmd", "plain2_50.cmd", "cmds",
            "<= 20 (ratio: /20)", lambda r: r <= 1, lambda f: f["rrlim_50.cmd"] / 20),
        Row("Redis commands per line, no limits (1 w)", "rr1_50.cmd", "plain1_50.cmd", "cmds",
            "< limited (ratio: /limited)", lambda r: r < 1,
            lambda f: f["rr1_50.cmd"] / f["rrlim_50.cmd"]),
        Row("Redis commands per line, no limits (2 w)", "rr2_50.cmd", "plain2_50.cmd", "cmds", "", None),
        Row("  Lua script runs per line, limit configured", "rrlim_50.scripts", None, "runs", "", None),
        Row("enqueue CLI, ~4 KB lines", "enq4k.cli", "enq4k.raw", "lines/s", ">= 0.8x raw pipelined",
            lambda r: r >= 0.8),
        Row("  same, vs arq enqueue_job loop", "enq4k.cli", "enq4k.arq", "lines/s", ">= 10x",
            lambda r: r >= 10),
        Row("enqueue CLI, ~15 KB lines", "enq15k.cli", "enq15k.raw", "lines/s", ">= 0.8x raw pipelined",
            lambda r: r >= 0.8),
        Row("Redis bytes per queued 1 KB line vs its payload", "mem.redis", "mem.payload", "B", "<= 1.3x",
            lambda r: r <= 1.3),
    ]  # fmt: skip


def scale_out_rows() -> list[Row]:
    """What the two workers share, 2 workers vs 1 at each latency (ratio: 2 w / 1 w)."""
    out = []
    for ms in (0, 50):
        for key, what, unit in (
            ("cpu", "worker CPU per line (all workers)", "ms"),
            ("mock", "mock provider CPU per line", "ms"),
            ("redis", "redis-server CPU per line", "ms"),
            ("cores", "cores busy (workers + mock + Redis)", "cores"),
            ("load", "load average (1 min) at the run's end", ""),
        ):
            out.append(Row(f"  {ms} ms: {what}, 2 w vs 1 w", f"rr2_{ms}.{key}", f"rr1_{ms}.{key}", unit, "",
                           None))  # fmt: skip
        out.append(Row(f"  {ms} ms: lines/s of the slower of 2 workers vs 1 worker", f"rr2_{ms}.slowest",
                       f"rr1_{ms}.lps", "lines/s", "", None))  # fmt: skip
        out.append(Row(f"  {ms} ms: CPU-bound ceiling on a quiet {CORES}-core machine, 2 w vs 1 w",
                       f"rr2_{ms}.ceiling", f"rr1_{ms}.ceiling", "lines/s", "", None))  # fmt: skip
    return out


def table(rounds: list[Figures], max_jobs: int) -> list[str]:
    out = [
        f"| | rerank-runner | anchor, same run | ratio (median of {len(rounds)}) | goal | |",
        "|---|---|---|---|---|---|",
    ]

    def median(pick: Callable[[Figures], float]) -> float:
        values = [v for f in rounds if (v := _safe(pick, f)) == v]
        return statistics.median(values) if values else float("nan")

    for row in rows(max_jobs):
        ours = median(_picker(row.ours))
        anchor = median(_picker(row.anchor)) if row.anchor else float("nan")
        ratio = median(row.ratio)
        if ours != ours:
            continue
        verdict = "" if row.met is None or ratio != ratio else ("met" if row.met(ratio) else "MISSED")
        anchor_text = f"{anchor:,.2f} {row.unit}" if anchor == anchor else ""
        ours_text = f"{ours:,.2f} {row.unit}"
        ratio_text = f"{ratio:.2f}x" if ratio == ratio else ""
        out.append(f"| {row.label} | {ours_text} | {anchor_text} | {ratio_text} | {row.goal} | {verdict} |")
    return out


BREAKDOWN = (("no limits, 1 w", "rr1_50"), ("no limits, 2 w", "rr2_50"), ("limit, 2 w", "rrlim_50"))


def breakdown(rounds: list[Figures], top: int = 14) -> list[str]:
    """Where the Redis commands go: calls per line of each command (medians of the rounds),
    for the three commands-per-line rows, the busiest commands first."""
    names = {k.split(":", 1)[1] for f in rounds for k in f if ":" in k}
    if not names:
        return []

    def median(key: str) -> float:
        return statistics.median(f.get(key, 0.0) for f in rounds)

    cells = {(run, name): median(f"{run}.cmd:{name}") for _, run in BREAKDOWN for name in names}
    order = sorted(names, key=lambda n: -max(cells[(run, n)] for _, run in BREAKDOWN))
    head = " | ".join(label for label, _ in BREAKDOWN)
    out = [f"| Redis calls per line (50 ms) | {head} |", "|---|---:|---:|---:|"]
    rest = [0.0 for _ in BREAKDOWN]
    for n, name in enumerate(order):
        values = [cells[(run, name)] for _, run in BREAKDOWN]
        if n < top:
            out.append(f"| {name.upper()} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
        else:
            rest = [r + v for r, v in zip(rest, values, strict=True)]
    if len(order) > top:
        out.append("| (the others) | " + " | ".join(f"{v:.2f}" for v in rest) + " |")
    out.append("| total | " + " | ".join(f"{median(f'{run}.cmd'):.2f}" for _, run in BREAKDOWN) + " |")
    return out


def _picker(key: str) -> Callable[[Figures], float]:
    return lambda figures: figures[key]


def _safe(pick: Callable[[Figures], float], figures: Figures) -> float:
    try:
        return pick(figures)
    except (KeyError, ZeroDivisionError):
        return float("nan")


def profile(bench: Bench, out: Path, env: dict[str, str], latency_ms: int = 0) -> None:
    """One worker under ``py-spy record``: where its CPU goes."""
    wrap = (py_spy(), "record", "--format", "raw", "--rate", "250", "--nonblocking", "-o", str(out), "--")
    print(f"  rerank-runner, 1 worker, {latency_ms} ms, under py-spy", flush=True)
    rr_run(bench, latency_ms, 1, env, wrap=wrap)
    print("\n".join(summary(out)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--lines", type=int, default=3000, help="lines per worker run (default 3000)")
    parser.add_argument("--rounds", type=int, default=1, help="paired rounds; medians are printed")
    parser.add_argument("--in-flight", type=int, default=64, help="LiteLLM calls / plain arq jobs in flight")
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for worker.py (repeatable), e.g. RR_MAX_JOBS=16")  # fmt: skip
    parser.add_argument("--enqueue-lines", type=int, default=50_000,
                        help="lines per enqueue dataset (1, 4 and 15 KB lines; default 50,000)")  # fmt: skip
    parser.add_argument("--skip-enqueue", action="store_true", help="no enqueue or bytes figures")
    parser.add_argument("--skip-litellm", action="store_true", help="no LiteLLM loop (no venv set-up)")
    parser.add_argument("--litellm-venv", type=Path, default=ROOT / ".bench-venv-litellm")
    parser.add_argument("--litellm-spec", default="litellm", help="what pip installs there")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="run 1 worker under py-spy too (samples to FILE)")  # fmt: skip
    parser.add_argument("--profile-latency", type=int, default=0, metavar="MS",
                        help="mock latency for --profile (--rounds 0: profile only)")  # fmt: skip
    parser.add_argument("--mock-scores", choices=("position", "words"), default="position",
                        help="the mock's scoring: position (precomputed, default) or words (reads "
                        "every document: ~0.2 ms of mock CPU per line)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, dataset)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    python = None if args.skip_litellm else ensure_litellm_venv(args.litellm_venv, args.litellm_spec, print)
    work = Path(tempfile.mkdtemp(prefix="perf-bench-")).resolve()
    children = Children(work)
    server = EmbeddedRedis(work / "redis", persist=False)
    env = dict(item.split("=", 1) for item in args.worker_env)
    max_jobs = int(env.get("RR_MAX_JOBS", RunnerSettings().max_jobs))
    try:
        server.start()
        dataset = write_rerank_dataset(work / "lines.jsonl", args.lines, 20, seed=3)
        bench = Bench(server.url, children, work, dataset, args.lines, redis_pid=server.server_pid,
                      mock_scores=args.mock_scores)  # fmt: skip
        rounds = []
        for n in range(args.rounds):
            print(f"round {n + 1} of {args.rounds}", flush=True)
            rounds.append(one_round(args, bench, python, n))
            print("\n".join([*table(rounds[-1:], max_jobs), "", *breakdown(rounds[-1:])]), flush=True)
        if args.profile:
            profile(bench, args.profile.resolve(), env, args.profile_latency)
    except (ratelimit_bench.BenchError, enqueue_bench.BenchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        children.stop_all()
        server.stop()
        if args.keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.rounds > 1:
        print(f"\nmedians of {args.rounds} rounds")
        print("\n".join([*table(rounds, max_jobs), "", *breakdown(rounds)]))
    print(f"\n{args.lines} lines per worker run, worker env {env or 'defaults'}; "
          f"{time.monotonic() - started:.0f}s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
