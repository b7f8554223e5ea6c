"""The mock provider's own CPU per request, against a baseline copy of it, in alternating rounds.

    ./rr python -m bench.mock_cost --baseline /tmp/mock_provider_main.py   # a copy from main
    ./rr python -m bench.mock_cost --baseline OLD.py --requests 3000 --rounds 3
    ./rr python -m bench.mock_cost --baseline OLD.py --scores position   # bench.perf's default

Each round starts the baseline mock and this one (``bench/mock_provider.py``) in turn, 0 ms
latency, and sends each the same requests (lines of ``bench.perf``: 20 documents of 200
characters) from one aiohttp client with ``--in-flight`` requests in flight; the figure is the
mock process's user + system CPU (``/proc/PID/stat``) per request.  The ratio (this / baseline)
is taken per round; its median is printed.  A mock that costs less leaves more of a shared
machine to the workers it serves, which is what ``bench.perf``'s scale-out rows depend on.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from bench.perf_runs import cpu_seconds, write_rerank_dataset
from bench.ratelimit_bench import API_KEY, MOCK, BenchError, Children, clean_env

__all__ = ["drive", "main", "mock_cpu_per_request"]


async def drive(base_url: str, bodies: list[bytes], in_flight: int) -> None:
    """POST every body to ``/v2/rerank``, ``in_flight`` at a time; any answer but 200 is an error."""
    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    queue = iter(bodies)
    async with aiohttp.ClientSession(base_url) as session:

        async def lane() -> None:
            for body in queue:
                async with session.post("/v2/rerank", data=body, headers=headers) as reply:
                    answer = await reply.read()
                    if reply.status != 200 or not orjson.loads(answer)["results"]:
                        raise BenchError(f"the mock answered {reply.status}: {answer[:200]!r}")

        await asyncio.gather(*(lane() for _ in range(in_flight)))


def mock_cpu_per_request(
    children: Children, script: Path, bodies: list[bytes], in_flight: int, extra: tuple[str, ...] = ()
) -> float:
    """Milliseconds of the mock's CPU per request (its start-up and a warm-up excluded)."""
    argv = [sys.executable, str(script), "--port", "0", "--api-key", API_KEY, *extra]
    child = children.start(f"mock-{script.stem}-{time.monotonic_ns()}", argv, clean_env({}))
    try:
        deadline = time.monotonic() + 15
        while not (found := re.search(r"listening on (http://\S+)", child.tail())):
            if child.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{script} did not start:\n{child.tail()}")
            time.sleep(0.05)
        asyncio.run(drive(found[1], bodies[:200], in_flight))
        before = cpu_seconds(child.process.pid)
        asyncio.run(drive(found[1], bodies, in_flight))
        return 1000 * (cpu_seconds(child.process.pid) - before) / len(bodies)
    finally:
        children.stop(child)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, required=True, help="another mock_provider.py to compare")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--scores", choices=("words", "position"), default="words",
                        help="this mock's --scores (the baseline runs with its own defaults)")  # fmt: skip
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mock-cost-") as tmp:
        work = Path(tmp)
        lines = (
            write_rerank_dataset(work / "lines.jsonl", args.requests, 20, seed=3).read_bytes().splitlines()
        )
        bodies = [orjson.dumps({**orjson.loads(line), "model": "rerank-v3.5"}) for line in lines]
        children = Children(work)
        ratios = []
        try:
            for n in range(args.rounds):
                order = [args.baseline.resolve(), MOCK][:: 1 if n % 2 == 0 else -1]
                cost = {
                    script: mock_cpu_per_request(
                        children,
                        script,
                        bodies,
                        args.in_flight,
                        ("--scores", args.scores) if script == MOCK else (),
                    )
                    for script in order
                }
                ratios.append(cost[MOCK] / cost[args.baseline.resolve()])
                print(f"round {n + 1}: baseline {cost[order[0] if order[0] != MOCK else order[1]]:.3f} ms, "
                      f"this {cost[MOCK]:.3f} ms per request: {ratios[-1]:.2f}x", flush=True)  # fmt: skip
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            children.stop_all()
    print(f"mock CPU per request, this / baseline, median of {args.rounds}: {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
