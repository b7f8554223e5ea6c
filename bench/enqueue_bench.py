"""Enqueue benchmark: `python enqueue.py FILE --redis-url URL` against one awaited
arq ``enqueue_job`` per line, on the same real Redis, plus the CLI's peak RSS.

    python bench/enqueue_bench.py [--lines 100000] [--rss-lines 1000000] [--skip-rss]

Prints PASS/MISS per target (>= 5x the baseline's lines/s, peak RSS < 200 MB);
exits non-zero only when something breaks (a run fails or leaves the wrong job count).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from jobs import keys, preflight
from jobs.connection import open_pool
from jobs.embedded import EmbeddedRedis
from jobs.identity import run_identity
from jobs.queue import enqueue_lines, register_batch
from jobs.settings import RunnerSettings
from jobs.validation import ModelCheck, validate_file

ROOT = Path(__file__).resolve().parent.parent
SPEED_TARGET = 5.0
RSS_TARGET_MB = 200.0
VOCABULARY = (
    "solar wind river mountain coffee python redis ranking query search index vector lexical volcano "
    "marathon engine battery network cloud garden music planet ocean forest city bridge lamp paper"
)
WORDS = VOCABULARY.split()


class BenchError(Exception):
    pass


@dataclass
class Child:
    output: str
    wall: float
    cpu: float  # user + system seconds
    rss_mb: float  # peak RSS (ru_maxrss of this child alone, via wait4)


@dataclass
class CliRun:
    child: Child
    enqueue_seconds: float  # as printed by the CLI ("enqueued N new lines in X s")


def write_dataset(path: Path, lines: int, docs: int, seed: int) -> Path:
    """Deterministic dataset, written one line at a time: mixed id types, some object
    documents, top_n and metadata on some lines."""
    rng = random.Random(seed)
    sentences = [" ".join(rng.choices(WORDS, k=rng.randint(5, 12))) for _ in range(4096)]
    with path.open("wb") as handle:
        for n in range(lines):
            texts: list[object] = list(rng.choices(sentences, k=docs))
            if n % 7 == 0:
                texts = [{"id": f"d{k}", "text": t} for k, t in enumerate(texts)]
            line: dict[str, object] = {
                "id": n if n % 10 == 0 else f"q{n}",
                "query": " ".join(rng.choices(WORDS, k=rng.randint(2, 5))),
                "documents": texts,
            }
            if n % 5 == 0:
                line["top_n"] = rng.randint(1, docs)
            if n % 3 == 0:
                line["metadata"] = {"topic": rng.choice(WORDS), "n": n}
            handle.write(orjson.dumps(line) + b"\n")
    return path


def run_measured(argv: list[str], cwd: Path, *, bytecode: bool = True) -> Child:
    """Run a child to completion and measure it; BenchError if it fails.  With ``bytecode`` the
    child caches its modules' bytecode as any installed or checked-out copy does, even where the
    environment says ``PYTHONDONTWRITEBYTECODE`` (set on the shared benchmark machine, where it
    made every start-up compile the project's ~80 modules again: 0.15-0.3 s)."""
    dropped = ("REDIS_URL", "PYTHONDONTWRITEBYTECODE") if bytecode else ("REDIS_URL",)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RR_") and k not in dropped}
    out = cwd / "child.out"
    started = time.perf_counter()
    with out.open("wb") as handle:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out.read_text()
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}:\n{text}")
    return Child(text, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)  # KiB on Linux


def run_cli(path: Path, url: str, batch: str, work: Path, lines: int, *, bytecode: bool = True) -> CliRun:
    argv = [sys.executable, str(ROOT / "enqueue.py"), str(path), "--redis-url", url]
    child = run_measured([*argv, "--batch", batch, "--no-progress"], work, bytecode=bytecode)
    match = re.search(r"enqueued (\d+) new lines in ([\d.]+)s", child.output)
    if not match or int(match[1]) != lines:
        raise BenchError(f"expected enqueue.py to enqueue {lines} lines; it said:\n{child.output}")
    return CliRun(child, float(match[2]))


async def queued_then_flush(url: str) -> int:
    pool = await open_pool(url)
    try:
        count = int(await pool.zcard(keys.QUEUE))
        await pool.flushall()
        return count
    finally:
        await pool.aclose()


async def in_process(path: Path, url: str, batch: str) -> tuple[float, float]:
    """The CLI's two phases timed separately: (validation seconds, enqueue seconds)."""
    settings = RunnerSettings(redis_url=url)
    started = time.perf_counter()
    report = validate_file(path, ModelCheck(), lambda error: None)
    validated = time.perf_counter()
    if not report.ok:
        raise BenchError(f"{path}: {report.invalid_lines} invalid lines")
    pool = await open_pool(url)
    try:
        model = settings.default_model
        identity = run_identity(path, report, model, None, {})
        await register_batch(pool, batch, identity, str(path), settings.result_ttl_ms)
        lines = preflight.valid_lines(path, report)
        await enqueue_lines(
            pool,
            batch,
            lines,
            default_model=model,
            run=identity.digest,
            job_expiry_ms=settings.job_expiry_ms,
            result_ttl_ms=settings.result_ttl_ms,
        )
    finally:
        await pool.aclose()
    return validated - started, time.perf_counter() - validated


async def baseline(path: Path, url: str, batch: str) -> float:
    """One awaited arq enqueue_job per line (read, orjson.loads, enqueue)."""
    pool = await open_pool(url)
    try:
        started = time.perf_counter()
        with path.open("rb") as handle:
            for raw in handle:
                payload = orjson.loads(raw)
                job_id = f"{batch}:{payload['id']}"
                await pool.enqueue_job(keys.JOB_FUNCTION, payload, _job_id=job_id, _queue_name=keys.QUEUE)
        return time.perf_counter() - started
    finally:
        await pool.aclose()


def check_queue(url: str, expected: int, what: str) -> str:
    """The run left exactly ``expected`` jobs queued; flushes Redis for the next run."""
    count = asyncio.run(queued_then_flush(url))
    if count != expected:
        raise BenchError(f"{what}: ZCARD {keys.QUEUE} = {count}, expected {expected}")
    return f"  check  {what}: ZCARD {keys.QUEUE} = {count:,} == {expected:,}  ok"


def describe(path: Path, lines: int, docs: int, started: float) -> str:
    size = path.stat().st_size / 2**20
    took = time.perf_counter() - started
    return f"dataset  {lines:,} lines, {docs} docs/line, {size:.1f} MB, written in {took:.1f}s"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def bench(args: argparse.Namespace, work: Path, url: str) -> None:
    n = args.lines
    t0 = time.perf_counter()
    data = write_dataset(work / "bench.jsonl", n, args.docs, args.seed)
    print(describe(data, n, args.docs, t0))
    cli = run_cli(data, url, "bench-cli", work, n)
    checks = [check_queue(url, n, "enqueue.py CLI")]
    validate_s, enqueue_s = asyncio.run(in_process(data, url, "bench-inproc"))
    checks.append(check_queue(url, n, "in-process validate+enqueue"))
    base_s = asyncio.run(baseline(data, url, "bench-base"))
    checks.append(check_queue(url, n, "baseline enqueue_job loop"))

    rows = [
        ("enqueue.py CLI, end to end (wall)", cli.child.wall),
        ("  its enqueue step (as it prints)", cli.enqueue_seconds),
        ("in-process validate_file", validate_s),
        ("in-process register+enqueue_lines", enqueue_s),
        ("in-process both phases", validate_s + enqueue_s),
        ("baseline: await enqueue_job per line", base_s),
    ]
    print(f"\n{'path':<40} {'lines':>9} {'seconds':>9} {'lines/s':>10} {'vs base':>8}")
    for label, seconds in rows:
        seconds = max(seconds, 1e-6)
        print(f"{label:<40} {n:>9,} {seconds:>9.2f} {n / seconds:>10,.0f} {base_s / seconds:>7.1f}x")
    print(f"(enqueue.py CPU time, user+sys: {cli.child.cpu:.2f}s; the rest of its wall time waits on Redis)")
    print("\n".join(["", *checks]))
    ratio = base_s / cli.child.wall
    target = f"target >= {SPEED_TARGET:g}x"
    print(f"\nspeed  CLI end to end vs baseline: {ratio:.1f}x ({target})  {verdict(ratio >= SPEED_TARGET)}")
    print(f"rss    enqueue.py peak RSS, {n:,} lines: {cli.child.rss_mb:.1f} MB")

    if args.skip_rss:
        print("rss    1M-line run skipped (--skip-rss)")
        return
    data.unlink()
    t0 = time.perf_counter()
    big = write_dataset(work / "rss.jsonl", args.rss_lines, args.rss_docs, args.seed + 1)
    print(f"\n{describe(big, args.rss_lines, args.rss_docs, t0)}")
    floor_mb = run_measured([sys.executable, "-c", "import enqueue"], work).rss_mb
    rss = run_cli(big, url, "rss", work, args.rss_lines)
    print(check_queue(url, args.rss_lines, "enqueue.py CLI, RSS run"))
    m, peak, wall = args.rss_lines, rss.child.rss_mb, rss.child.wall
    ok = verdict(peak < RSS_TARGET_MB)
    print(f"rss    enqueue.py peak RSS, {m:,} lines: {peak:.1f} MB (target < {RSS_TARGET_MB:g} MB)  {ok}")
    print(f"rss    for scale: {n:,} lines {cli.child.rss_mb:.1f} MB; just `import enqueue` {floor_mb:.1f} MB")
    print(f"       (run: {wall:.1f}s wall, {m / wall:,.0f} lines/s, enqueue step {rss.enqueue_seconds}s)")


def parse_args() -> argparse.Namespace:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--lines", type=int, default=100_000, help="lines in the speed dataset")
    parser.add_argument("--docs", type=int, default=10, help="documents per line in the speed dataset")
    parser.add_argument("--rss-lines", type=int, default=1_000_000, help="lines in the RSS dataset")
    parser.add_argument("--rss-docs", type=int, default=5, help="documents per line in the RSS dataset")
    parser.add_argument("--skip-rss", action="store_true", help="skip the large RSS run")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out-dir", type=Path, help="work dir parent (e.g. bench/out)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    started = time.perf_counter()
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="enqueue-bench-", dir=args.out_dir)).resolve()
    server = EmbeddedRedis(work / "redis", persist=False)
    try:
        server.start()
        print(f"redis    {server.url} (pid {server.server_pid or '?'})")
        bench(args, work, server.url)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
