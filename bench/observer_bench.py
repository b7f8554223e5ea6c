"""What watching a run costs a worker: the events of one line through every listener a worker
has with ``--metrics-port`` (per-deployment stats, Prometheus, the throughput line) against the
same events through the no-op observer, and against what a line already costs (building its
success record and its JSON, as the worker does for every line).

    python bench/observer_bench.py [--lines 20000]

Prints microseconds per line for each and the ratios; nothing here needs Redis or a network
(the stats flush, one pipeline every 2 s per worker, is not on the line's path).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import orjson
from prometheus_client import CollectorRegistry

from jobs.logs import Throughput
from jobs.metrics import MetricsObserver
from jobs.payload import LinePayload
from jobs.records import success_record
from jobs.stats import StatsObserver
from providers.events import NO_OBSERVER, LineContext, Observer, Observers, current_line
from providers.types import RankedDocument, RerankResponse

DEPLOYMENT = "my-reranker#0"


def one_line(observer: Observer, record: dict[str, object]) -> None:
    """The events of a line that took one retry: what the dispatcher, gate and worker report."""
    observer.line_started()
    observer.gate_wait(DEPLOYMENT, 0.05)
    observer.request(DEPLOYMENT, 429, 0.08)
    observer.cooldown(DEPLOYMENT, 1.0)
    observer.retry(DEPLOYMENT)
    observer.request(DEPLOYMENT, 200, 0.21)
    observer.line_finished("succeeded", record)
    observer.line_ended()


def per_line_us(run: Callable[[], object], lines: int) -> float:
    started = time.perf_counter()
    for _ in range(lines):
        run()
    return (time.perf_counter() - started) / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=20_000)
    lines = parser.parse_args().lines
    documents: list[str | dict[str, object]] = [f"document {n} about solar power" for n in range(100)]
    line: LinePayload = {
        "batch": "b", "line": 1, "id": "x", "model": DEPLOYMENT, "query": "solar power",
        "documents": documents,
    }  # fmt: skip
    response = RerankResponse(
        results=[RankedDocument(index=n, relevance_score=1 - n / 100) for n in range(100)],
        usage={"billed_units": {"search_units": 1}},
        deployment=DEPLOYMENT,
        attempts=2,
    )
    record = success_record(line, response, 0.3)
    watched = Observers([StatsObserver(0), MetricsObserver(CollectorRegistry()), Throughput()])
    current_line.set(LineContext(batch="b", line_id="x", job_id="b:x"))

    baseline = per_line_us(lambda: orjson.dumps(success_record(line, response, 0.3)), lines)
    silent = per_line_us(lambda: one_line(NO_OBSERVER, record), lines)
    observed = per_line_us(lambda: one_line(watched, record), lines)
    print(f"{lines} lines, 8 events each (a line with one 429 and a retry), 100 documents a line")
    print(f"  baseline: a line's success record + its JSON   {baseline:8.1f} us/line")
    print(f"  events, no observer                            {silent:8.1f} us/line")
    print(f"  events, stats + Prometheus + throughput        {observed:8.1f} us/line")
    print(f"  observers / baseline                           {observed / baseline:8.2f}x")
    print(f"  lines/s one core could watch                  {1e6 / observed:8.0f}")


if __name__ == "__main__":
    main()
