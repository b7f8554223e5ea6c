"""rerank-runner: re-rank every line of a JSONL dataset through a rerank model.

    python enqueue.py dataset.jsonl

validates the whole file first (every bad line is reported with its line number
and field; nothing is enqueued unless --skip-invalid), then enqueues one job per
line into Redis.  The batch is named after the file, the model and a hash of the
content (valid lines, what each model name resolves to), and job ids are
BATCH:LINE-ID: running the same command again only adds lines that are neither
queued nor done (a resume), while another model or an edited file is another
batch.  --dry-run prints what the run would send and cost, and stops.

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
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from jobs.batches import BatchBusyError, drop, export, export_to_files
from jobs.connection import (
    DEFAULT_STATE_DIR,
    EXIT_REDIS_UNAVAILABLE,
    Connection,
    RedisUnavailableError,
    connect,
    redacted,
)
from jobs.corpus import Corpus, CorpusError, load_corpus
from jobs.dataset import (
    MAX_DOCUMENT_BYTES,
    MAX_LINE_BYTES,
    DatasetLine,
)
from jobs.estimate import estimate, prices_from
from jobs.identity import LinesDigest, RunIdentity, default_batch_name, run_identity
from jobs.payload import line_payload, rerank_request
from jobs.preflight import (
    Paths,
    UsageError,
    check_arguments,
    paths_for,
    settings_from,
    stop_before_enqueue,
    valid_lines,
    validate,
)
from jobs.progress import wait_for_batch
from jobs.queue import BatchConflictError, EnqueueCounts, enqueue_lines, register_batch
from jobs.settings import RunnerSettings, model_list, provider_credentials
from jobs.validation import ValidationReport, fingerprint
from providers.deployment import Deployment
from providers.errors import ConfigurationError
from providers.registry import deployment_for
from providers.types import RerankRequest
from worker import local_run, run_local_workers

__all__ = [
    "PROG",
    "Run",
    "conflict_message",
    "dry_run",
    "enqueue_and_follow",
    "main",
    "parse_args",
    "print_next_steps",
    "register",
    "resolver",
    "sibling",
]

PROG = "python enqueue.py"


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
        "--batch",
        help="batch name (default: FILE-MODEL-HASH, HASH of the valid lines, models and settings: "
        "the same content is the same batch, a resume)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="when --batch names a batch holding other content: drop its records and start over",
    )
    parser.add_argument("--config", type=Path, help="LiteLLM-style config.yaml whose model_list names models")
    parser.add_argument(
        "--corpus",
        type=Path,
        help='documents given by id ({"id": "d7"}) are looked up here: JSONL {_id|id|docid, title?, text} '
        "(BEIR corpus.jsonl) or TSV (id, [title,] text)",
    )
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
        "--dry-run",
        action="store_true",
        help="validate, then print per model: lines, requests, estimated tokens, search units, "
        "requests the score cache saves and cost (model list prices); nothing is enqueued or sent",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="request every document even when the score cache has it (fresh scores refresh the cache)",
    )
    parser.add_argument(
        "--max-line-bytes",
        type=int,
        metavar="N",
        help=f"reject longer lines (default: $RR_MAX_LINE_BYTES or {MAX_LINE_BYTES})",
    )
    parser.add_argument(
        "--max-document-bytes",
        type=int,
        metavar="N",
        help=f"reject larger documents (default: $RR_MAX_DOCUMENT_BYTES or {MAX_DOCUMENT_BYTES})",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="embedded Redis data (local mode)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


@dataclass
class Run:
    """Everything one enqueue needs, decided before Redis is touched."""

    args: argparse.Namespace
    settings: RunnerSettings
    batch: str
    paths: Paths
    report: ValidationReport
    identity: RunIdentity
    prog: str = PROG
    corpus: Corpus | None = None
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


def conflict_message(run: Run, exc: BatchConflictError) -> str:
    why = "; ".join(run.identity.differences(exc.stored))
    return (
        f"error: batch {run.batch!r} already holds another run ({why}); nothing enqueued.\n"
        f"Pass --replace to drop its records and run this content under the same name, or choose "
        f"another --batch name (without --batch the name follows the content: "
        f"{default_batch_name(run.args.dataset, run.identity)})"
    )


async def register(run: Run, conn: Connection) -> int | None:
    """Create or resume the batch (dropping it first with --replace); an exit status when
    the name holds another run."""
    source = str(run.args.dataset.resolve())
    try:
        await register_batch(conn.redis, run.batch, run.identity, source, run.settings.result_ttl_ms)
        return None
    except BatchConflictError as exc:
        if not run.args.replace:
            print(conflict_message(run, exc), file=sys.stderr)
            return 2
    try:
        dropped = await drop(conn.redis, run.batch)
    except BatchBusyError as exc:
        print(f"error: {exc}; nothing enqueued", file=sys.stderr)
        return 2
    print(f"replaced batch {run.batch}: dropped its {dropped} lines and their records")
    await register_batch(conn.redis, run.batch, run.identity, source, run.settings.result_ttl_ms)
    return None


def resolver(settings: RunnerSettings, names: Iterable[str]) -> dict[str, tuple[list[Deployment], bool]]:
    """Each model name -> (its deployments, whether it has fallbacks), as a worker with this
    environment would resolve it (keys the environment lacks are not needed to plan)."""
    try:
        models = model_list(settings)
    except ConfigurationError:
        models = model_list(settings, resolve_env=False)
    credentials = provider_credentials()
    return {
        name: (
            models.deployments.get(name) or [deployment_for(name, credentials)],
            bool(models.fallbacks.get(name)),
        )
        for name in names
    }


async def dry_run(run: Run) -> int:
    args, settings = run.args, run.settings

    def planned() -> Iterator[tuple[DatasetLine, RerankRequest, str]]:
        for line in valid_lines(args.dataset, run.report, settings.max_line_bytes, run.corpus):
            model = line.model or settings.default_model
            yield line, rerank_request(line_payload(run.batch, line, model, run.identity.digest)), model

    resolve = resolver(settings, run.identity.models)
    prices = prices_from(settings.config)
    async with connect(settings.redis_url, args.state_dir) as conn:
        estimates = await estimate(None if args.no_cache else conn.redis, planned(), resolve, prices)
    print(f"dry run of batch {run.batch}: nothing enqueued, no provider called")
    for found in estimates:
        print("\n".join(found.describe()))
    return 0


async def enqueue_and_follow(run: Run) -> int:
    args, settings, batch = run.args, run.settings, run.batch
    if fingerprint(args.dataset) != run.report.fingerprint:
        print(f"error: {args.dataset} changed since it was validated; nothing enqueued", file=sys.stderr)
        return 1
    async with connect(settings.redis_url, args.state_dir) as conn:
        if (refused := await register(run, conn)) is not None:
            return refused
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
        valid_lines(args.dataset, run.report, settings.max_line_bytes, run.corpus),
        default_model=settings.default_model,
        run=run.identity.digest,
        no_cache=args.no_cache,
        job_expiry_ms=settings.job_expiry_ms,
        result_ttl_ms=settings.result_ttl_ms,
    )
    elapsed = time.monotonic() - started
    if fingerprint(args.dataset) != run.report.fingerprint:
        print(
            f"error: {args.dataset} changed while it was being enqueued; its lines no longer "
            f"match batch {batch}. Run the command again once the file stops changing "
            "(with --batch, add --replace).",
            file=sys.stderr,
        )
        return 1
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


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    try:
        settings = settings_from(args)
        models = check_arguments(args, settings)
        corpus = load_corpus(args.corpus) if args.corpus else None
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CorpusError as exc:
        print(f"error: --corpus {exc}", file=sys.stderr)
        return 2
    lines = LinesDigest()
    report, rejects = validate(args, models, corpus, settings.line_limits, lines)
    identity = run_identity(
        args.dataset,
        report,
        settings.default_model,
        settings.config,
        provider_credentials(),
        corpus.digest if corpus else None,
        settings.max_line_bytes,
        lines,
    )
    batch = args.batch or default_batch_name(args.dataset, identity)
    paths = paths_for(args, batch)
    rejects.move_to(paths.rejects)
    if (status := stop_before_enqueue(args, report, paths)) is not None:
        return status
    run = Run(args, settings, batch, paths, report, identity, prog, corpus)
    try:
        return asyncio.run(dry_run(run) if args.dry_run else enqueue_and_follow(run))
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except RedisUnavailableError as exc:
        print(f"error: {exc}; run the same command again to resume", file=sys.stderr)
        return EXIT_REDIS_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
