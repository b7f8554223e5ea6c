"""Helpers for the multi-process tests (tests/test_workers.py).

* verbose ``python worker.py --verbose`` processes whose arq log says which lines each
  process started, finished or handed back (registered with the ``workers`` fixture, which
  stops them at teardown);
* a Cohere wire server whose latency can be changed while a batch runs;
* a synchronous Redis probe for cheap polling, and the ``batch.py`` commands as functions;
* ``/proc`` lookups to prove that no server process outlived the command that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis as sync_redis

from jobs import keys
from jobs.dataset import DatasetLine, parse_line
from jobs.payload import line_payload
from jobs.serializer import deserialize, serialize
from jobs.settings import DEFAULT_MODEL
from tests.servers.cohere import CohereServer
from tests.support import ROOT, env_with, read_jsonl, run_script, start_worker, wait_until
from tests.wire_server import Recorded, Reply

# arq's INFO lines (worker.py --verbose), e.g.
#   "  0.01s → big:q7:rerank_line({'batch': 'big', ...}) try=2 delayed=1.50s"
#   "  0.30s ← big:q7:rerank_line ● "
#   "  2.00s ↻ big:q7:rerank_line cancelled, will be run again"
#   "  2.00s ↻ big:q7:rerank_line retrying job in 1.00s"  (arq's Retry: deferred or handed back)
#   " 10.00s ! big:q7:rerank_line failed, TimeoutError: "  (arq's job_timeout)
_STARTED = re.compile(rf"→ (\S+):{keys.JOB_FUNCTION}\(")
_TRY = re.compile(r"\) try=(\d+)(?: delayed=[\d.]+s)?$")
_FINISHED = re.compile(rf"← (\S+):{keys.JOB_FUNCTION} ●")
_HANDED_BACK = re.compile(rf"↻ (\S+):{keys.JOB_FUNCTION} (?:cancelled, will be run again|retrying job in)")
_FAILED = re.compile(rf"! (\S+):{keys.JOB_FUNCTION} failed, ")

ENQUEUED = re.compile(
    r"enqueued (\d+) new lines in [\d.]+s; skipped (\d+) \((\d+) already queued, (\d+) already done\)"
)


class Workers:
    """Starts ``python worker.py`` processes; stops whatever is left at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = start_worker(env, self.log_dir / f"worker-{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.log_dir.glob("worker-*.log")))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class WorkerLog:
    """What one worker process did, by job id (``BATCH:LINE-ID``), from its arq log."""

    started: dict[str, list[int]] = field(default_factory=dict)
    """job id -> the tries this process started it with, in order."""
    finished: list[str] = field(default_factory=list)
    handed_back: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """Jobs arq itself gave up on (an exception out of the job, e.g. its job_timeout)."""
    text: str = ""

    @property
    def in_flight(self) -> set[str]:
        """Started here and not finished, handed back or failed (yet)."""
        return set(self.started) - set(self.finished) - set(self.handed_back) - set(self.failed)


def parse_worker_log(text: str) -> WorkerLog:
    log = WorkerLog(text=text)
    for line in text.splitlines():
        if started := _STARTED.search(line):
            tried = _TRY.search(line)
            log.started.setdefault(started.group(1), []).append(int(tried.group(1)) if tried else 1)
        elif finished := _FINISHED.search(line):
            log.finished.append(finished.group(1))
        elif handed := _HANDED_BACK.search(line):
            log.handed_back.append(handed.group(1))
        elif failed := _FAILED.search(line):
            log.failed.append(failed.group(1))
    return log


@dataclass
class VerboseWorker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> WorkerLog:
        return parse_worker_log(self.log_path.read_text(encoding="utf-8", errors="replace"))


def start_verbose_worker(workers: Workers, env: Mapping[str, str], *args: str) -> VerboseWorker:
    """``python worker.py --verbose ARGS``, stopped by the ``workers`` fixture at teardown."""
    log_path = workers.log_dir / f"worker-{len(workers.processes)}.log"
    with log_path.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py"), "--verbose", *args],
            env=env_with(env),
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    workers.processes.append(process)
    return VerboseWorker(process, log_path)


class SlowCohereServer(CohereServer):
    """The Cohere wire server, answering every request after ``delay`` seconds (changeable live)."""

    def __init__(self, api_key: str, delay: float) -> None:
        super().__init__(api_key)
        self.delay = delay

    def handle(self, record: Recorded) -> Reply:
        time.sleep(self.delay)  # the body is parsed on arrival: in-flight requests are countable
        return super().handle(record)

    def queries(self) -> Counter[str]:
        """How many requests arrived per query (in-flight ones included)."""
        with self._lock:
            bodies = [r.body for r in self.requests]
        return Counter(body["query"] for body in bodies if isinstance(body, dict))


class RedisProbe:
    """Cheap synchronous reads of the runner's keys, for polling without spawning processes."""

    def __init__(self, url: str) -> None:
        self.client = sync_redis.Redis.from_url(url)

    def close(self) -> None:
        self.client.close()

    def counters(self, batch: str) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], self.client.hgetall(keys.batch(batch)))
        return {name: int(raw.get(name.encode(), b"0")) for name in ("total", "succeeded", "failed")}

    def done(self, batch: str) -> int:
        counters = self.counters(batch)
        return counters["succeeded"] + counters["failed"]

    def queued(self) -> int:
        return int(cast(int, self.client.zcard(keys.QUEUE)))

    def queued_jobs(self) -> set[str]:
        return {m.decode() for m in cast(list[bytes], self.client.zrange(keys.QUEUE, 0, -1))}

    def matching(self, prefix: str) -> set[str]:
        found = cast(Iterator[bytes], self.client.scan_iter(match=prefix + "*", count=1000))
        return {k.decode()[len(prefix) :] for k in found}

    def in_progress(self) -> set[str]:
        """Job ids some worker holds right now (arq's in-progress markers)."""
        return self.matching(keys.ARQ_IN_PROGRESS_PREFIX)

    def job_payloads(self) -> set[str]:
        return self.matching(keys.ARQ_JOB_PREFIX)

    def record(self, job: str) -> tuple[str, dict[str, Any]] | None:
        status, record = cast(list[bytes | None], self.client.hmget(keys.result(job), ["status", "record"]))
        if status is None or record is None:
            return None
        return status.decode(), json.loads(record)

    def dbsize(self) -> int:
        return int(cast(int, self.client.dbsize()))

    def redeliver(self, batch: str, line: Mapping[str, Any], line_no: int) -> str:
        """Queue a dataset line's job again exactly as enqueue.py builds it, as arq does when a
        worker dies between writing the record and acknowledging the job.  Returns the job id."""
        parsed = parse_line(line_no, json.dumps(line).encode())
        assert isinstance(parsed, DatasetLine), parsed
        now_ms = int(time.time() * 1000)
        run = cast(bytes | None, self.client.hget(keys.batch(batch), "run")) or b""
        payload = line_payload(batch, parsed, parsed.model or DEFAULT_MODEL, run.decode())
        job = keys.job_id(batch, parsed.id)
        self.client.set(keys.arq_job(job), serialize(payload))  # the bare line (jobs.serializer)
        self.client.zadd(keys.QUEUE, {job: now_ms})
        return job

    def job_line(self, job: str) -> int:
        """The dataset line number inside a queued job's JSON payload."""
        payload = deserialize(cast(bytes, self.client.get(keys.arq_job(job))))
        return int(payload["a"][0]["line"])


def batch_status(redis_url: str, batch: str) -> dict[str, Any]:
    """``python batch.py status BATCH --json``."""
    done = run_script("batch.py", "--redis-url", redis_url, "status", batch, "--json", env={}, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return cast(dict[str, Any], json.loads(done.stdout))


def wait_for_finished(
    redis_url: str, probe: RedisProbe, batch: str, timeout: float, workers: Workers
) -> dict[str, Any]:
    """Poll Redis until every line has a record, then confirm with ``batch.py status --json``."""

    def finished() -> bool:
        counters = probe.counters(batch)
        if counters["total"] == 0 or counters["succeeded"] + counters["failed"] < counters["total"]:
            return False
        return bool(batch_status(redis_url, batch)["finished"])

    try:
        wait_until(finished, timeout, f"batch {batch} to finish")
    except AssertionError as exc:
        detail = f"counters {probe.counters(batch)}, queued {probe.queued()}"
        raise AssertionError(f"{exc}; {detail}\nworker logs:\n{workers.logs()[-4000:]}") from exc
    return batch_status(redis_url, batch)


def export_batch(
    redis_url: str, batch: str, directory: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """``python batch.py results BATCH --output ... --errors ...``: (results, errors, stdout)."""
    output, errors = directory / f"{batch}.results.jsonl", directory / f"{batch}.errors.jsonl"
    done = run_script(
        "batch.py", "--redis-url", redis_url, "results", batch,
        "--output", str(output), "--errors", str(errors), env={}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert output.exists() and errors.exists()
    return read_jsonl(output), read_jsonl(errors), done.stdout


def enqueued_counts(stdout: str) -> tuple[int, int, int, int]:
    """(added, skipped, already queued, already done) from enqueue.py's summary line."""
    found = ENQUEUED.search(stdout)
    assert found, f"no enqueue summary in:\n{stdout}"
    added, skipped, queued, done = (int(g) for g in found.groups())
    return added, skipped, queued, done


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(text.encode() in arg for arg in argv):
            found.append(int(entry.name))
    return found


def process_exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@contextlib.contextmanager
def reaping(directory: Path) -> Iterator[None]:
    """On exit, SIGKILL any process still running with ``directory`` in its command line
    (an embedded redis-server that a failed or killed command left behind)."""
    try:
        yield
    finally:
        for pid in processes_mentioning(str(directory.resolve())):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class LocalRun:
    returncode: int
    stdout: str
    stderr: str
    server_pid: int | None
    """The embedded redis-server's pid, read from STATE/redis.json while the command ran."""


def run_watching_state(
    script: str, *args: str, state_dir: Path, cwd: Path, timeout: float, env: Mapping[str, str] | None = None
) -> LocalRun:
    """Run a script with no Redis URL, reading ``STATE/redis.json`` while it runs."""
    info = state_dir / "redis.json"
    out_path, err_path = cwd / f".{script}.stdout", cwd / f".{script}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / script), *args],
            env=env_with(env or {}),
            cwd=cwd,
            stdout=out,
            stderr=err,
        )
        pid: int | None = None
        try:
            deadline = time.monotonic() + timeout
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{script} {' '.join(args)} still running after {timeout:g}s")
                if pid is None:
                    with contextlib.suppress(OSError, ValueError):
                        pid = int(json.loads(info.read_text())["pid"])
                time.sleep(0.01)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    return LocalRun(process.returncode, out_path.read_text(), err_path.read_text(), pid)
