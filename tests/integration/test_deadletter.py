"""Dead letters and deferral end to end: enqueue.py -> real ``python worker.py --burst`` ->
the local Cohere wire server (tests/servers/cohere.py) -> ``batch.py retry-failed``.

Lines that fail for good end as failure records and in the batch's dead-letter hash (which
never expires); once the server is fixed, ``retry-failed`` (all, or by error code) queues them
again and a worker turns every one into a success, moving the counters from failed to
succeeded.  A line that meets a long ``Retry-After`` is handed back to arq instead of holding
a worker slot, and succeeds on a later try.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from jobs import keys
from tests.process_tools import RedisProbe, export_batch
from tests.servers.cohere import CohereServer
from tests.support import run_script, synthetic_lines, write_dataset
from tests.wire_server import Recorded, Reply, rate_limited

pytestmark = pytest.mark.integration

KEY = "deadletter-key"
MODEL = "cohere/rerank-v3.5"
BATCH = "dead"


class BreakableServer(CohereServer):
    """The Cohere wire server, answering ``broken[query]`` (a status) for those queries until fixed."""

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key)
        self.broken: dict[str, int] = {}
        self.arrivals: list[tuple[float, str]] = []

    def handle(self, record: Recorded) -> Reply:
        query = str(self.query_of(record.body))
        with self._lock:
            self.arrivals.append((time.monotonic(), query))
            status = self.broken.get(query)
        if status is not None:
            # 503s say "retry now" so the retries of a test run take no time
            headers = {"retry-after": "0"} if status == 503 else {}
            return status, headers, {"message": f"injected {status}"}
        return super().handle(record)

    def count(self, query: str) -> int:
        with self._lock:
            return sum(1 for _, q in self.arrivals if q == query)


@pytest.fixture
def server() -> Iterator[BreakableServer]:
    with BreakableServer(KEY) as running:
        yield running


def worker_env(redis_url: str, server: CohereServer, **overrides: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "COHERE_API_KEY": KEY,
        "COHERE_API_BASE": server.base_url,
        "RR_RETRY_ATTEMPTS": "2",
        "RR_JOB_TIMEOUT": "30",
        "RR_HTTP_TIMEOUT": "5",
        "RR_RETRY_MAX_SECONDS": "10",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **overrides,
    }


def lines(count: int) -> list[dict[str, Any]]:
    """Lines with unique queries (the line id is the last word), document 0 ranks first."""
    found = synthetic_lines(count, docs_per_line=4, model=MODEL)
    for line in found:
        line["query"] = f"{line['query']} {line['id']}"
    return found


def enqueue(env: dict[str, str], dataset: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_dataset(tmp_path / f"{BATCH}.jsonl", dataset)
    done = run_script("enqueue.py", str(path), "--batch", BATCH, "--no-progress", env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def drain(env: dict[str, str]) -> str:
    """One ``worker.py --burst --verbose`` until the queue is empty; its log."""
    done = run_script("worker.py", "--burst", "--verbose", env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def retry_failed(env: dict[str, str], *codes: str) -> int:
    args = [arg for code in codes for arg in ("--code", code)]
    done = run_script("batch.py", "retry-failed", BATCH, *args, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"(\d+) failed lines queued again", done.stdout)
    assert found, done.stdout
    return int(found.group(1))


def dead_letters(probe: RedisProbe) -> dict[str, dict[str, Any]]:
    raw = cast(dict[bytes, bytes], probe.client.hgetall(keys.batch_failed(BATCH)))
    return {job.decode(): json.loads(payload) for job, payload in raw.items()}


def job(line_id: str) -> str:
    return keys.job_id(BATCH, line_id)


def statuses(probe: RedisProbe, dataset: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    found = {}
    for line in dataset:
        record = probe.record(job(line["id"]))
        assert record is not None, f"no record for {line['id']}"
        found[line["id"]] = record
    return found


def test_failed_lines_are_dead_lettered_then_retried_to_success(
    server: BreakableServer, probe: RedisProbe, redis_url: str, tmp_path: Path
) -> None:
    dataset = lines(12)
    queries = {line["id"]: line["query"] for line in dataset}
    invalid, unavailable = ["q2", "q9"], ["q5"]
    for line_id in invalid:
        server.broken[queries[line_id]] = 400
    for line_id in unavailable:
        server.broken[queries[line_id]] = 503
    env = worker_env(redis_url, server)

    enqueue(env, dataset, tmp_path)
    drain(env)

    # every failed line: a failure record, counted once, and its payload in the dead-letter hash
    assert probe.counters(BATCH) == {"total": 12, "succeeded": 9, "failed": 3}
    records = statuses(probe, dataset)
    failed = {line_id: record for line_id, (status, record) in records.items() if status == "failed"}
    assert {line_id: record["error"]["code"] for line_id, record in failed.items()} == {
        "q2": "invalid_request",
        "q9": "invalid_request",
        "q5": "server_error",
    }
    assert failed["q5"]["error"]["status"] == 503
    assert server.count(queries["q5"]) == 2  # RR_RETRY_ATTEMPTS
    assert server.count(queries["q2"]) == 1  # a permanent error is not retried
    letters = dead_letters(probe)
    assert set(letters) == {job(i) for i in [*invalid, *unavailable]}
    for line_id in [*invalid, *unavailable]:
        payload = letters[job(line_id)]
        line = next(line for line in dataset if line["id"] == line_id)
        assert payload["batch"] == BATCH
        assert (payload["id"], payload["query"], payload["documents"]) == (
            line_id,
            line["query"],
            line["documents"],
        )
    assert cast(int, probe.client.pttl(keys.batch_failed(BATCH))) == -1  # never expires
    assert cast(int, probe.client.pttl(keys.batch(BATCH))) > 0  # unlike the batch's own bookkeeping

    # the provider recovers; first only the lines that failed with a server error
    server.broken.clear()
    assert retry_failed(env, "server_error") == 1
    assert probe.queued_jobs() == {job("q5")}
    drain(env)
    assert probe.counters(BATCH) == {"total": 12, "succeeded": 10, "failed": 2}
    assert probe.record(job("q5")) is not None
    status, record = cast(tuple[str, dict[str, Any]], probe.record(job("q5")))
    assert status == "succeeded"
    assert record["results"][0]["index"] == 0
    assert set(dead_letters(probe)) == {job(i) for i in invalid}
    assert server.count(queries["q2"]) == 1  # not queued by the filtered retry
    assert server.count(queries["q5"]) == 3

    # then everything else
    assert retry_failed(env) == 2
    drain(env)
    assert probe.counters(BATCH) == {"total": 12, "succeeded": 12, "failed": 0}
    assert {status for status, _ in statuses(probe, dataset).values()} == {"succeeded"}
    assert dead_letters(probe) == {}
    assert not probe.client.exists(keys.batch_failed(BATCH))
    assert Counter(q for _, q in server.arrivals) == Counter(
        {**{q: 1 for q in queries.values()}, queries["q5"]: 3, queries["q2"]: 2, queries["q9"]: 2}
    )
    # nothing left to retry, and the export agrees
    assert retry_failed(env) == 0
    results, errors, _ = export_batch(redis_url, BATCH, tmp_path)
    assert [r["id"] for r in results] == [line["id"] for line in dataset]
    assert errors == []


def test_a_long_retry_after_hands_the_line_back_to_arq(
    server: BreakableServer, probe: RedisProbe, redis_url: str, tmp_path: Path
) -> None:
    dataset = lines(3)
    throttled = dataset[1]
    server.fail_query(throttled["query"], rate_limited("8"))
    env = worker_env(redis_url, server, RR_DEFER_AFTER="2")

    enqueue(env, dataset, tmp_path)
    started = time.monotonic()
    log = drain(env)
    elapsed = time.monotonic() - started

    # the worker did not sit on the line for 8 s: arq got it back with a deferral
    throttled_job = job(throttled["id"])
    assert re.search(rf"↻ {re.escape(throttled_job)}:rerank_line retrying job in [78]\.\d\ds", log), log
    assert re.search(rf"→ {re.escape(throttled_job)}:rerank_line\(.*\) try=2", log), log
    status, record = cast(tuple[str, dict[str, Any]], probe.record(throttled_job))
    assert status == "succeeded"
    assert record["job_try"] >= 2
    assert record["attempts"] == 1  # this try went through at once
    assert probe.counters(BATCH) == {"total": 3, "succeeded": 3, "failed": 0}
    assert dead_letters(probe) == {}
    # the provider saw nothing for that deployment until its Retry-After was over
    times = [t for t, q in server.arrivals if q == throttled["query"]]
    assert len(times) == 2
    assert times[1] - times[0] >= 8.0 - 0.2
    assert elapsed < 30
