"""The installed console script, ``rerank-runner enqueue|worker|batch``, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import batch
import enqueue
import worker
from jobs.cli import COMMANDS
from tests.process_tools import reaping
from tests.support import ROOT, env_with, read_jsonl

SCRIPT = Path(sys.executable).parent / "rerank-runner"
DOCSTRINGS = {"enqueue": enqueue.__doc__, "worker": worker.__doc__, "batch": batch.__doc__}


def run(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: reinstall the project (./rr does it)"
    return subprocess.run(
        [str(SCRIPT), *args], env=env_with({}), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_help_lists_every_command() -> None:
    done = run("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: rerank-runner ")
    text = " ".join(done.stdout.split())  # argparse wraps the summaries to the terminal's width
    for name, command in COMMANDS.items():
        assert f"{name} {command.summary}" in text, name


@pytest.mark.parametrize("name", sorted(DOCSTRINGS))
def test_each_command_has_its_own_help_under_the_script_name(name: str) -> None:
    done = run(name, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: rerank-runner {name} ")
    doc = DOCSTRINGS[name]
    assert doc is not None and doc.splitlines()[0] in done.stdout


@pytest.mark.parametrize("args", [(), ("rerank",)])
def test_a_missing_or_unknown_command_is_a_usage_error_naming_the_commands(args: tuple[str, ...]) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert "usage: rerank-runner " in done.stderr and "COMMAND" in done.stderr


@pytest.mark.integration
def test_enqueue_runs_the_example_locally_from_any_directory(tmp_path: Path) -> None:
    source = ROOT / "examples" / "queries.jsonl"
    state, out, err = tmp_path / "state", tmp_path / "results.jsonl", tmp_path / "errors.jsonl"
    files = ("--state-dir", str(state), "--output", str(out), "--errors", str(err))
    with reaping(state):
        done = run("enqueue", str(source), "--no-progress", *files, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done: 10 succeeded, 0 failed, 0 unfinished" in done.stdout
    assert [r["id"] for r in read_jsonl(out)] == [line["id"] for line in read_jsonl(source)]
    assert read_jsonl(err) == []


@pytest.mark.integration
def test_enqueue_into_redis_prints_next_steps_for_the_script(redis_url: str, tmp_path: Path) -> None:
    source = ROOT / "examples" / "queries.jsonl"
    done = run("enqueue", str(source), "--redis-url", redis_url, "--batch", "cli", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rerank-runner worker\n" in done.stdout
    assert "rerank-runner batch status cli --watch" in done.stdout
    assert "python " not in done.stdout
