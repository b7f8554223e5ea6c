"""Two real ``python worker.py`` processes share one rate limit and one cool-down through Redis.

A model list (config.yaml) has one Cohere deployment at ``rpm: 600`` (10 requests/s) pointing
at a local Cohere-format server that records when every request arrives.  Together the two
workers (16 lines in flight each, far more than 10/s needs) must stay under the limit in every
2-second window and still use most of it; and after one 429 with ``Retry-After: 2``, neither
may send anything until the two seconds are over.  Bounds are generous: this checks
correctness, not speed, on a possibly busy machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.process_tools import RedisProbe, VerboseWorker, Workers, start_verbose_worker
from tests.servers.cohere import CohereServer
from tests.support import run_script, synthetic_lines, wait_until, write_dataset
from tests.wire_server import Recorded, Reply

pytestmark = pytest.mark.integration

KEY = "shared-limits-key"
RPM = 600
RATE = RPM / 60  # requests per second
WINDOW = 2.0
WINDOW_LIMIT = int(RATE * WINDOW) + 1 + 2
"""The gate admits at most one request per 100 ms plus one of burst (21 in any 2 s); requests
reach the server after a delay that varies (a worker's first ones also open connections,
about 50 ms here), which can move one or two more into a window of arrivals."""
CONFIG = f"""
model_list:
  - model_name: paced-reranker
    litellm_params:
      model: cohere/rerank-v3.5
      api_key: os.environ/COHERE_API_KEY
      api_base: os.environ/COHERE_API_BASE
      rpm: {RPM}
"""


@dataclass
class Arrival:
    at: float
    """time.monotonic() when the request reached the server."""
    query: str
    status: int = 0


class RecordingServer(CohereServer):
    """The Cohere wire server, noting every request's arrival time; the ``throttle_at``-th
    request (1-based) is answered 429 with ``Retry-After: retry_after``."""

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key)
        self.arrivals: list[Arrival] = []
        self.throttle_at: int | None = None
        self.retry_after = "2"
        self._arrival_lock = threading.Lock()

    def handle(self, record: Recorded) -> Reply:
        with self._arrival_lock:
            arrival = Arrival(time.monotonic(), str(self.query_of(record.body)))
            self.arrivals.append(arrival)
            throttle = len(self.arrivals) == self.throttle_at
        if throttle:
            arrival.status = 429
            return 429, {"retry-after": self.retry_after}, {"message": "too many requests"}
        status, headers, body = super().handle(record)
        arrival.status = status
        return status, headers, body

    def snapshot(self) -> list[Arrival]:
        with self._arrival_lock:
            return sorted(self.arrivals, key=lambda a: a.at)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer(KEY) as running:
        yield running


def run_two_workers(
    redis_url: str,
    server: RecordingServer,
    workers: Workers,
    probe: RedisProbe,
    tmp_path: Path,
    batch: str,
    count: int,
) -> tuple[list[VerboseWorker], list[dict[str, Any]]]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    env = {
        "REDIS_URL": redis_url,
        "COHERE_API_KEY": KEY,
        "COHERE_API_BASE": server.base_url,
        "RR_MAX_JOBS": "16",
        "RR_JOB_TIMEOUT": "60",
        "RR_HTTP_TIMEOUT": "10",
        "RR_RETRY_MAX_SECONDS": "20",
        "RR_SHUTDOWN_GRACE": "2",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    lines = synthetic_lines(count, docs_per_line=4, model="paced-reranker")
    for line in lines:
        line["query"] = f"{line['query']} {line['id']}"
    dataset = write_dataset(tmp_path / f"{batch}.jsonl", lines)
    done = run_script(
        "enqueue.py", str(dataset), "--batch", batch, "--config", str(config), "--no-progress",
        env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    pair = [start_verbose_worker(workers, env, "--config", str(config)) for _ in range(2)]

    def finished() -> bool:
        counters = probe.counters(batch)
        return counters["succeeded"] + counters["failed"] >= count

    try:
        wait_until(finished, 60, f"batch {batch} to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {probe.counters(batch)}\n{workers.logs()[-3000:]}") from exc
    assert probe.counters(batch) == {"total": count, "succeeded": count, "failed": 0}, workers.logs()[-3000:]
    for worker in pair:  # both took part: the limit really was shared
        assert worker.log().finished, f"a worker finished no line:\n{workers.logs()[-3000:]}"
    return pair, lines


def busiest_window(times: list[float], width: float) -> int:
    """The most arrivals in any half-open window [t, t + width) starting at an arrival."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + width))
    return best


def test_two_workers_together_keep_to_one_rate_limit(
    redis_url: str, server: RecordingServer, workers: Workers, probe: RedisProbe, tmp_path: Path
) -> None:
    count = 120
    run_two_workers(redis_url, server, workers, probe, tmp_path, "paced", count)

    arrivals = server.snapshot()
    assert len(arrivals) == count  # no retries: nothing was ever over the limit
    assert {a.status for a in arrivals} == {200}
    times = [a.at for a in arrivals]
    worst = busiest_window(times, WINDOW)
    assert worst <= WINDOW_LIMIT, f"{worst} requests in one {WINDOW:g}s window (limit {WINDOW_LIMIT})"
    span = times[-1] - times[0]
    rate = (count - 1) / span
    assert rate >= 0.8 * RATE, f"only {rate:.1f} requests/s of {RATE:g} allowed ({span:.1f}s)"
    # and over the whole run, beyond the one request of burst, not faster than the limit
    assert (count - 2) / span <= 1.05 * RATE, f"{(count - 2) / span:.2f} requests/s over {span:.1f}s"


def test_one_429_pauses_both_workers_for_its_retry_after(
    redis_url: str, server: RecordingServer, workers: Workers, probe: RedisProbe, tmp_path: Path
) -> None:
    count = 50
    server.throttle_at = 15
    server.retry_after = "2"
    run_two_workers(redis_url, server, workers, probe, tmp_path, "cooled", count)

    arrivals = server.snapshot()
    assert len(arrivals) == count + 1  # the throttled line went once more, and succeeded
    [throttled] = [a for a in arrivals if a.status == 429]
    after = [a.at - throttled.at for a in arrivals if a.at > throttled.at]
    # requests already past the gate when the 429 came may still land just after it; then
    # nothing from either worker until the Retry-After is over
    tolerance = 0.2
    early = [round(t, 3) for t in after if tolerance <= t < 2.0 - tolerance]
    assert early == [], f"requests {early}s after the 429 (Retry-After: 2)"
    assert sum(1 for t in after if t < tolerance) <= 2
    # then traffic resumes at the limit, and the throttled line itself is served again
    resumed = [t for t in after if t >= 2.0 - tolerance]
    assert resumed and resumed[0] < 2.0 + 1.0, f"traffic resumed {resumed[:1]}s after the 429"
    again = [a.at - throttled.at for a in arrivals if a.query == throttled.query and a is not throttled]
    assert len(again) == 1 and again[0] >= 2.0 - tolerance
    resumed_times = [throttled.at + t for t in resumed]
    assert busiest_window(resumed_times, WINDOW) <= WINDOW_LIMIT
