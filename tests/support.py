"""Helpers shared by the tests: datasets, processes, result files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from jobs.identity import RunIdentity
from jobs.payload import LinePayload
from providers.types import Document

ROOT = Path(__file__).resolve().parent.parent

WORDS = [
    "solar",
    "wind",
    "river",
    "mountain",
    "coffee",
    "python",
    "redis",
    "ranking",
    "query",
    "search",
    "index",
    "vector",
    "lexical",
    "volcano",
    "marathon",
    "engine",
    "battery",
    "network",
    "cloud",
    "garden",
    "music",
    "planet",
    "ocean",
    "forest",
    "city",
]


def write_dataset(path: Path, lines: Iterable[Mapping[str, Any]]) -> Path:
    with path.open("w") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
    return path


def synthetic_lines(count: int, docs_per_line: int = 8, **extra: Any) -> list[dict[str, Any]]:
    """Lines whose first document shares the query's words, so rankings are checkable."""
    lines = []
    for n in range(count):
        a, b = WORDS[n % len(WORDS)], WORDS[(n * 7 + 3) % len(WORDS)]
        documents = [f"{a} {b} {a} notes"] + [
            f"filler text {WORDS[(n + k) % len(WORDS)]}zz number {k}" for k in range(1, docs_per_line)
        ]
        lines.append({"id": f"q{n}", "query": f"{a} {b}", "documents": documents, **extra})
    return lines


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def env_with(overrides: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RR_") and k != "REDIS_URL"}
    for name in ("COHERE_API_KEY", "CO_API_KEY", "COHERE_API_BASE"):
        env.pop(name, None)
    env.update(overrides)
    return env


def run_script(script: str, *args: str, env: Mapping[str, str], cwd: Path = ROOT,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        env=env_with(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_worker(env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            env=env_with(env),
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


RUN = RunIdentity("run-1", lines=1, lines_digest="l", default_model="local/bm25", models={})
"""The run every :func:`unit_line` belongs to."""


def unit_line(query: str = "q", documents: list[Document] | None = None) -> LinePayload:
    """A job payload for worker-side unit tests: batch ``b``, run ``run-1``, line 1, id ``x``."""
    return {
        "batch": "b",
        "line": 1,
        "id": "x",
        "model": "local/bm25",
        "run": RUN.digest,
        "query": query,
        "documents": documents or ["d"],
    }


def refused(
    path: Path, content: str, read: Callable[[Path], object], error: type[Exception], message: str
) -> None:
    """Write ``content`` to ``path``; reading it must raise ``error`` matching ``message``."""
    path.write_text(content)
    with pytest.raises(error, match=message):
        read(path)


async def command_calls(redis: Redis) -> dict[str, int]:
    """Calls per command since the last ``CONFIG RESETSTAT`` (``INFO``, ``CONFIG`` left out)."""
    stats = await redis.info("commandstats")
    named = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
    return {k: calls for k, calls in named.items() if k.split("|")[0] not in ("info", "config")}
