"""The measured runs of ``bench/perf.py``: rerank-runner's workers, two anchors (plain arq +
httpx workers, a LiteLLM ``arerank`` loop in its own virtual environment) and the enqueue paths.

Every throughput run is measured over the same steady-state window: from the moment 10% of the
lines are answered to the moment 90% are (wall seconds, CPU seconds of the measured processes
from ``/proc/PID/stat``, lines); Redis commands are ``INFO commandstats`` deltas over the whole
run (commands run inside Lua scripts included, as Redis counts them), minus the bench's own polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import redis as sync_redis
from arq.connections import RedisSettings, create_pool

from bench import plain_arq
from bench.ratelimit_bench import (
    ROOT,
    BenchError,
    Child,
    Children,
    Deployment,
    Mock,
    RunningMock,
    clean_env,
    flush,
    run,
    start_mock,
    write_config,
)
from jobs import keys

__all__ = [
    "DOC_CHARS",
    "Bench",
    "Throughput",
    "commands",
    "completed",
    "cpu_seconds",
    "ensure_litellm_venv",
    "litellm_run",
    "plain_run",
    "rr_run",
    "write_rerank_dataset",
]

MODEL = "bench-rerank"
DOC_CHARS = 200
POLL_SECONDS = 0.02
COMPLETED = re.compile(r"worker \S+ stopped: (\d+) lines completed")
WORDS = ("solar", "wind", "river", "mountain", "coffee", "python", "redis", "ranking", "query", "search")


@dataclass(frozen=True)
class Throughput:
    lines_per_s: float
    cpu_ms_per_line: float
    commands_per_line: float | None = None
    scripts_per_line: float | None = None
    by_command: dict[str, float] = dataclasses.field(default_factory=dict)
    """Calls per line of each command Redis ran (``INFO commandstats``; inside scripts too)."""
    shared_cpu_ms_per_line: dict[str, float] = dataclasses.field(default_factory=dict)
    """CPU per line of the processes the workers share (``mock``, ``redis``), same window."""
    worker_lines: tuple[int, ...] = ()
    """Lines each worker process completed over the whole run (its "stopped" log line)."""

    def per_worker_lines_per_s(self) -> tuple[float, ...]:
        """The window's lines/s split by each worker's share of the lines it completed."""
        total = sum(self.worker_lines)
        return tuple(self.lines_per_s * n / total for n in self.worker_lines) if total else ()


@dataclass
class Bench:
    """What every run shares: Redis, the mocks by latency, the dataset, the work dir."""

    url: str
    children: Children
    work: Path
    dataset: Path
    lines: int
    mocks: dict[int, RunningMock] = dataclasses.field(default_factory=dict)
    log: Callable[[str], None] = print
    redis_pid: int | None = None
    """redis-server's pid, to measure its CPU per line (None: not measured)."""
    mock_scores: str = "position"
    """The mock's ``--scores``: ``position`` costs it almost nothing per request."""

    def mock(self, latency_ms: int) -> RunningMock:
        if latency_ms not in self.mocks:
            mock = Mock(latency_ms=latency_ms, scores=self.mock_scores)
            deployment = Deployment(mock, None, f"{latency_ms} ms")
            self.mocks[latency_ms] = start_mock(self.children, f"mock-{latency_ms}ms", deployment, 1)
        return self.mocks[latency_ms]


def write_rerank_dataset(path: Path, lines: int, docs: int, seed: int) -> Path:
    """``lines`` lines of ``docs`` documents of ``DOC_CHARS`` characters each."""
    rng = random.Random(seed)

    def text(chars: int) -> str:
        out = ""
        while len(out) < chars:
            out += rng.choice(WORDS) + " "
        return out[:chars]

    with path.open("wb") as handle:
        for n in range(lines):
            line = {"id": f"q{n}", "query": text(30), "documents": [text(DOC_CHARS) for _ in range(docs)]}
            handle.write(orjson.dumps({**line, "model": MODEL}) + b"\n")
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def commands(client: sync_redis.Redis) -> dict[str, int]:
    """Calls of every command Redis ran since the last CONFIG RESETSTAT, by lower-case name
    (``INFO`` and the reset itself left out); script runs are ``evalsha`` and ``eval``."""
    stats = cast(dict[str, dict[str, int]], client.info("commandstats"))
    named = {key.removeprefix("cmdstat_"): v["calls"] for key, v in stats.items()}
    return {name: calls for name, calls in named.items() if name not in ("info", "config|resetstat")}


def _measure(
    bench: Bench,
    done: Callable[[sync_redis.Redis], int],
    poll: str,
    workers: list[Child],
    timeout: float,
    shared: dict[str, int] | None = None,
) -> Throughput:
    """Poll ``done`` (one ``poll`` command per poll) until every line is answered; the window
    figures, and the commands per line without the polls.  ``shared`` names other processes
    (by pid) whose CPU per line is measured over the same window."""
    client = sync_redis.Redis.from_url(bench.url)
    pids = {"workers": [w.process.pid for w in workers], **{k: [v] for k, v in (shared or {}).items()}}
    marks: list[tuple[int, float, dict[str, float]]] = []
    polls = 0
    deadline = time.monotonic() + timeout
    try:
        while (count := done(client)) < bench.lines:
            polls += 1
            if len(marks) < 2 and count >= bench.lines * (0.1, 0.9)[len(marks)]:
                cpu = {name: sum(map(cpu_seconds, group)) for name, group in pids.items()}
                marks.append((count, time.monotonic(), cpu))
            for worker in workers:
                if worker.process.poll() is not None:
                    raise BenchError(f"{worker.name} exited {worker.process.returncode}:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"{count} of {bench.lines} lines answered after {timeout:g}s")
            time.sleep(POLL_SECONDS)
        calls = commands(client)
    finally:
        client.close()
    if len(marks) < 2:
        raise BenchError("the run was too short to measure; use more --lines")
    (n0, t0, c0), (n1, t1, c1) = marks
    calls[poll] -= polls + 1
    by_command = {name: n / bench.lines for name, n in calls.items() if n > 0}
    scripts = by_command.get("evalsha", 0.0) + by_command.get("eval", 0.0)
    cpu_ms = {name: 1000 * (c1[name] - c0[name]) / (n1 - n0) for name in pids}
    return Throughput(
        (n1 - n0) / (t1 - t0),
        cpu_ms.pop("workers"),
        sum(by_command.values()),
        scripts,
        by_command,
        shared_cpu_ms_per_line=cpu_ms,
    )


def completed(worker: Child) -> int | None:
    """The lines a stopped worker completed: the count in its last "stopped" log line."""
    found = COMPLETED.findall(worker.tail(20_000))
    return int(found[-1]) if found else None


def _stop(bench: Bench, workers: list[Child], *, wrapped: bool = False) -> None:
    """Stop the workers; a wrapped worker (a profiler's child) is stopped itself, so that the
    profiler sees it exit and writes its samples."""
    for worker in workers:
        if wrapped and worker.process.poll() is None:
            pid = worker.process.pid
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                os.kill(int(child), signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(60)
        bench.children.stop(worker)


def rr_run(
    bench: Bench,
    latency_ms: int,
    workers: int,
    env: dict[str, str],
    *,
    rpm: int | None = None,
    wrap: tuple[str, ...] = (),
    root: Path = ROOT,
) -> Throughput:
    """``enqueue.py`` then ``workers`` ``worker.py`` processes (the default settings plus ``env``);
    ``wrap`` runs each under another command (a profiler; its CPU figures are then meaningless);
    ``root``: the checkout whose ``worker.py`` (and code) runs, e.g. a baseline copy of ``main``."""
    mock = bench.mock(latency_ms)
    config = bench.work / "config.yaml"
    limited = dataclasses.replace(mock, deployment=dataclasses.replace(mock.deployment, rpm=rpm))
    write_config(config, MODEL, [limited])
    flush(bench.url)
    batch = f"perf-{latency_ms}-{workers}"
    enqueue = [sys.executable, "enqueue.py", str(bench.dataset), "--config", str(config)]
    run([*enqueue, "--redis-url", bench.url, "--batch", batch, "--no-progress"], clean_env({}))
    client = sync_redis.Redis.from_url(bench.url)
    client.config_resetstat()
    client.close()
    worker_env = clean_env({"REDIS_URL": bench.url, "RR_CONFIG": str(config), **env})
    argv = [*wrap, sys.executable, str(root / "worker.py")]
    started = [bench.children.start(f"worker{n}", argv, worker_env) for n in range(workers)]

    def done(client: sync_redis.Redis) -> int:
        counts = cast(list[bytes | None], client.hmget(keys.batch(batch), ["succeeded", "failed"]))
        if counts[1]:
            raise BenchError(f"{int(counts[1])} lines failed; see {started[0].log}")
        return sum(int(v or 0) for v in counts)

    shared = {"mock": mock.child.process.pid}
    if bench.redis_pid is not None:
        shared["redis"] = bench.redis_pid
    try:
        measured = _measure(bench, done, "hmget", started, timeout=60 + bench.lines / 20, shared=shared)
    finally:
        _stop(bench, started, wrapped=bool(wrap))
    counts = [completed(worker) for worker in started]
    if None in counts:
        return measured
    return dataclasses.replace(measured, worker_lines=tuple(n for n in counts if n is not None))


def plain_run(bench: Bench, latency_ms: int, workers: int, max_jobs: int) -> Throughput:
    """The same lines through ``workers`` plain arq + httpx worker processes."""
    mock = bench.mock(latency_ms)
    flush(bench.url)
    lines = [orjson.loads(raw) for raw in bench.dataset.read_bytes().splitlines()]

    async def enqueue() -> None:
        pool = await create_pool(RedisSettings.from_dsn(bench.url))
        try:
            await plain_arq.enqueue(pool, lines)
        finally:
            await pool.aclose()

    asyncio.run(enqueue())
    client = sync_redis.Redis.from_url(bench.url)
    client.config_resetstat()
    client.close()
    env = clean_env(
        {"PLAIN_REDIS_URL": bench.url, "PLAIN_API_BASE": mock.base_url, "PLAIN_MAX_JOBS": str(max_jobs)}
    )
    argv = [sys.executable, "-m", "arq", "bench.plain_arq.WorkerSettings"]
    started = [bench.children.start(f"plain{n}", argv, env) for n in range(workers)]

    def done(client: sync_redis.Redis) -> int:
        return bench.lines - cast(int, client.zcard(plain_arq.QUEUE))

    try:
        return _measure(bench, done, "zcard", started, timeout=60 + bench.lines / 20)
    finally:
        _stop(bench, started)


def ensure_litellm_venv(venv: Path, spec: str, log: Callable[[str], None]) -> Path:
    """The Python of ``venv``, created with LiteLLM installed from PyPI when it is missing."""
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        log(f"setting up {venv} (pip install {spec}; a few minutes the first time)")
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec], check=True
        )
        (venv / ".installed").touch()
    return python


def litellm_run(bench: Bench, python: Path, latency_ms: int, in_flight: int) -> Throughput:
    """The LiteLLM loop over the same lines; its CPU per call is the loop process's own."""
    mock = bench.mock(latency_ms)
    argv = [str(python), str(ROOT / "bench" / "litellm_loop.py"), str(bench.dataset)]
    argv += ["--api-base", mock.base_url, "--in-flight", str(in_flight)]
    env = clean_env({"LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    figures: dict[str, Any] = orjson.loads(run(argv, env, timeout=120 + bench.lines / 10).splitlines()[-1])
    if figures["errors"]:
        raise BenchError(f"the LiteLLM loop had {figures['errors']} errors: {figures['first_errors']}")
    return Throughput(figures["calls"] / figures["seconds"], 1000 * figures["cpu_seconds"] / figures["calls"])
