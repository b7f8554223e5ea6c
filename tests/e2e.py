"""Run a small batch end to end: ``enqueue.py`` then a real ``worker.py --burst`` process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support import ROOT, env_with, read_jsonl, run_script, write_dataset


def run_batch(
    redis_url: str,
    lines: Sequence[Mapping[str, Any]],
    tmp_path: Path,
    env: Mapping[str, str],
    *,
    batch: str = "e2e",
    extra_args: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Enqueue ``lines``, drain the queue with one burst worker, export; (results, errors)."""
    dataset = write_dataset(tmp_path / f"{batch}.jsonl", lines)
    full_env = {"REDIS_URL": redis_url, **env}
    enqueued = run_script(
        "enqueue.py", str(dataset), "--batch", batch, "--no-progress", *extra_args, env=full_env
    )
    assert enqueued.returncode == 0, enqueued.stderr
    worker = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--burst", *_config_args(extra_args)],
        env=env_with(full_env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stderr
    results, errors = tmp_path / f"{batch}.out.jsonl", tmp_path / f"{batch}.err.jsonl"
    exported = run_script(
        "batch.py", "results", batch, "--output", str(results), "--errors", str(errors), env=full_env
    )
    assert exported.returncode == 0, exported.stderr
    return read_jsonl(results), read_jsonl(errors)


def _config_args(args: Sequence[str]) -> list[str]:
    """Pass ``--config PATH`` on to the worker when enqueue got one."""
    items = list(args)
    if "--config" in items:
        at = items.index("--config")
        return items[at : at + 2]
    return []
