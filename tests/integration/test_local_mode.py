"""Local mode (no REDIS_URL) as an operator uses it: a run killed or interrupted, a second command
against the same state dir while the run works, a resumed run, failed lines retried locally.
Whether a server outlived its commands is read from /proc (tests/process_tools.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from jobs.embedded import EmbeddedRedis
from tests.e2e import default_batch
from tests.process_tools import (
    RedisProbe,
    SlowCohereServer,
    process_exists,
    processes_mentioning,
    reaping,
    run_watching_state,
)
from tests.support import ROOT, env_with, read_jsonl, run_script, synthetic_lines, wait_until, write_dataset

pytestmark = pytest.mark.integration

KEY = "local-mode-key"
MODEL = "cohere/rerank-v3.5"
LINES = 40


def server_info(state: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((state / "redis.json").read_text()))
    except (OSError, ValueError):
        return None


def assert_no_server(state: Path, pid: int | None) -> None:
    assert server_info(state) is None
    assert pid is None or not process_exists(pid), f"redis-server {pid} still running"
    assert processes_mentioning(str(state.resolve())) == []


def status_of(state: Path, batch: str, cwd: Path, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    """``batch.py status --json`` and the human form, against the state dir."""
    as_json = run_script("batch.py", "--state-dir", str(state), "status", batch, "--json", env=env, cwd=cwd)
    assert as_json.returncode == 0, as_json.stderr
    human = run_script("batch.py", "--state-dir", str(state), "status", batch, env=env, cwd=cwd)
    assert human.returncode == 0, human.stderr
    return json.loads(as_json.stdout), human.stdout


@pytest.mark.timeout(180)  # a run, a stop, a full resumed run: 25-35 s measured on 2 shared cores
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_a_stopped_local_run_leaves_no_server_reads_interrupted_and_resumes(
    stop: signal.Signals, tmp_path: Path
) -> None:
    state, out, err = tmp_path / "state", tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    lines = synthetic_lines(LINES, model=MODEL)
    dataset = write_dataset(tmp_path / "slow.jsonl", lines)
    args = (
        str(dataset),
        "--state-dir",
        str(state),
        "--output",
        str(out),
        "--errors",
        str(err),
        "--no-progress",
    )
    with reaping(state), SlowCohereServer(KEY, delay=0.3) as server:
        env = {"COHERE_API_KEY": KEY, "COHERE_API_BASE": server.base_url, "RR_MAX_JOBS": "2"}
        batch = default_batch(dataset, env)
        log = (tmp_path / "first.log").open("wb")
        run = subprocess.Popen(
            [sys.executable, str(ROOT / "enqueue.py"), *args],
            env=env_with(env),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: server_info(state) is not None, 60, "the embedded server")
            info = server_info(state)
            assert info is not None
            probe = RedisProbe(f"redis://127.0.0.1:{info['port']}/0")
            try:
                wait_until(lambda: probe.done(batch) >= 2, 60, "the first lines to finish")
            finally:
                probe.close()
            # from here on the run cannot finish before it is stopped, however slow the machine
            server.delay = 5.0

            # a second command of the same run uses the same server and leaves it running
            during, _ = status_of(state, batch, tmp_path, env)
            assert during["state"] == "running" and during["total"] == LINES
            assert server_info(state) == info and process_exists(int(info["pid"]))

            run.send_signal(stop)
            run.wait(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
            log.close()
        if stop == signal.SIGINT:
            assert run.returncode == 130
            assert "interrupted; run the same command again to resume" in (tmp_path / "first.log").read_text()
        gone = str(state.resolve())
        wait_until(
            lambda: not processes_mentioning(gone), 60, "the server and its keeper to stop with the run"
        )
        assert_no_server(state, int(info["pid"]))

        after, text = status_of(state, batch, tmp_path, env)
        assert after["state"] == "interrupted" and after["eta_s"] is None, after
        assert 0 < after["pending"] < LINES and not after["finished"]
        assert "interrupted" in text.splitlines()[0] and "eta unknown" in text
        assert_no_server(state, None)

        # the killed run's in-flight lines run again at once, not when arq's markers expire (310 s)
        server.delay = 0.3
        resumed = run_watching_state("enqueue.py", *args, state_dir=state, cwd=tmp_path, timeout=120, env=env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"done: {LINES} succeeded, 0 failed, 0 unfinished" in resumed.stdout
        assert_no_server(state, resumed.server_pid)
    assert [r["id"] for r in read_jsonl(out)] == [line["id"] for line in lines]
    assert read_jsonl(err) == []
    final, _ = status_of(state, batch, tmp_path, {})
    assert final["state"] == "finished"


def test_retry_failed_in_local_mode_runs_the_lines_it_queues(tmp_path: Path) -> None:
    state, out, err = tmp_path / "state", tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    lines = synthetic_lines(6, model=MODEL)
    dataset = write_dataset(tmp_path / "keyless.jsonl", lines)
    batch = default_batch(dataset, {})
    files = ("--state-dir", str(state), "--output", str(out), "--errors", str(err), "--no-progress")
    with reaping(state), SlowCohereServer(KEY, delay=0.0) as server:
        first = run_watching_state(
            "enqueue.py", str(dataset), *files, state_dir=state, cwd=tmp_path, timeout=120
        )
        assert first.returncode == 0, first.stdout + first.stderr
        assert "done: 0 succeeded, 6 failed, 0 unfinished" in first.stdout  # no COHERE_API_KEY yet
        assert {e["error"]["code"] for e in read_jsonl(err)} == {"configuration"}

        env = {"COHERE_API_KEY": KEY, "COHERE_API_BASE": server.base_url}
        retried = run_script(
            "batch.py", "--state-dir", str(state), "retry-failed", batch, "--code", "configuration",
            "--no-progress", env=env, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert retried.returncode == 0, retried.stderr
        assert f"batch {batch}: 6 failed lines queued again\nrunning them locally" in retried.stdout
        assert f"batch {batch}: 6 succeeded, 0 failed, 0 pending" in retried.stdout
        assert len(server.requests) == 6
        assert_no_server(state, None)

        exported = run_script(
            "batch.py", "--state-dir", str(state), "results", batch,
            "--output", str(out), "--errors", str(err), env={}, cwd=tmp_path,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        assert_no_server(state, None)
    assert [r["id"] for r in read_jsonl(out)] == [line["id"] for line in lines]
    assert read_jsonl(err) == []


def test_the_embedded_server_dies_with_its_keeper(tmp_path: Path) -> None:
    """Even if the keeper itself is SIGKILLed, the server does not outlive it (Linux)."""
    state = tmp_path / "state"
    with reaping(state):
        server = EmbeddedRedis(state, persist=False).start()
        try:
            info = server_info(state)
            assert info is not None
            client = sync_redis.Redis.from_url(server.url)
            assert client.ping()
            client.close()
            os.kill(int(info["keeper"]), signal.SIGKILL)
            wait_until(lambda: not process_exists(int(info["pid"])), 30, "the server to follow its keeper")
        finally:
            server.stop()
