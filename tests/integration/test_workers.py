"""Real processes against a real redis-server: enqueue.py, several worker.py, batch.py.

Covers throughput-scale correctness (10,000 lines over two workers), a SIGKILLed and a
frozen (SIGSTOP) worker whose lines re-run and are counted once, redelivered finished jobs,
graceful SIGTERM (lines finish, or go back to the queue when they outlast
RR_SHUTDOWN_GRACE), a bad file through the CLI, local mode with its embedded Redis, and
cancel + resume of a running batch.

Slow lines come from the Cohere wire server (tests/servers/cohere.py) with a latency
that the tests change while the batch runs.  Which lines each worker started, finished
or handed back is read from its arq log (``worker.py --verbose``).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.identity import default_batch_name, run_identity
from jobs.validation import ModelCheck, validate_file
from providers.registry import KNOWN_PROVIDERS
from tests.process_tools import (
    RedisProbe,
    SlowCohereServer,
    VerboseWorker,
    Workers,
    batch_status,
    enqueued_counts,
    export_batch,
    process_exists,
    processes_mentioning,
    reaping,
    run_watching_state,
    start_verbose_worker,
    wait_for_finished,
)
from tests.support import ROOT, read_jsonl, run_script, synthetic_lines, wait_until, write_dataset

pytestmark = pytest.mark.integration

KEY = "workers-test-key"
MODEL = "cohere/rerank-v3.5"
EXIT_MARGIN_SECONDS = 20.0
"""How much longer than RR_SHUTDOWN_GRACE a worker may take to exit after SIGTERM
(interpreter shutdown, closing connections) before the test calls it stuck."""


@pytest.fixture
def server() -> Iterator[SlowCohereServer]:
    with SlowCohereServer(KEY, delay=0.3) as running:
        yield running


def cohere_lines(count: int) -> list[dict[str, Any]]:
    """Synthetic lines for the Cohere model, each query unique (it ends with the line id), so the
    server's request log says which line every request was for.  Document 0 ranks first."""
    lines = synthetic_lines(count, model=MODEL)
    for line in lines:
        line["query"] = f"{line['query']} {line['id']}"
    return lines


def cohere_env(redis_url: str, server: SlowCohereServer, **overrides: str) -> dict[str, str]:
    env = {
        "REDIS_URL": redis_url,
        "COHERE_API_KEY": KEY,
        "COHERE_API_BASE": server.base_url,
        "RR_JOB_TIMEOUT": "30",
        "RR_HTTP_TIMEOUT": "5",
        "RR_RETRY_MAX_SECONDS": "10",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    env.update(overrides)
    return env


def enqueue(redis_url: str, path: Path, batch: str) -> tuple[int, int, int, int]:
    """``python enqueue.py PATH --redis-url URL --batch BATCH --no-progress``: its four counts."""
    done = run_script(
        "enqueue.py", str(path), "--redis-url", redis_url, "--batch", batch, "--no-progress",
        env={}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return enqueued_counts(done.stdout)


def line_of(job: str) -> str:
    """``BATCH:LINE-ID`` -> ``LINE-ID``."""
    return job.split(":", 1)[1]


def assert_exact(status: dict[str, Any], total: int) -> None:
    counts = {k: status[k] for k in ("total", "succeeded", "failed", "pending", "finished", "cancelled")}
    assert counts == {
        "total": total,
        "succeeded": total,
        "failed": 0,
        "pending": 0,
        "finished": True,
        "cancelled": False,
    }


def assert_settled(probe: RedisProbe) -> None:
    """Nothing queued, nothing held by a worker, no arq payload left behind."""
    wait_until(lambda: probe.queued() == 0 and not probe.in_progress(), 30, "the queue to drain")
    assert not probe.job_payloads()


@pytest.mark.timeout(180)  # 10,000 lines through two processes: ~40 s measured on a busy 2-core machine
def test_ten_thousand_lines_over_two_worker_processes(
    redis_url: str, workers: Workers, probe: RedisProbe, tmp_path: Path
) -> None:
    lines = synthetic_lines(10_000)
    ids = [line["id"] for line in lines]
    path = write_dataset(tmp_path / "big.jsonl", lines)
    pair = [start_verbose_worker(workers, {"REDIS_URL": redis_url}) for _ in range(2)]

    assert enqueue(redis_url, path, "big") == (10_000, 0, 0, 0)
    status = wait_for_finished(redis_url, probe, "big", 300, workers)

    assert_exact(status, 10_000)
    assert all(w.process.poll() is None for w in pair), workers.logs()[-4000:]
    results, errors, summary = export_batch(redis_url, "big", tmp_path)
    assert errors == []
    assert "10000 results" in summary and "0 failed + 0 unfinished" in summary
    assert [r["id"] for r in results] == ids  # one each, none missing, dataset order
    assert [r["line"] for r in results] == list(range(1, 10_001))
    assert {r["model"] for r in results} == {"local/bm25"}
    assert [r["id"] for r in results if r["results"][0]["index"] != 0] == []
    assert {len(r["results"]) for r in results} == {8}
    assert {r["job_try"] for r in results} == {1}

    # both processes ran lines, and every line ran exactly once in all
    logs = [w.log() for w in pair]
    assert all(log.finished for log in logs), [len(log.finished) for log in logs]
    ran = Counter(line_of(job) for log in logs for job in log.finished)
    assert ran == Counter(ids)
    assert not set(logs[0].finished) & set(logs[1].finished)
    assert_settled(probe)

    # the same command again adds nothing: every line is already done
    assert enqueue(redis_url, path, "big") == (0, 10_000, 0, 10_000)
    assert probe.queued() == 0
    assert batch_status(redis_url, "big")["total"] == 10_000  # lines are not counted twice


@pytest.mark.timeout(120)  # stranded lines re-run once a live worker reaps the dead heartbeats: ~40 s
def test_sigkilled_worker_lines_rerun_and_count_once(
    server: SlowCohereServer, redis_url: str, workers: Workers, probe: RedisProbe, tmp_path: Path
) -> None:
    """One worker is SIGKILLed and one frozen (SIGSTOP) mid-request.  Their lines re-run
    elsewhere once their heartbeats expire and a live worker's reaper hands them back; then the
    frozen one resumes and finishes its stale copies, which must change no record and no counter."""
    lines = cohere_lines(200)
    ids = [line["id"] for line in lines]
    line_for_query = {line["query"]: line["id"] for line in lines}
    query_for = {line["id"]: line["query"] for line in lines}
    path = write_dataset(tmp_path / "kill.jsonl", lines)
    # without the score cache, so that every run of a line reaches the wire, where it is counted
    env = cohere_env(
        redis_url, server, RR_JOB_TIMEOUT="10", RR_HTTP_TIMEOUT="3", RR_RETRY_MAX_SECONDS="2",
        RR_MAX_JOBS="8", RR_CACHE_TTL_DAYS="0",
    )  # fmt: skip
    assert enqueue(redis_url, path, "kill") == (200, 0, 0, 0)
    # requests slow enough that the lines seen on the wire are still there when the signals land,
    # however loaded the machine is between the check and the kill
    server.delay = 1.0
    victim, sleeper, survivor = (start_verbose_worker(workers, env) for _ in range(3))

    def on_the_wire(worker: VerboseWorker) -> bool:
        held = {line_of(job) for job in worker.log().in_flight}
        return bool(held & {line_for_query[q] for q in server.queries()})

    def both_hold_requests() -> bool:
        return probe.done("kill") >= 30 and on_the_wire(victim) and on_the_wire(sleeper)

    try:
        wait_until(both_hold_requests, 90, "two workers to hold lines mid-request")
        sleeper.process.send_signal(signal.SIGSTOP)
        victim.process.send_signal(signal.SIGKILL)
        assert victim.process.wait(timeout=10) == -signal.SIGKILL
        assert 30 <= probe.done("kill") < 200
        killed, frozen = victim.log(), sleeper.log()
        stranded = killed.in_flight | frozen.in_flight
        assert killed.in_flight and frozen.in_flight
        unrecorded = {job for job in stranded if probe.record(job) is None}
        asked_at_stop = server.queries()
        # stranded mid-request: their request reached the server, their record was never written
        mid_request = {line_of(job) for job in unrecorded if asked_at_stop[query_for[line_of(job)]]}
        assert mid_request, "no stranded line was waiting on the server"

        server.delay = 0.05
        replacement = start_verbose_worker(workers, env)
        assert_exact(wait_for_finished(redis_url, probe, "kill", 120, workers), 200)
        assert_settled(probe)
        results, errors, _ = export_batch(redis_url, "kill", tmp_path)
        assert errors == []
        assert [r["id"] for r in results] == ids
        assert [r["id"] for r in results if r["results"][0]["index"] != 0] == []
        by_id = {r["id"]: r for r in results}

        # every stranded line without a record was started again elsewhere, on a later try (one
        # whose record was written is finished in that same step, though its log may not say so) ...
        others = [survivor.log(), replacement.log()]
        retried = {job for log in others for job, tries in log.started.items() if max(tries) >= 2}
        assert unrecorded <= retried, unrecorded - retried
        # ... and a line with no record when its worker died or froze got it from such a re-run
        assert all(by_id[line_of(job)]["job_try"] >= 2 for job in unrecorded)
        rerun_records = {r["id"] for r in results if r["job_try"] >= 2}
        assert rerun_records <= {line_of(job) for job in retried}
        # a line finished before the stop whose job still ran again (its worker stopped between
        # writing the record and telling arq) keeps the first record: the re-run's write is ignored
        finished_first = set(killed.finished) | set(frozen.finished)
        assert not rerun_records & {line_of(job) for job in finished_first}
    finally:
        sleeper.process.send_signal(signal.SIGCONT)

    # the frozen worker wakes up and finishes its stale copies: nothing changes
    wait_until(lambda: not sleeper.log().in_flight, 60, "the resumed worker to finish its stale lines")
    assert sleeper.process.poll() is None
    assert_exact(batch_status(redis_url, "kill"), 200)
    again, errors, _ = export_batch(redis_url, "kill", tmp_path)
    assert errors == [] and again == results  # no record overwritten by a stale run

    # the wire saw duplicates, yet each line counted once; only lines that a stopped worker had
    # started (all in flight then, or finished without arq knowing) were asked twice
    asked = server.queries()
    assert set(asked) == set(line_for_query)
    repeated = {line_for_query[q] for q, n in asked.items() if n > 1}
    started_by_stopped = {line_of(job) for log in (victim.log(), sleeper.log()) for job in log.started}
    assert mid_request <= repeated <= started_by_stopped
    assert sum(asked.values()) > len(lines)
    assert_settled(probe)

    # that last case on purpose: finished lines delivered again run, see their success and
    # change nothing, without asking the provider again
    def finished_runs() -> Counter[str]:
        return Counter(job for w in (survivor, replacement, sleeper) for job in w.log().finished)

    runs_before = finished_runs()
    again_jobs = [probe.redeliver("kill", lines[n], n + 1) for n in range(5)]
    wait_until(lambda: probe.queued() == 0 and not probe.in_progress(), 60, "the redelivered jobs to run")
    assert server.queries() == asked
    assert_exact(batch_status(redis_url, "kill"), 200)
    final, errors, _ = export_batch(redis_url, "kill", tmp_path)
    assert errors == [] and final == results
    assert finished_runs() - runs_before == Counter(again_jobs)


def test_sigterm_lets_in_flight_lines_finish(
    server: SlowCohereServer, redis_url: str, workers: Workers, probe: RedisProbe, tmp_path: Path
) -> None:
    grace = 15
    lines = cohere_lines(48)
    ids = [line["id"] for line in lines]
    path = write_dataset(tmp_path / "term.jsonl", lines)
    env = cohere_env(redis_url, server, RR_SHUTDOWN_GRACE=str(grace), RR_MAX_JOBS="8")
    server.delay = 0.5
    assert enqueue(redis_url, path, "term") == (48, 0, 0, 0)
    worker = start_verbose_worker(workers, env)

    wait_until(lambda: probe.done("term") >= 8 and bool(worker.log().in_flight), 60, "lines in flight")
    held = worker.log().in_flight
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=grace + EXIT_MARGIN_SECONDS) == 0

    log = worker.log()
    assert held and held <= set(log.finished)
    assert set(log.finished) == set(log.started) and log.handed_back == log.failed == []
    assert "0 ongoing to cancel" in log.text
    assert f"stopped: {len(log.finished)} lines completed, 0 failed, 0 retried" in log.text
    # every line it started has its record; nothing is held; the rest is still queued
    for job in log.started:
        recorded = probe.record(job)
        assert recorded is not None and recorded[0] == "succeeded", job
        assert recorded[1]["job_try"] == 1
    assert not probe.in_progress()
    assert probe.counters("term")["succeeded"] == len(log.started)
    assert probe.queued_jobs() == {f"term:{i}" for i in ids} - set(log.started)

    server.delay = 0.05
    start_verbose_worker(workers, env)
    assert_exact(wait_for_finished(redis_url, probe, "term", 120, workers), 48)
    results, errors, _ = export_batch(redis_url, "term", tmp_path)
    assert errors == []
    assert [r["id"] for r in results] == ids
    assert {r["job_try"] for r in results} == {1}
    assert server.queries() == Counter(line["query"] for line in lines)  # nothing ran twice
    assert_settled(probe)


def test_sigterm_hands_back_lines_slower_than_the_grace(
    server: SlowCohereServer, redis_url: str, workers: Workers, probe: RedisProbe, tmp_path: Path
) -> None:
    grace = 2
    lines = cohere_lines(12)
    ids = [line["id"] for line in lines]
    path = write_dataset(tmp_path / "slow.jsonl", lines)
    env = cohere_env(redis_url, server, RR_SHUTDOWN_GRACE=str(grace), RR_MAX_JOBS="4", RR_HTTP_TIMEOUT="10")
    server.delay = 6.0  # longer than the grace, shorter than the HTTP timeout
    assert enqueue(redis_url, path, "slow") == (12, 0, 0, 0)
    worker = start_verbose_worker(workers, env)

    wait_until(lambda: server.queries().total() >= 4, 60, "four requests in flight")
    held = worker.log().in_flight
    assert len(held) == 4
    sent = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=grace + EXIT_MARGIN_SECONDS) == 0
    assert time.monotonic() - sent >= grace  # it did wait for the grace before giving up

    log = worker.log()
    assert log.finished == log.failed == [] and set(log.handed_back) == held == set(log.started)
    # handed back: no record, no in-progress marker, payload and queue entry intact
    assert all(probe.record(job) is None for job in held)
    assert probe.counters("slow") == {"total": 12, "succeeded": 0, "failed": 0}
    assert not probe.in_progress()
    assert probe.queued_jobs() == {f"slow:{i}" for i in ids}
    assert held <= probe.job_payloads()

    server.delay = 0.05
    start_verbose_worker(workers, env)
    assert_exact(wait_for_finished(redis_url, probe, "slow", 120, workers), 12)
    results, errors, _ = export_batch(redis_url, "slow", tmp_path)
    assert errors == []
    assert [r["id"] for r in results] == ids  # no line lost
    handed = {line_of(job) for job in held}
    assert {r["id"]: r["job_try"] for r in results} == {i: 2 if i in handed else 1 for i in ids}
    asked = server.queries()
    assert {line["id"]: asked[line["query"]] for line in lines} == {i: 2 if i in handed else 1 for i in ids}
    assert_settled(probe)


def test_bad_file_through_the_cli(redis_url: str, probe: RedisProbe, tmp_path: Path) -> None:
    good = synthetic_lines(3)
    raw = [
        json.dumps({**good[0], "id": "a1"}),
        '{"id": "a2", "query": "broken", "documents": ["x"]',
        json.dumps({"id": "a3", "documents": ["x"]}),
        json.dumps({"id": "a4", "query": "q", "documents": "x", "top_n": "3"}),
        json.dumps({"id": "a5", "query": "q", "documents": ["x"], "model": "nope/x"}),
        "",  # blank: skipped, but line numbers stay those of the file
        json.dumps({**good[1], "id": "a7"}),
        json.dumps({**good[2], "id": "a1"}),
        json.dumps({**good[2], "id": 9}),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(raw) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    expected = [
        (2, "(line)", "invalid JSON: "),
        (3, "query", "is required"),
        (4, "documents", "must be an array, got string"),
        (4, "top_n", "must be a positive integer, got string"),
        (5, "model", f"unknown provider 'nope' in model 'nope/x'; known: {', '.join(KNOWN_PROVIDERS)}"),
        (8, "id", "duplicate id 'a1' (first on line 1)"),
    ]

    def check(stderr: str) -> None:
        reported = [
            (int(m[1]), m[2], m[3]) for m in re.finditer(r"^line (\d+): (\S+): (.+)$", stderr, re.MULTILINE)
        ]
        assert len(reported) == len(expected), stderr
        for (line, field, reason), (want_line, want_field, want) in zip(reported, expected, strict=True):
            assert (line, field) == (want_line, want_field)
            assert reason.startswith(want) if want_field == "(line)" else reason == want
        entries = read_jsonl(rejects)
        assert [e["line"] for e in entries] == [2, 3, 4, 5, 8]
        assert [e["raw"] for e in entries] == [raw[n - 1] for n in (2, 3, 4, 5, 8)]
        problems = [(e["line"], err["field"], err["reason"]) for e in entries for err in e["errors"]]
        assert problems == reported  # one entry per bad line, holding each of its problems

    command = ("enqueue.py", str(path), "--redis-url", redis_url, "--batch", "bad", "--no-progress")
    refused = run_script(*command, "--rejects", str(rejects), env={}, timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "checked 8 lines: 3 valid, 5 invalid" in refused.stdout
    assert "nothing enqueued" in refused.stderr
    check(refused.stderr)
    assert probe.dbsize() == 0  # not a single key: no batch, no job

    rejects.unlink()
    skipped = run_script(*command, "--rejects", str(rejects), "--skip-invalid", env={}, timeout=120)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert enqueued_counts(skipped.stdout) == (3, 0, 0, 0)
    check(skipped.stderr)
    assert probe.queued_jobs() == {"bad:a1", "bad:a7", "bad:9"}
    assert probe.job_line("bad:a1") == 1  # the first occurrence, not the duplicate on line 8
    assert probe.counters("bad") == {"total": 3, "succeeded": 0, "failed": 0}


def test_local_mode_end_to_end_leaves_no_server(tmp_path: Path) -> None:
    source = ROOT / "examples" / "queries.jsonl"
    inputs = read_jsonl(source)
    state, out, err = tmp_path / "state", tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    report = validate_file(source, ModelCheck(), lambda error: None)
    batch = default_batch_name(source, run_identity(source, report, "local/bm25", None, {}))
    files = ("--state-dir", str(state), "--output", str(out), "--errors", str(err))
    args = (str(source), *files, "--no-progress")

    def assert_no_server(pid: int | None) -> None:
        assert not (state / "redis.json").exists()
        assert pid is None or not process_exists(pid), f"redis-server {pid} still running"
        assert processes_mentioning(str(state.resolve())) == []

    with reaping(state):
        first = run_watching_state("enqueue.py", *args, state_dir=state, cwd=cwd, timeout=180)
        assert first.returncode == 0, first.stdout + first.stderr
        assert enqueued_counts(first.stdout) == (10, 0, 0, 0)
        assert f"batch {batch}: running locally" in first.stdout
        assert "done: 10 succeeded, 0 failed, 0 unfinished" in first.stdout
        assert first.server_pid is not None, "never saw the embedded server's redis.json"
        assert_no_server(first.server_pid)
        results = read_jsonl(out)
        assert err.exists() and read_jsonl(err) == []
        assert [r["id"] for r in results] == [line["id"] for line in inputs]
        for line, record in zip(inputs, results, strict=True):
            assert record["model"] == line.get("model", "local/bm25")
            assert len(record["results"]) == min(line.get("top_n") or 99, len(line["documents"]))
            scores = [item["relevance_score"] for item in record["results"]]
            assert scores == sorted(scores, reverse=True)
            assert record.get("metadata") == line.get("metadata")
        assert not (cwd / "results").exists()  # every path was given; nothing lands in the cwd

        # again: resumes from the AOF in the state dir, runs nothing, still writes the files
        out.unlink()
        err.unlink()
        second = run_watching_state("enqueue.py", *args, state_dir=state, cwd=cwd, timeout=180)
        assert second.returncode == 0, second.stdout + second.stderr
        assert enqueued_counts(second.stdout) == (0, 10, 0, 10)
        assert read_jsonl(out) == results
        assert err.exists() and read_jsonl(err) == []
        assert_no_server(second.server_pid)

        status_args = ("--state-dir", str(state), "status", batch, "--json")
        status = run_watching_state("batch.py", *status_args, state_dir=state, cwd=cwd, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert_exact(json.loads(status.stdout), 10)
        assert_no_server(status.server_pid)


def test_cancel_a_running_batch_then_resume(
    server: SlowCohereServer, redis_url: str, workers: Workers, probe: RedisProbe, tmp_path: Path
) -> None:
    lines = cohere_lines(200)
    ids = [line["id"] for line in lines]
    path = write_dataset(tmp_path / "cancel.jsonl", lines)
    env = cohere_env(redis_url, server, RR_MAX_JOBS="8")
    assert enqueue(redis_url, path, "cancel") == (200, 0, 0, 0)
    for _ in range(2):
        start_verbose_worker(workers, env)
    wait_until(lambda: probe.done("cancel") >= 16, 60, "the batch to be under way")

    cancelled = run_script("batch.py", "--redis-url", redis_url, "cancel", "cancel", env={}, timeout=60)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    summary = r"batch cancel cancelled: (\d+) queued lines removed; finished results kept"
    found = re.search(summary, cancelled.stdout)
    assert found, cancelled.stdout
    removed = int(found[1])
    # lines already running finish; nothing else starts
    assert_settled(probe)
    status = batch_status(redis_url, "cancel")
    assert status["cancelled"] and not status["finished"]
    assert status["failed"] == 0 and status["succeeded"] + status["pending"] == 200
    assert 16 <= status["succeeded"] < 200

    results, errors, _ = export_batch(redis_url, "cancel", tmp_path)
    done = [r["id"] for r in results]
    assert len(done) == status["succeeded"]
    assert [e["id"] for e in errors] == [i for i in ids if i not in set(done)]
    assert {e["error"]["code"] for e in errors} == {"cancelled"}
    assert 0 < removed <= len(errors)
    # finished lines kept their results; cancelled lines never reached the provider
    assert server.queries() == Counter(line["query"] for line in lines if line["id"] in set(done))
    assert all(w.poll() is None for w in workers.processes), workers.logs()[-4000:]

    # the same enqueue command resumes the batch with the lines that did not run
    server.delay = 0.05
    assert enqueue(redis_url, path, "cancel") == (len(errors), len(done), 0, len(done))
    assert_exact(wait_for_finished(redis_url, probe, "cancel", 120, workers), 200)
    results, errors, _ = export_batch(redis_url, "cancel", tmp_path)
    assert errors == []
    assert [r["id"] for r in results] == ids
    assert server.queries() == Counter(line["query"] for line in lines)  # each line asked once in all
    assert_settled(probe)
