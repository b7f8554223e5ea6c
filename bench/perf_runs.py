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
WORDS = ("solar", "wind", "river", "mountain", "coffee", "python", "redis", "ranking", "query", "search")


@dataclass(frozen=True)
class Throughput:
    lines_per_s: float
    cpu_ms_per_line: float
    commands_per_line: float | None = None
    scripts_per_line: float | None = None


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

    def mock(self, latency_ms: int) -> RunningMock:
        if latency_ms not in self.mocks:
            deployment = Deployment(Mock(latency_ms=latency_ms), None, f"{latency_ms} ms")
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


def commands(client: sync_redis.Redis) -> tuple[int, int]:
    """(every command Redis ran except INFO, Lua script runs) since the last CONFIG RESETSTAT."""
    stats = cast(dict[str, dict[str, int]], client.info("commandstats"))
    total = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat"))
    scripts = sum(stats.get(f"cmdstat_{n}", {}).get("calls", 0) for n in ("evalsha", "eval"))
    return total, scripts


def _measure(
    bench: Bench, done: Callable[[sync_redis.Redis], int], workers: list[Child], timeout: float
) -> Throughput:
    """Poll ``done`` (one command per poll) until every line is answered; the window figures."""
    client = sync_redis.Redis.from_url(bench.url)
    marks: list[tuple[int, float, float]] = []
    polls = 0
    deadline = time.monotonic() + timeout
    try:
        while (count := done(client)) < bench.lines:
            polls += 1
            if len(marks) < 2 and count >= bench.lines * (0.1, 0.9)[len(marks)]:
                marks.append((count, time.monotonic(), sum(cpu_seconds(w.process.pid) for w in workers)))
            for worker in workers:
                if worker.process.poll() is not None:
                    raise BenchError(f"{worker.name} exited {worker.process.returncode}:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"{count} of {bench.lines} lines answered after {timeout:g}s")
            time.sleep(POLL_SECONDS)
        total, scripts = commands(client)
    finally:
        client.close()
    if len(marks) < 2:
        raise BenchError("the run was too short to measure; use more --lines")
    (n0, t0, c0), (n1, t1, c1) = marks
    own = polls + 1
    per_line = 1 / bench.lines
    return Throughput(
        (n1 - n0) / (t1 - t0), 1000 * (c1 - c0) / (n1 - n0), (total - own) * per_line, scripts * per_line
    )


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

    try:
        return _measure(bench, done, started, timeout=60 + bench.lines / 20)
    finally:
        _stop(bench, started, wrapped=bool(wrap))


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
        return _measure(bench, done, started, timeout=60 + bench.lines / 20)
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
