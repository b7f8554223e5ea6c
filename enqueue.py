"""rerank-runner: re-rank every line of a JSONL dataset through a rerank model.

    python enqueue.py dataset.jsonl

validates the whole file first (every bad line is reported with its line number
and field; nothing is enqueued unless --skip-invalid), then enqueues one job per
line into Redis.  Job ids are BATCH:LINE-ID, so running the same command again
only adds lines that are neither queued nor done (a resume).

Without REDIS_URL / --redis-url it runs everything on this machine: it starts a
Redis server (state in --state-dir), runs workers in-process until the batch is
done, writes the results file and stops what it started.  With a Redis URL it
enqueues and prints the commands to start workers, follow progress and export
results; --wait follows the batch and exports when it finishes.

The default model is local/bm25, a key-free lexical reranker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from jobs.batches import export, export_to_files
from jobs.connection import (
    DEFAULT_STATE_DIR,
    EXIT_REDIS_UNAVAILABLE,
    Connection,
    RedisUnavailableError,
    connect,
    redacted,
)
from jobs.dataset import DatasetLine, LineError, read_lines, trusted_line
from jobs.progress import wait_for_batch
from jobs.queue import EnqueueCounts, enqueue_lines, register_batch
from jobs.redis_url import RedisUrlError, redis_settings
from jobs.settings import RunnerSettings, SettingsError, load_settings, model_list
from jobs.validation import ModelCheck, ValidationReport, fingerprint, validate_file
from providers.errors import ConfigurationError
from worker import local_run, run_local_workers

BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ERRORS_SHOWN = 100
PROG = "python enqueue.py"


def default_batch_name(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).strip("-.") or "batch"
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{stem[:80]}-{digest}"


def parse_args(argv: list[str] | None, prog: str = PROG) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", type=Path, help="JSONL file: one query, its id and its documents per line")
    parser.add_argument(
        "--model", help="model for lines without one (default: $RR_DEFAULT_MODEL or local/bm25)"
    )
    parser.add_argument(
        "--batch", help="batch name (default: file name + hash of its path, stable across runs)"
    )
    parser.add_argument("--config", type=Path, help="LiteLLM-style config.yaml whose model_list names models")
    parser.add_argument("--redis-url", help="Redis to enqueue into (default: $REDIS_URL; none: run locally)")
    parser.add_argument("--wait", action="store_true", help="with a Redis URL: follow the batch, then export")
    parser.add_argument("--output", type=Path, help="results JSONL (default: results/BATCH.jsonl)")
    parser.add_argument(
        "--errors", type=Path, help="failed lines JSONL (default: results/BATCH.errors.jsonl)"
    )
    parser.add_argument(
        "--rejects", type=Path, help="invalid lines JSONL (default: results/BATCH.rejects.jsonl)"
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="enqueue the valid lines even if some are bad"
    )
    parser.add_argument("--check", action="store_true", help="validate the file and stop")
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="embedded Redis data (local mode)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


@dataclass
class Paths:
    results: Path
    errors: Path
    rejects: Path


class RejectLog:
    """Prints the first bad lines and writes all of them to the rejects file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown = 0
        self.handle: BinaryIO | None = None

    def __call__(self, error: LineError) -> None:
        for message in error.describe():
            if self.shown < ERRORS_SHOWN:
                print(message, file=sys.stderr)
            self.shown += 1
        if self.handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self.path.open("wb")
        self.handle.write(orjson.dumps(error.to_json()) + b"\n")

    def close(self) -> None:
        if self.handle:
            self.handle.close()
        if self.shown > ERRORS_SHOWN:
            print(f"... {self.shown - ERRORS_SHOWN} more problems not shown", file=sys.stderr)


def valid_lines(path: Path, report: ValidationReport) -> Iterator[DatasetLine]:
    """The lines validation accepted, rebuilt without checking them a second time."""
    for line_no, raw in read_lines(path):
        if not report.rejected(line_no):
            yield trusted_line(line_no, raw)


@dataclass
class Run:
    """Everything one enqueue needs, decided before Redis is touched."""

    args: argparse.Namespace
    settings: RunnerSettings
    batch: str
    paths: Paths
    report: ValidationReport
    prog: str = PROG
    """How this command was run, so the next steps it prints are run the same way."""


def sibling(prog: str, command: str) -> str:
    """How to run another command the way this one was run (script or console script)."""
    return f"python {command}.py" if prog.startswith("python ") else f"rerank-runner {command}"


def print_next_steps(run: Run, conn: Connection) -> None:
    env = f"REDIS_URL={redacted(conn.url)} "
    worker, batches = sibling(run.prog, "worker"), sibling(run.prog, "batch")
    print(f"batch {run.batch}")
    print("next:")
    print(f"  start workers:    {env}{worker}")
    print(f"  follow progress:  {env}{batches} status {run.batch} --watch")
    print(f"  export results:   {env}{batches} results {run.batch} --output {run.paths.results}")


async def enqueue_and_follow(run: Run) -> int:
    args, settings, batch = run.args, run.settings, run.batch
    if fingerprint(args.dataset) != run.report.fingerprint:
        print(f"error: {args.dataset} changed since it was validated; nothing enqueued", file=sys.stderr)
        return 1
    async with connect(settings.redis_url, args.state_dir) as conn:
        await register_batch(
            conn.redis, batch, str(args.dataset.resolve()), settings.default_model, settings.result_ttl_ms
        )
        async with contextlib.AsyncExitStack() as local:
            if conn.embedded:
                await local.enter_async_context(local_run(conn.redis, batch))
            return await _enqueue_and_run(run, conn)


async def _enqueue_and_run(run: Run, conn: Connection) -> int:
    args, settings, batch, paths = run.args, run.settings, run.batch, run.paths
    started = time.monotonic()
    counts: EnqueueCounts = await enqueue_lines(
        conn.redis,
        batch,
        valid_lines(args.dataset, run.report),
        default_model=settings.default_model,
        job_expiry_ms=settings.job_expiry_ms,
        result_ttl_ms=settings.result_ttl_ms,
    )
    elapsed = time.monotonic() - started
    if fingerprint(args.dataset) != run.report.fingerprint:
        print(
            f"warning: {args.dataset} changed while it was being enqueued; lines read after the "
            "change were not validated. Run the same command again once it stops changing.",
            file=sys.stderr,
        )
    print(
        f"enqueued {counts.added} new lines in {elapsed:.1f}s; skipped {counts.skipped} "
        f"({counts.already_queued} already queued, {counts.already_done} already done)"
    )
    show = not args.no_progress
    if conn.embedded:
        print(f"batch {batch}: running locally (Redis state in {args.state_dir}/)")
        status = await run_local_workers(conn.url, conn.redis, settings, batch, show=show)
    elif args.wait:
        print_next_steps(run, conn)
        status = await wait_for_batch(conn.redis, batch, show=show)
    else:
        print_next_steps(run, conn)
        return 0
    results, errors = export_to_files(paths.results, paths.errors)
    with results, errors:
        exported = await export(conn.redis, batch, results, errors)
    rate = f", {status.rate:.1f} lines/s" if status.rate else ""
    print(
        f"done: {exported.succeeded} succeeded, {exported.failed} failed, "
        f"{exported.unfinished} unfinished{rate}\n"
        f"results: {paths.results}\nerrors:  {paths.errors}"
    )
    return 0 if exported.unfinished == 0 else 3


class UsageError(Exception):
    """A bad argument or input file, found before anything is read or enqueued (exit status 2)."""


def settings_from(args: argparse.Namespace) -> RunnerSettings:
    """Settings from the environment and the flags; raises UsageError (never echoing a value)."""
    given = {"redis_url": args.redis_url, "default_model": args.model, "config": args.config}
    try:
        settings = load_settings(**{name: value for name, value in given.items() if value})
        if settings.redis_url:
            redis_settings(settings.redis_url)
    except (SettingsError, RedisUrlError) as exc:
        raise UsageError(str(exc)) from None
    return settings


def check_arguments(args: argparse.Namespace, settings: RunnerSettings) -> tuple[str, ModelCheck]:
    """The batch name and the model names lines may use; raises UsageError."""
    if not args.dataset.is_file():
        raise UsageError(f"{args.dataset}: no such file")
    batch = args.batch or default_batch_name(args.dataset)
    if not BATCH_NAME.match(batch):
        raise UsageError(f"batch name {batch!r}: use letters, digits, '.', '_' or '-'")
    try:
        models = ModelCheck(model_list(settings, resolve_env=False).names())
    except ConfigurationError as exc:
        raise UsageError(exc.message) from exc
    if problem := models.problem(settings.default_model):
        raise UsageError(f"--model: {problem}")
    return batch, models


def paths_for(args: argparse.Namespace, batch: str) -> Paths:
    out = Path("results")
    return Paths(
        results=args.output or out / f"{batch}.jsonl",
        errors=args.errors or out / f"{batch}.errors.jsonl",
        rejects=args.rejects or out / f"{batch}.rejects.jsonl",
    )


def validate(dataset: Path, models: ModelCheck, paths: Paths) -> ValidationReport:
    rejects = RejectLog(paths.rejects)
    try:
        report = validate_file(dataset, models, rejects)
    finally:
        rejects.close()
    print(f"checked {report.lines} lines: {report.valid} valid, {report.invalid_lines} invalid")
    return report


def stop_before_enqueue(args: argparse.Namespace, report: ValidationReport, paths: Paths) -> int | None:
    """The exit status when validation says nothing is to be enqueued, else None."""
    if not report.ok:
        print(f"all problems written to {paths.rejects}", file=sys.stderr)
        if not args.skip_invalid:
            print("nothing enqueued; fix the lines above or pass --skip-invalid", file=sys.stderr)
            return 1
    if args.check:
        return 0 if report.ok else 1
    if report.valid == 0:
        print("error: no valid lines to enqueue", file=sys.stderr)
        return 1
    return None


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    try:
        settings = settings_from(args)
        batch, models = check_arguments(args, settings)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = paths_for(args, batch)
    report = validate(args.dataset, models, paths)
    if (status := stop_before_enqueue(args, report, paths)) is not None:
        return status
    try:
        return asyncio.run(enqueue_and_follow(Run(args, settings, batch, paths, report, prog)))
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except RedisUnavailableError as exc:
        print(f"error: {exc}; run the same command again to resume", file=sys.stderr)
        return EXIT_REDIS_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
