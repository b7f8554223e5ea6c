"""Workers against a Redis that misbehaves, and workers that die: real ``python worker.py``
processes, real redis-server, the Cohere wire server.

* a storm of ``CLIENT KILL TYPE normal`` during a batch on two workers;
* a Redis restart (AOF, same port) during a batch on two workers;
* ``kill -9`` of a busy worker: its lines run again within the heartbeat bound (default
  settings), not after arq's ``RR_JOB_TIMEOUT + 10 s``; ``batch.py workers`` sees it stale;
* a worker whose lines take many heartbeat TTLs is never run twice;
* a worker whose Redis is gone for good exits 4 (Redis unavailable) after ``RR_REDIS_OUTAGE_SECONDS``.

Every test checks that each id ended exactly once, with no ``internal`` record and nothing
``lost``; figures (drops, restarts, recovery seconds) are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis as sync_redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from jobs.connection import EXIT_REDIS_UNAVAILABLE
from jobs.embedded import find_redis_server
from jobs.settings import RunnerSettings
from tests.integration.test_workers import KEY, assert_exact, cohere_lines, enqueue
from tests.process_tools import (
    RedisProbe,
    SlowCohereServer,
    Workers,
    export_batch,
    start_verbose_worker,
    wait_for_finished,
)
from tests.support import run_script, wait_until, write_dataset

pytestmark = pytest.mark.integration


def fault_env(redis_url: str, server: SlowCohereServer, **overrides: str) -> dict[str, str]:
    env = {
        "REDIS_URL": redis_url,
        "COHERE_API_KEY": KEY,
        "COHERE_API_BASE": server.base_url,
        "RR_HTTP_TIMEOUT": "10",
        "RR_RETRY_MAX_SECONDS": "10",
        "RR_MAX_JOBS": "8",
        "RR_HEARTBEAT_SECONDS": "1",
        "RR_WORKER_TTL_SECONDS": "3",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    env.update(overrides)
    return env


def patient_probe(url: str) -> RedisProbe:
    """A probe whose connection survives the test's own kills and restarts."""
    probe = RedisProbe(url)
    probe.client.close()
    probe.client = sync_redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 20),
        retry_on_error=[RedisConnectionError],
    )
    return probe


@pytest.fixture
def server() -> Iterator[SlowCohereServer]:
    with SlowCohereServer(KEY, delay=0.2) as running:
        yield running


def assert_once_each(
    redis_url: str, batch: str, lines: list[dict[str, Any]], server: SlowCohereServer, tmp_path: Path
) -> dict[str, Any]:
    """Every id exactly once and succeeded (no ``internal``, nothing ``lost``); returns figures."""
    results, errors, _ = export_batch(redis_url, batch, tmp_path)
    assert errors == [], errors[:5]
    assert [r["id"] for r in results] == [line["id"] for line in lines]
    assert [r["id"] for r in results if r["results"][0]["index"] != 0] == []
    asked = server.queries()
    assert set(asked) == {line["query"] for line in lines}  # every line reached the provider
    return {
        "lines": len(lines),
        "provider_requests": asked.total(),
        "asked_twice": sum(1 for n in asked.values() if n > 1),
        "max_job_try": max(r["job_try"] for r in results),
    }


def assert_alive(workers: Workers) -> None:
    exited = [p.returncode for p in workers.processes if p.poll() is not None]
    assert exited == [], f"workers exited with {exited}:\n{workers.logs()[-4000:]}"


def test_connection_kill_storm_two_workers(
    server: SlowCohereServer, redis_url: str, workers: Workers, tmp_path: Path
) -> None:
    lines = cohere_lines(400)
    path = write_dataset(tmp_path / "storm.jsonl", lines)
    probe = patient_probe(redis_url)
    killer = sync_redis.Redis.from_url(redis_url)
    env = fault_env(redis_url, server)
    assert enqueue(redis_url, path, "storm") == (400, 0, 0, 0)
    for _ in range(2):
        start_verbose_worker(workers, env)
    wait_until(lambda: probe.done("storm") >= 20, 60, "the batch to be under way")

    storms, dropped = 0, 0
    started = time.monotonic()
    while probe.done("storm") < 400 and time.monotonic() - started < 180:
        dropped += int(cast(int, killer.client_kill_filter(_type="normal")))  # every client but this one
        storms += 1
        time.sleep(0.25)
    killer.close()
    assert storms >= 10, "the batch finished before the storm got going"
    assert_exact(wait_for_finished(redis_url, probe, "storm", 120, workers), 400)
    assert_alive(workers)
    figures = assert_once_each(redis_url, "storm", lines, server, tmp_path)
    figures["redis_errors_ridden_out"] = workers.logs().count("Redis failed")
    print(f"\nconnection-kill storm: {storms} CLIENT KILL rounds, {dropped} connections dropped, {figures}")
    probe.close()


class RestartableRedis:
    """A redis-server with AOF on a fixed port that the test stops and starts again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            find_redis_server(), "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.directory), "--save", "", "--appendonly", "yes",
            "--appendfsync", "always", "--logfile", "redis.log",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = sync_redis.Redis(port=self.port)
        wait_until(lambda: self._pings(client), 30, "redis-server to start")
        client.close()

    @staticmethod
    def _pings(client: sync_redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except sync_redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # writes the AOF, then exits
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[RestartableRedis]:
    directory = tmp_path / "restartable"
    directory.mkdir()
    redis_server = RestartableRedis(directory)
    redis_server.start()
    yield redis_server
    redis_server.stop()


def test_redis_restart_under_load_two_workers(
    server: SlowCohereServer, restartable: RestartableRedis, workers: Workers, tmp_path: Path
) -> None:
    url = restartable.url
    lines = cohere_lines(300)
    path = write_dataset(tmp_path / "restart.jsonl", lines)
    env = fault_env(url, server)
    assert enqueue(url, path, "restart") == (300, 0, 0, 0)
    for _ in range(2):
        start_verbose_worker(workers, env)
    probe = patient_probe(url)
    restarts, downtime = 0, 2.0
    for threshold in (40, 140):
        wait_until(lambda t=threshold: probe.done("restart") >= t, 90, f"{threshold} lines done")  # type: ignore[misc]
        restartable.stop()
        time.sleep(downtime)  # workers are busy, in mid-request and between calls, while Redis is away
        restartable.start()
        restarts += 1
    assert_exact(wait_for_finished(url, probe, "restart", 180, workers), 300)
    assert_alive(workers)
    figures = assert_once_each(url, "restart", lines, server, tmp_path)
    figures["redis_errors_ridden_out"] = workers.logs().count("Redis failed")
    print(f"\nredis restart: {restarts} restarts of {downtime:g}s (AOF), {figures}")
    probe.close()


def workers_listing(redis_url: str) -> list[dict[str, Any]]:
    done = run_script("batch.py", "--redis-url", redis_url, "workers", "--json", env={}, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    listed: list[dict[str, Any]] = json.loads(done.stdout)
    return listed


def test_killed_worker_lines_rerun_within_the_heartbeat_bound(
    server: SlowCohereServer, redis_url: str, workers: Workers, tmp_path: Path
) -> None:
    """Default heartbeat settings and the default job timeout (arq alone: 310 s)."""
    bound = RunnerSettings().recovery_seconds
    lines = cohere_lines(60)
    path = write_dataset(tmp_path / "kill9.jsonl", lines)
    probe = patient_probe(redis_url)
    env = fault_env(redis_url, server, RR_MAX_JOBS="4")
    for name in ("RR_HEARTBEAT_SECONDS", "RR_WORKER_TTL_SECONDS"):
        del env[name]
    server.delay = 3.0
    victim = start_verbose_worker(workers, env)
    survivor = start_verbose_worker(workers, env)
    wait_until(lambda: len(workers_listing(redis_url)) == 2, 60, "both workers to register")
    assert enqueue(redis_url, path, "kill9") == (60, 0, 0, 0)
    query_for = {f"kill9:{line['id']}": line["query"] for line in lines}

    def mid_request() -> bool:  # four lines held, each one's request waiting at the server
        held = victim.log().in_flight
        return len(held) == 4 and all(server.queries()[query_for[job]] for job in held)

    wait_until(mid_request, 60, "the victim to hold four lines mid-request")
    stranded = victim.log().in_flight
    victim.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert victim.process.wait(timeout=10) == -signal.SIGKILL
    assert all(probe.record(job) is None for job in stranded)

    listed = {w["worker_id"]: w for w in workers_listing(redis_url)}
    assert sorted(w["live"] for w in listed.values()) == [False, True] or all(
        w["live"] for w in listed.values()
    )  # stale once its heartbeat expires; until then still listed as live
    assert sum(w["in_flight"] for w in listed.values()) >= len(stranded)

    restarted: dict[str, float] = {}

    def all_restarted() -> bool:
        log = survivor.log()
        for job in stranded:
            if job not in restarted and max(log.started.get(job, [0])) >= 2:
                restarted[job] = time.monotonic() - killed_at
        return set(restarted) == stranded

    wait_until(all_restarted, bound + 60, "the killed worker's lines to start again")
    recovery = max(restarted.values())
    stale = [w for w in workers_listing(redis_url) if not w["live"]]
    assert len(stale) == 1 and stale[0]["in_flight"] == 0  # reaped: nothing left leased to it

    server.delay = 0.05
    assert_exact(wait_for_finished(redis_url, probe, "kill9", 120, workers), 60)
    figures = assert_once_each(redis_url, "kill9", lines, server, tmp_path)
    assert recovery < bound + 30, f"recovery took {recovery:.1f}s; documented bound {bound:g}s"
    asked = server.queries()
    assert all(asked[query_for[job]] == 2 for job in stranded)  # the killed run and the re-run
    print(
        f"\nkill -9: {len(stranded)} stranded lines started again after {recovery:.1f}s "
        f"(documented bound {bound:g}s; arq alone: {RunnerSettings().job_timeout + 10:g}s), {figures}"
    )
    probe.close()


def test_slow_live_worker_is_never_run_twice(
    server: SlowCohereServer, redis_url: str, workers: Workers, tmp_path: Path
) -> None:
    ttl = 3.0
    lines = cohere_lines(6)
    path = write_dataset(tmp_path / "slowpoke.jsonl", lines)
    env = fault_env(redis_url, server, RR_MAX_JOBS="3", RR_HTTP_TIMEOUT="30", RR_JOB_TIMEOUT="60")
    server.delay = 5 * ttl  # each line takes five heartbeat TTLs
    probe = patient_probe(redis_url)
    assert enqueue(redis_url, path, "slowpoke") == (6, 0, 0, 0)
    pair = [start_verbose_worker(workers, env) for _ in range(2)]
    assert_exact(wait_for_finished(redis_url, probe, "slowpoke", 120, workers), 6)
    assert server.queries() == Counter(line["query"] for line in lines)  # each asked exactly once
    starts = Counter(job for w in pair for job, tries in w.log().started.items() for _ in tries)
    assert starts == Counter(f"slowpoke:{line['id']}" for line in lines)
    figures = assert_once_each(redis_url, "slowpoke", lines, server, tmp_path)
    assert figures["max_job_try"] == 1
    assert "stopped beating" not in workers.logs()
    print(f"\nslow live worker: lines of {server.delay:g}s with a {ttl:g}s TTL, {figures}")
    probe.close()


def test_a_worker_gives_up_after_the_outage_bound_with_one_clear_line(
    server: SlowCohereServer, restartable: RestartableRedis, workers: Workers
) -> None:
    outage = 4.0
    worker = start_verbose_worker(
        workers, fault_env(restartable.url, server, RR_REDIS_OUTAGE_SECONDS=str(outage))
    )
    wait_until(lambda: len(workers_listing(restartable.url)) == 1, 60, "the worker to register")
    restartable.stop()
    stopped = time.monotonic()
    assert worker.process.wait(timeout=outage + 60) == EXIT_REDIS_UNAVAILABLE
    waited = time.monotonic() - stopped
    log = worker.log_path.read_text()
    assert f"Redis unreachable for {outage:g}s" in log and "exiting" in log
    assert waited >= outage  # it did wait for Redis first
    print(
        f"\nredis gone for good: the worker exited {EXIT_REDIS_UNAVAILABLE} after {waited:.1f}s "
        f"(RR_REDIS_OUTAGE_SECONDS={outage:g})"
    )
