"""Before and after: another checkout's ``enqueue.py`` (e.g. main's worktree) against this one's,
alternating on the same dataset and the same throwaway Redis, so machine load hits both alike.

    python -m bench.enqueue_paired --baseline /work/main [--lines 100000] [--docs 19] [--rounds 3]

Prints each side's end-to-end walls, the median lines/s end to end and of the enqueue step as the
CLI prints it, the median CPU seconds of the CLI (user + system) and of Redis (``INFO cpu``) per
run, and the ratios this / baseline.  On a loaded machine the CPU figures are the steadier ones.
Lines hold 200-character documents, none repeated.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
from pathlib import Path

from bench.enqueue_bench import ROOT, check_queue, run_measured
from bench.enqueue_goals import goal_dataset
from jobs.connection import open_pool
from jobs.embedded import EmbeddedRedis


def redis_cpu(url: str) -> float:
    """Redis's own CPU seconds so far (user + system, ``INFO cpu``)."""

    async def read() -> float:
        pool = await open_pool(url)
        try:
            found = await pool.info("cpu")
            return float(found["used_cpu_user"]) + float(found["used_cpu_sys"])
        finally:
            await pool.aclose()

    return asyncio.run(read())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline", type=Path, required=True, help="checkout whose enqueue.py is the baseline"
    )
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--docs", type=int, default=19, help="200-character documents per line (19: ~4 KB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-bytecode-cache",
        dest="bytecode",
        action="store_false",
        help="keep PYTHONDONTWRITEBYTECODE for both sides (every start-up compiles the project again)",
    )
    args = parser.parse_args()
    sides = {"baseline": args.baseline.resolve(), "this": ROOT}
    walls: dict[str, list[float]] = {name: [] for name in sides}
    steps: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="enqueue-paired-") as tmp:
        work = Path(tmp)
        data = goal_dataset(work / "paired.jsonl", args.lines, args.docs, seed=5)
        server = EmbeddedRedis(work / "redis", persist=False)
        try:
            server.start()
            for round_ in range(args.rounds):
                for name, root in sides.items():
                    argv = [sys.executable, str(root / "enqueue.py"), str(data), "--redis-url", server.url]
                    redis_before = redis_cpu(server.url)
                    child = run_measured(
                        [*argv, "--batch", f"r{round_}", "--no-progress"], work, bytecode=args.bytecode
                    )
                    found = re.search(r"enqueued \d+ new lines in ([\d.]+)s", child.output)
                    assert found, child.output
                    walls[name].append(child.wall)
                    cpus[name].append((child.cpu, redis_cpu(server.url) - redis_before))
                    steps[name].append(max(float(found[1]), 0.05))
                    check_queue(server.url, args.lines, name)
        finally:
            server.stop()
    n = args.lines
    for name in sides:
        print(
            f"{name:<9} end to end {[round(w, 1) for w in walls[name]]} s: median "
            f"{n / statistics.median(walls[name]):,.0f} lines/s; "
            f"enqueue step {n / statistics.median(steps[name]):,.0f}/s; CPU s a run: "
            f"enqueue.py {statistics.median(c for c, _ in cpus[name]):.2f}, "
            f"Redis {statistics.median(r for _, r in cpus[name]):.2f}, "
            f"both {statistics.median(c + r for c, r in cpus[name]):.2f}"
        )
    wall_ratio = statistics.median(walls["baseline"]) / statistics.median(walls["this"])
    step_ratio = statistics.median(steps["baseline"]) / statistics.median(steps["this"])
    both = {name: statistics.median(c + r for c, r in cpus[name]) for name in sides}
    print(
        f"this / baseline: end to end {wall_ratio:.2f}x, enqueue step {step_ratio:.2f}x, "
        f"CPU (enqueue.py + Redis) {both['this'] / both['baseline']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
