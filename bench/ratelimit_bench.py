"""Rate-limit benchmark: real Redis, real `enqueue.py`, real `worker.py` processes, and
local mock providers (bench/mock_provider.py) that enforce a strict limit and inject failures.

    python bench/ratelimit_bench.py [--scenario N ...] [--lines 2000] [--workers 2] [--max-jobs 16]

Scenarios (each line must end as exactly one result or one error; that is checked):
  1. one deployment, limit 20 requests/s (model list rpm 1200, mock --rps 20 --burst 2):
     achieved rate >= 95% of the limit, 429 violations <= 0.5% of requests
  2. 20% of responses 503 and 5% 429 with Retry-After: 1, no rate limit: every line
     succeeds; attempts per line
  3. two deployments of one model_name, 10 and 30 requests/s (rpm 600 and 1800): combined
     rate >= 90% of 40/s; each deployment's share
  4. two deployments, the first down (every answer 503), the second healthy: every line
     succeeds via the healthy one; requests the down one received

Prints a table of figures with PASS/MISS per target.  Exits non-zero only on errors (a
scenario that does not finish in its time bound, a process that fails, a lost or duplicated
line), never on a missed target.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

import httpx
import orjson
import redis as sync_redis
import yaml

from jobs import keys
from jobs.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
MOCK = ROOT / "bench" / "mock_provider.py"
API_KEY = "bench-mock-key"
WIRE_MODEL = "cohere/rerank-v3.5"
VOCABULARY = (
    "solar wind river mountain coffee python redis ranking query search index vector lexical volcano "
    "marathon engine battery network cloud garden music planet ocean forest city bridge lamp paper"
)
WORDS = VOCABULARY.split()
STOP_SECONDS = 30.0
POLL_SECONDS = 0.5
ENQUEUED = re.compile(r"enqueued (\d+) new lines")


class BenchError(Exception):
    pass


class Interrupted(BaseException):
    """SIGTERM: unwind through every ``finally`` so children and temp files are cleaned up."""


# -- scenarios ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mock:
    rps: float = 0.0
    burst: float = 2.0
    latency_ms: float = 30.0
    fail_503: float = 0.0
    fail_429: float = 0.0
    retry_after: int = 1
    down: bool = False
    scores: str = "words"

    def argv(self, seed: int) -> list[str]:
        argv = ["--rps", f"{self.rps:g}", "--burst", f"{self.burst:g}"]
        argv += ["--latency-ms", f"{self.latency_ms:g}", "--scores", self.scores]
        if self.fail_503 or self.fail_429:
            argv += ["--fail-503", f"{self.fail_503:g}", "--fail-429", f"{self.fail_429:g}"]
            argv += ["--retry-after", str(self.retry_after), "--seed", str(seed)]
        return [*argv, "--down"] if self.down else argv


@dataclass(frozen=True)
class Deployment:
    mock: Mock
    rpm: int | None
    role: str


@dataclass(frozen=True)
class Scenario:
    number: int
    title: str
    deployments: tuple[Deployment, ...]
    nominal_rate: float
    """Lines/s to expect (only for the time bound)."""
    worker_env: dict[str, str] = field(default_factory=dict)


def scenarios(latency_ms: float, mock_burst: float) -> dict[int, Scenario]:
    def limited(rps: float) -> Mock:
        return Mock(rps=rps, burst=mock_burst, latency_ms=latency_ms)

    return {
        1: Scenario(1, "limit 20 requests/s, one deployment", (Deployment(limited(20), 1200, "20/s"),), 20),
        2: Scenario(
            2,
            "20% 503 + 5% 429 (Retry-After 1 s), no rate limit",
            (Deployment(Mock(latency_ms=latency_ms, fail_503=0.2, fail_429=0.05), None, "flaky"),),
            10,
            # a line fails only if all its attempts fail: 0.25^10 ~ 1e-6 per line; with the
            # default 4 attempts 0.25^4 ~ 0.4%, about 8 lines in 2,000
            {"RR_RETRY_ATTEMPTS": "10"},
        ),
        3: Scenario(
            3,
            "two deployments of one model, 10 and 30 requests/s",
            (Deployment(limited(10), 600, "10/s"), Deployment(limited(30), 1800, "30/s")),
            40,
        ),
        4: Scenario(
            4,
            "two deployments, the first down (all 503), the second healthy",
            (
                Deployment(Mock(latency_ms=latency_ms, down=True), 3000, "down"),
                Deployment(Mock(latency_ms=latency_ms), 3000, "healthy"),
            ),
            50,
        ),
    }


# -- processes ------------------------------------------------------------------------------


def clean_env(overrides: dict[str, str]) -> dict[str, str]:
    """This environment without RR_*, REDIS_URL or Cohere settings, plus ``overrides``."""
    drop = ("COHERE_API_KEY", "CO_API_KEY", "COHERE_API_BASE", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RR_") and k not in drop}
    return {**env, **overrides}


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]


class Children:
    """Every process this run started; ``stop_all`` ends them (by pid, never by name)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[Child] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        log = self.logs / f"{name}.log"
        with log.open("ab") as handle:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        child = Child(name, argv, process, log)
        self.running.append(child)
        return child

    def stop(self, child: Child, timeout: float = STOP_SECONDS) -> int:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if child in self.running:
            self.running.remove(child)
        return child.process.returncode

    def stop_all(self) -> None:
        for child in list(self.running):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in list(self.running):
            self.stop(child)


def run(argv: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """Run a command to completion; its output, or BenchError when it fails."""
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{shlex.join(argv)} did not finish in {timeout:g}s") from exc
    if done.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def shown(arg: str) -> str:
    """An argument as a reader would type it: ``python``, paths under the repo relative."""
    if arg == sys.executable:
        return "python"
    return os.path.relpath(arg, ROOT) if arg.startswith(f"{ROOT}{os.sep}") else arg


def command_line(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    prefix = " ".join(f"{k}={shlex.quote(shown(v))}" for k, v in (env or {}).items())
    return f"{prefix} {shlex.join(shown(a) for a in argv)}".strip()


@dataclass
class RunningMock:
    deployment: Deployment
    child: Child
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_mock(children: Children, name: str, deployment: Deployment, seed: int) -> RunningMock:
    argv = [sys.executable, str(MOCK), "--port", "0", "--api-key", API_KEY, *deployment.mock.argv(seed)]
    child = children.start(name, argv, clean_env({}))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if found := re.search(r"listening on http://127\.0\.0\.1:(\d+)", child.tail()):
            return RunningMock(deployment, child, int(found[1]))
        if child.process.poll() is not None:
            break
        time.sleep(0.05)
    raise BenchError(f"mock provider {name} did not start:\n{child.tail()}")


def mock_stats(mock: RunningMock) -> dict[str, Any]:
    try:
        response = httpx.get(f"{mock.base_url}/stats", params={"events": "1"}, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise BenchError(f"cannot read {mock.base_url}/stats: {exc}") from exc
    stats: dict[str, Any] = response.json()
    return stats


# -- data -----------------------------------------------------------------------------------


def write_dataset(path: Path, lines: int, model: str, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("wb") as handle:
        for n in range(lines):
            documents = [" ".join(rng.choices(WORDS, k=rng.randint(6, 14))) for _ in range(rng.randint(3, 8))]
            line: dict[str, Any] = {
                "id": f"q{n}",
                "query": " ".join(rng.choices(WORDS, k=rng.randint(2, 4))),
                "documents": documents,
                "model": model,
            }
            if n % 4 == 0:
                line["top_n"] = 2
            handle.write(orjson.dumps(line) + b"\n")
    return path


def write_config(path: Path, model: str, mocks: Sequence[RunningMock]) -> Path:
    entries = []
    for mock in mocks:
        params: dict[str, Any] = {"model": WIRE_MODEL, "api_key": API_KEY, "api_base": mock.base_url}
        if mock.deployment.rpm:
            params["rpm"] = mock.deployment.rpm
        entries.append({"model_name": model, "litellm_params": params})
    path.write_text(yaml.safe_dump({"model_list": entries}, sort_keys=False))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


# -- one scenario ---------------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: Scenario
    lines: int
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    stats: list[dict[str, Any]]
    """One per deployment, in model-list order."""
    labels: list[str]
    wall: float
    commands: list[str]
    scripts: int
    """Lua script calls in Redis while the workers ran."""
    load: tuple[float, float]
    """1-minute load average when the workers started and when the batch finished."""
    notes: list[str] = field(default_factory=list)


@dataclass
class Row:
    figure: str
    value: str
    target: str = ""
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "MISS")


def wait_for_batch(
    redis_url: str, batch: str, total: int, workers: Sequence[Child], timeout: float
) -> tuple[int, int]:
    """Poll the batch counters (one HMGET, cheap) until every line has a record."""
    client = sync_redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            counts = cast(list[bytes | None], client.hmget(keys.batch(batch), ["succeeded", "failed"]))
            succeeded, failed = (int(v or 0) for v in counts)
            if succeeded + failed >= total:
                return succeeded, failed
            for worker in workers:
                if worker.process.poll() is not None:
                    raise BenchError(
                        f"{worker.name} exited {worker.process.returncode} with "
                        f"{total - succeeded - failed} lines pending:\n{worker.tail()}"
                    )
            if time.monotonic() > deadline:
                raise BenchError(
                    f"batch {batch} not finished after {timeout:.0f}s: {succeeded} succeeded, "
                    f"{failed} failed, {total - succeeded - failed} pending"
                )
            time.sleep(POLL_SECONDS)
    finally:
        client.close()


def flush(redis_url: str) -> None:
    """Empty Redis and zero its command statistics."""
    client = sync_redis.Redis.from_url(redis_url)
    try:
        client.flushall()
        client.config_resetstat()
    finally:
        client.close()


def script_calls(redis_url: str) -> int:
    """Lua script runs since the last flush (the gate's acquire and release, record writes)."""
    client = sync_redis.Redis.from_url(redis_url)
    try:
        stats = cast(dict[str, dict[str, int]], client.info("commandstats"))
    finally:
        client.close()
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


def check_exactly_once(dataset: Path, results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
    """Every dataset id appears exactly once over results + errors, and every error is final."""
    expected = [orjson.loads(raw)["id"] for raw in dataset.read_bytes().splitlines() if raw.strip()]
    seen = Counter(record["id"] for record in [*results, *errors])
    missing = [i for i in expected if i not in seen]
    doubled = [i for i, n in seen.items() if n > 1]
    unknown = sorted(set(seen) - set(expected))
    unfinished = [r["id"] for r in errors if r.get("error", {}).get("code") in ("queued", "running", "lost")]
    problems = []
    if missing:
        problems.append(f"{len(missing)} lines without a record (e.g. {missing[:5]})")
    if doubled:
        problems.append(f"{len(doubled)} lines with more than one record (e.g. {doubled[:5]})")
    if unknown:
        problems.append(f"{len(unknown)} records for ids not in the dataset (e.g. {unknown[:5]})")
    if unfinished:
        problems.append(f"{len(unfinished)} lines exported as unfinished (e.g. {unfinished[:5]})")
    if problems:
        raise BenchError("exactly-once check failed: " + "; ".join(problems))


def run_scenario(
    scenario: Scenario, args: argparse.Namespace, redis_url: str, work: Path, children: Children
) -> Outcome:
    n = scenario.number
    model, batch = f"bench-s{n}", f"ratelimit-s{n}"
    flush(redis_url)
    mocks = [
        start_mock(children, f"s{n}-mock{i}", d, args.seed + i) for i, d in enumerate(scenario.deployments)
    ]
    config = write_config(work / f"s{n}-config.yaml", model, mocks)
    dataset = write_dataset(work / f"s{n}.jsonl", args.lines, model, args.seed + 100 * n)
    commands = [command_line(m.child.argv) for m in mocks]

    enqueue = [sys.executable, str(ROOT / "enqueue.py"), str(dataset), "--config", str(config)]
    enqueue += ["--redis-url", redis_url, "--batch", batch, "--no-progress"]
    commands.append(command_line(enqueue))
    output = run(enqueue, clean_env({}))
    if not (found := ENQUEUED.search(output)) or int(found[1]) != args.lines:
        raise BenchError(f"expected enqueue.py to enqueue {args.lines} lines; it said:\n{output}")

    worker_env = {
        "REDIS_URL": redis_url,
        "RR_CONFIG": str(config),
        "RR_MAX_JOBS": str(args.max_jobs),
        "RR_SHUTDOWN_GRACE": "5",
        **scenario.worker_env,
        **dict(item.split("=", 1) for item in args.worker_env),
    }
    started, load_before = time.monotonic(), os.getloadavg()[0]
    workers = [
        children.start(f"s{n}-worker{i}", [sys.executable, str(ROOT / "worker.py")], clean_env(worker_env))
        for i in range(args.workers)
    ]
    commands.append(f"{command_line(workers[0].argv, worker_env)}   (x{args.workers})")
    # generous: a scenario that misses its targets badly should still finish and be reported
    timeout = args.timeout_scale * (120 + 6 * args.lines / scenario.nominal_rate)
    wait_for_batch(redis_url, batch, args.lines, workers, timeout)
    wall = time.monotonic() - started
    load = (load_before, os.getloadavg()[0])
    scripts = script_calls(redis_url)

    status_cmd = [sys.executable, str(ROOT / "batch.py"), "--redis-url", redis_url, "status", batch, "--json"]
    status = orjson.loads(run(status_cmd, clean_env({})))
    commands.append(command_line(status_cmd))
    if not status.get("finished") or status.get("total") != args.lines:
        raise BenchError(f"batch.py status does not say finished with {args.lines} lines: {status}")
    notes = []
    for worker in workers:
        if (code := children.stop(worker)) != 0:
            notes.append(f"{worker.name} exited {code} on SIGTERM")
        if (tracebacks := worker.tail(10**7).count("Traceback")) > 0:
            notes.append(f"{worker.name} logged {tracebacks} tracebacks (see {worker.log})")

    results_path, errors_path = work / f"s{n}.results.jsonl", work / f"s{n}.errors.jsonl"
    export = [sys.executable, str(ROOT / "batch.py"), "--redis-url", redis_url, "results", batch]
    export += ["--output", str(results_path), "--errors", str(errors_path)]
    run(export, clean_env({}))
    commands.append(command_line(export))
    stats = [mock_stats(m) for m in mocks]
    for mock, stat in zip(mocks, stats, strict=True):
        (work / f"{mock.child.name}.stats.json").write_bytes(orjson.dumps(stat))
    for mock in mocks:
        children.stop(mock.child)
    results, errors = read_jsonl(results_path), read_jsonl(errors_path)
    check_exactly_once(dataset, results, errors)
    labels = [f"{model}#{i}" for i in range(len(mocks))]
    return Outcome(scenario, args.lines, results, errors, stats, labels, wall, commands, scripts, load, notes)


# -- figures --------------------------------------------------------------------------------


def pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def span(stats: Sequence[dict[str, Any]]) -> float:
    firsts = [s["first_request"] for s in stats if s["first_request"] is not None]
    lasts = [s["last_request"] for s in stats if s["last_request"] is not None]
    return max(lasts) - min(firsts) if firsts and lasts else 0.0


def attempts_row(outcome: Outcome) -> Row:
    attempts = [r.get("attempts", 1) for r in outcome.results] or [0]
    tries = Counter(r.get("job_try", 1) for r in outcome.results)
    deferred = sum(count for job_try, count in tries.items() if job_try > 1)
    value = f"mean {statistics.fmean(attempts):.3f}, max {max(attempts)}; {deferred} lines ran >1 arq try"
    return Row("HTTP attempts per succeeded line", value)


def limit_rows(outcome: Outcome, limit: float, rate_target: float) -> list[Row]:
    stats = outcome.stats
    requests = sum(s["requests"] for s in stats)
    violations = sum(s["violations_429"] for s in stats)
    seconds = span(stats)
    rate = len(outcome.results) / seconds if seconds else 0.0
    return [
        Row(
            "achieved rate (succeeded lines / first..last request)",
            f"{rate:.2f}/s over {seconds:.1f}s = {pct(rate, limit):.1f}% of {limit:g}/s",
            f">= {rate_target:g}%",
            pct(rate, limit) >= rate_target,
        ),
        Row(
            "429 limit violations / requests",
            f"{violations} / {requests} = {pct(violations, requests):.2f}%",
            "<= 0.5%" if outcome.scenario.number == 1 else "",
            pct(violations, requests) <= 0.5 if outcome.scenario.number == 1 else None,
        ),
    ]


def all_succeed_row(outcome: Outcome) -> Row:
    codes = Counter(e.get("error", {}).get("code") for e in outcome.errors)
    failed = ", ".join(f"{code} {n}" for code, n in codes.most_common()) or "none failed"
    return Row(
        "lines succeeded",
        f"{len(outcome.results)} / {outcome.lines} ({failed})",
        "all",
        len(outcome.results) == outcome.lines,
    )


def counts_row(stats: dict[str, Any], label: str) -> Row:
    fields = (
        ("requests", "requests"),
        ("2xx", "ok_2xx"),
        ("429 violations", "violations_429"),
        ("429 injected", "injected_429"),
        ("503 injected", "injected_503"),
        ("503 down", "down_503"),
    )
    value = ", ".join(f"{name} {stats[key]}" for name, key in fields if stats[key] or key == "requests")
    return Row(f"provider {label}", value)


def served(outcome: Outcome) -> Counter[str]:
    return Counter(str(r.get("deployment")) for r in outcome.results)


def figures(outcome: Outcome) -> list[Row]:
    sc, stats = outcome.scenario, outcome.stats
    rows: list[Row] = []
    if sc.number == 1:
        rows += limit_rows(outcome, 20, 95)
        rows.append(all_succeed_row(outcome))
    elif sc.number == 2:
        rows.append(all_succeed_row(outcome))
        rows.append(Row("rate (no limit)", f"{len(outcome.results) / span(stats):.1f} lines/s"))
    elif sc.number == 3:
        rows += limit_rows(outcome, 40, 90)
        rows.append(all_succeed_row(outcome))
        by = served(outcome)
        for label, deployment in zip(outcome.labels, sc.deployments, strict=True):
            share = pct(by[label], len(outcome.results))
            expected = pct(deployment.mock.rps, sum(d.mock.rps for d in sc.deployments))
            value = f"{by[label]} lines = {share:.1f}% (its share of the limit: {expected:.0f}%)"
            rows.append(Row(f"share of {label} ({deployment.role})", value))
    else:
        rows.append(all_succeed_row(outcome))
        by = served(outcome)
        down, healthy = outcome.labels
        rows.append(
            Row(
                "lines served: healthy / down",
                f"{by[healthy]} / {by[down]}",
                "all via healthy",
                by[healthy] == outcome.lines and by[down] == 0,
            )
        )
        rows.append(Row("requests the down deployment received", str(stats[0]["requests"])))
    rows.append(attempts_row(outcome))
    for label, deployment, stat in zip(outcome.labels, sc.deployments, stats, strict=True):
        rows.append(counts_row(stat, f"{label} ({deployment.role})"))
    per_line = outcome.scripts / outcome.lines
    rows.append(Row("Redis script calls (gate, records)", f"{outcome.scripts} = {per_line:.1f} per line"))
    before, after = outcome.load
    value = f"{outcome.wall:.1f}s (load average {before:.2f} -> {after:.2f} on {os.cpu_count()} CPUs)"
    rows.append(Row("wall time, workers started .. batch finished", value))
    return rows


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timing_note(stats: dict[str, Any]) -> str | None:
    """When requests reached a provider: pauses (the gate's cool-downs: 1 s after a 429 with
    ``Retry-After: 1``, 5 s after 3 failures in a row), and for a rate-limited provider the
    spacing of admitted requests and how soon after the previous one each violation came."""
    config, events = stats["config"], stats.get("events") or []
    if config["down"] or len(events) < 3:
        return None
    pauses = [
        after - before for (before, _), (after, _) in itertools.pairwise(events) if after - before > 0.5
    ]
    buckets = [(0.5, 2.0, "0.5-2 s"), (2.0, 4.0, "2-4 s"), (4.0, math.inf, ">= 4 s")]
    described = ", ".join(
        f"{len(found)} of {name} ({sum(found):.1f}s)"
        for low, high, name in buckets
        if (found := [p for p in pauses if low <= p < high])
    )
    active = events[-1][0] - events[0][0] - sum(pauses)
    parts = [
        f"pauses > 0.5 s between requests: {described or 'none'}; "
        f"{len(events) / active if active > 0 else 0:.1f} requests/s outside them"
    ]
    if config["rps"] and not config["fail_429"]:
        admitted = [t for t, status in events if status != 429]
        gaps = [(b - a) * 1000 for a, b in itertools.pairwise(admitted)]
        parts.append(
            f"admitted requests arrived {quantile(gaps, 0.5):.1f} ms apart (median; p1 "
            f"{quantile(gaps, 0.01):.1f}, p99 {quantile(gaps, 0.99):.1f}; limit interval "
            f"{1000 / config['rps']:.1f} ms)"
        )
        early, previous = [], None
        for t, status in events:
            if status != 429:
                previous = t
            elif previous is not None:
                early.append((t - previous) * 1000)
        if early:
            first = events[0][0]
            when = [f"+{t - first:.1f}s" for t, status in events if status == 429]
            shown = ", ".join(when[:6]) + (f", ... ({len(when)} in all)" if len(when) > 6 else "")
            parts.append(
                f"each violation came {quantile(early, 0.5):.1f} ms (median; min {min(early):.1f}, max "
                f"{max(early):.1f}) after the admitted request before it; violations at {shown} "
                "from the first request"
            )
    return "; ".join(parts)


def report(outcome: Outcome) -> list[Row]:
    rows = figures(outcome)
    print(f"\nscenario {outcome.scenario.number}: {outcome.scenario.title} ({outcome.lines} lines)")
    for command in outcome.commands:
        print(f"  $ {command}")
    width = max(len(r.figure) for r in rows)
    for row in rows:
        target = f"  [target {row.target}]" if row.target else ""
        print(f"  {row.figure:<{width}}  {row.value}{target}  {row.verdict}".rstrip())
    for stat, label in zip(outcome.stats, outcome.labels, strict=True):
        if timing := timing_note(stat):
            print(f"  note: {label}: {timing}")
    for note in outcome.notes:
        print(f"  note: {note}")
    print("  check: every line ended as exactly one result or error  ok")
    return rows


# -- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--scenario", type=int, action="append", choices=[1, 2, 3, 4], help="repeatable")
    parser.add_argument("--lines", type=int, default=2000, help="lines per scenario")
    parser.add_argument("--workers", type=int, default=2, help="worker.py processes")
    parser.add_argument("--max-jobs", type=int, default=16, help="RR_MAX_JOBS per worker")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="mock answer time")
    parser.add_argument("--mock-burst", type=float, default=2.0, help="requests the mocks allow at once")
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="multiply the time bounds")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for worker.py (repeatable), e.g. RR_POLL_DELAY=0.02",
    )
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out-dir", type=Path, help="work dir parent (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, results)")
    args = parser.parse_args()
    if args.lines < 1 or args.workers < 1 or args.max_jobs < 1:
        parser.error("--lines, --workers and --max-jobs must be positive")
    if bad := [item for item in args.worker_env if not re.match(r"^[A-Z_][A-Z0-9_]*=", item)]:
        parser.error(f"--worker-env wants NAME=VALUE, got {bad[0]!r}")
    return args


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"signal {signum}")


@dataclass
class Summary:
    rows: list[tuple[int, Row]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        yield "\nsummary"
        width = max([len(r.figure) for _, r in self.rows] + [10])
        for number, row in self.rows:
            if row.ok is not None:
                yield f"  {number}  {row.figure:<{width}}  {row.value}  [target {row.target}]  {row.verdict}"
        for number, message in self.errors:
            yield f"  {number}  ERROR: {message.splitlines()[0]}"


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    bench_started = time.monotonic()
    command = shlex.join(["python", os.path.relpath(sys.argv[0], Path.cwd()), *sys.argv[1:]])
    print(f"command  {command}")
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ratelimit-bench-", dir=args.out_dir)).resolve()
    (work / "logs").mkdir()
    children = Children(work / "logs")
    server = EmbeddedRedis(work / "redis", persist=False)
    summary = Summary()
    chosen = sorted(set(args.scenario or [1, 2, 3, 4]))
    try:
        server.start()
        pid = server.server_pid or "?"
        print(f"redis    {server.url} (pid {pid}); {os.cpu_count()} CPUs; work dir {work}")
        print(
            f"setup    {args.workers} worker.py processes x RR_MAX_JOBS={args.max_jobs}; mock latency "
            f"{args.latency_ms:g} ms, burst {args.mock_burst:g}; {args.lines} lines per scenario"
        )
        table = scenarios(args.latency_ms, args.mock_burst)
        for number in chosen:
            try:
                outcome = run_scenario(table[number], args, server.url, work, children)
            except BenchError as exc:
                summary.errors.append((number, str(exc)))
                print(f"\nscenario {number}: ERROR: {exc}")
                continue
            finally:
                children.stop_all()
            summary.rows += [(number, row) for row in report(outcome)]
    except (KeyboardInterrupt, Interrupted) as exc:
        summary.errors.append((0, f"interrupted ({exc or 'SIGINT'})"))
    except Exception as exc:  # anything else is an error of the run too: report it, clean up
        summary.errors.append((0, f"{type(exc).__name__}: {exc}"))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        children.stop_all()
        server.stop()
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for line in summary.lines():
        print(line)
    print(f"\ncommand  {command}")
    print(f"total    {time.monotonic() - bench_started:.1f}s; {len(summary.errors)} errors")
    return 1 if summary.errors else 0


if __name__ == "__main__":
    sys.exit(main())
