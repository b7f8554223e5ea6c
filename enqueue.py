"""rerank-runner: re-rank every line of a JSONL dataset through a rerank model.

    python enqueue.py dataset.jsonl
    python enqueue.py --run bm25.run --topics topics.tsv --corpus corpus.jsonl --depth 100

The second form builds the dataset from a first-stage run (TREC, TSV or JSONL), topics and a
corpus: one line per query, its top K documents by id (results/datasets/RUN-topK.jsonl).
Either way it validates the whole file first (every bad line is reported with its line number
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

The default model is local/bm25, a key-free lexical reranker (local/ql is the other); with
--corpus they score with the corpus's statistics.  Repeating --model runs a bake-off: one
batch per model over the same lines, all under one group name for batch.py status/results.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from jobs import event_loop
from jobs.bakeoff import register_group
from jobs.batches import BatchBusyError, drop, export, export_to_files
from jobs.connection import (
    DEFAULT_STATE_DIR,
    EXIT_REDIS_UNAVAILABLE,
    Connection,
    RedisUnavailableError,
    connect,
    redacted,
)
from jobs.dataset import (
    MAX_DOCUMENT_BYTES,
    MAX_LINE_BYTES,
)
from jobs.firststage import DEFAULT_DEPTH
from jobs.identity import default_batch_name
from jobs.preflight import (
    valid_lines,
)
from jobs.queue import BatchConflictError, EnqueueCounts, enqueue_lines, register_batch
from jobs.runs import PROG, Run, group_of, prepare_runs
from jobs.validation import fingerprint
from providers.registry import LOCAL_PROVIDER

__all__ = [
    "conflict_message",
    "corpus_statistics",
    "enqueue_and_follow",
    "main",
    "parse_args",
    "print_group",
    "print_next_steps",
    "register",
    "sibling",
]


def parse_args(argv: list[str] | None, prog: str = PROG) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "dataset",
        type=Path,
        nargs="?",
        help="JSONL file: one query, its id and its documents per line (or --run, --topics, --corpus)",
    )
    parser.add_argument(
        "--model",
        action="append",
        help="model for lines without one (default: $RR_DEFAULT_MODEL or local/bm25); repeat it for a "
        "bake-off: one batch per model over the same lines, under one group name",
    )
    parser.add_argument(
        "--group",
        help="bake-off group name, for batch.py status/results GROUP (default: FILE-bakeoff-HASH)",
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
        "(BEIR corpus.jsonl), TSV (id, [title,] text), TREC documents (<DOC> <DOCNO> <TEXT>), "
        "a BEIR folder or a folder of TREC document files",
    )
    first = parser.add_argument_group("a first-stage run instead of a dataset (README: Re-rank a search run)")
    first.add_argument(
        "--run",
        type=Path,
        help="first-stage run: TREC (qid Q0 docid rank score tag), .tsv (qid, docid, rank[, score]) "
        "or .jsonl ({qid, docid, rank?, score?}); needs --topics and --corpus",
    )
    first.add_argument(
        "--topics",
        type=Path,
        help="query texts: TREC topics, .jsonl (BEIR queries.jsonl), a BEIR folder, else TSV (qid, text)",
    )
    first.add_argument(
        "--topic-field",
        help="TREC topics: title (default), desc or narr; JSONL: the text field (default text)",
    )
    first.add_argument(
        "--depth",
        type=int,
        default=DEFAULT_DEPTH,
        help=f"re-rank each query's top K (default {DEFAULT_DEPTH})",
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


async def enqueue_and_follow(run: Run, *siblings: Run, group: str | None = None) -> int:
    """Enqueue the run (and, in a bake-off, its sibling runs: the same lines, other models),
    then run them here (local mode) or follow them (--wait) and export each batch."""
    runs = [run, *siblings]
    args, settings = run.args, run.settings
    if fingerprint(args.dataset) != run.report.fingerprint:
        print(f"error: {args.dataset} changed since it was validated; nothing enqueued", file=sys.stderr)
        return 1
    async with connect(settings.redis_url, args.state_dir) as conn:
        for each in runs:
            if (refused := await register(each, conn)) is not None:
                return refused
        if group is not None:
            await register_group(conn.redis, group, [r.batch for r in runs], settings.result_ttl_ms)
        async with contextlib.AsyncExitStack() as local:
            if conn.embedded:
                from worker import local_run  # only local mode runs workers: spared otherwise

                for each in runs:
                    await local.enter_async_context(local_run(conn.redis, each.batch))
            for each in runs:
                if (failed := await _enqueue(each, conn, bakeoff=group is not None)) is not None:
                    return failed
            return await _follow_and_export(runs, conn, group)


async def corpus_statistics(run: Run, conn: Connection) -> str | None:
    """With --corpus and a model that ranks locally: the corpus's statistics stored for the
    workers (computed once per corpus), and the digest the lines' jobs name."""
    from jobs.dryrun import resolver  # with the provider machinery it needs, only here

    resolved = resolver(run.settings, run.identity.models).values()
    if not any(d.provider == LOCAL_PROVIDER for deployments, _ in resolved for d in deployments):
        return None
    if run.corpus is None:
        print("note: without --corpus, local models score each line with its own candidates' statistics")
        return None
    from jobs.corpus_stats import store_statistics

    if await store_statistics(conn.redis, run.corpus, run.settings.result_ttl_ms):
        print(f"corpus statistics for the local models: {len(run.corpus.documents)} documents")
    return run.corpus.digest


async def _enqueue(run: Run, conn: Connection, *, bakeoff: bool = False) -> int | None:
    """Enqueue the run's lines; an exit status when the file changed meanwhile."""
    args, settings, batch = run.args, run.settings, run.batch
    corpus = await corpus_statistics(run, conn)
    started = time.monotonic()
    counts: EnqueueCounts = await enqueue_lines(
        conn.redis,
        batch,
        run.index.lines(args.dataset, run.report, settings.max_line_bytes)
        if run.index is not None
        else valid_lines(args.dataset, run.report, settings.max_line_bytes, run.corpus),
        default_model=settings.default_model,
        run=run.identity.digest,
        no_cache=args.no_cache,
        corpus=corpus,
        job_expiry_ms=settings.job_expiry_ms,
        result_ttl_ms=settings.result_ttl_ms,
        documents_recur=run.index is None or run.index.documents.recurring,
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
    which = f"batch {batch}: " if bakeoff else ""
    print(
        f"{which}enqueued {counts.added} new lines in {elapsed:.1f}s; skipped {counts.skipped} "
        f"({counts.already_queued} already queued, {counts.already_done} already done)"
    )
    return None


async def _follow_and_export(runs: list[Run], conn: Connection, group: str | None) -> int:
    args, settings = runs[0].args, runs[0].settings
    batches = [run.batch for run in runs]
    show = not args.no_progress
    if conn.embedded:
        from worker import run_local_batches

        for batch in batches:
            print(f"batch {batch}: running locally (Redis state in {args.state_dir}/)")
        statuses = await run_local_batches(conn.url, conn.redis, settings, batches, show=show)
    elif args.wait:
        from jobs.progress import wait_for_batch

        print_group(runs, conn, group)
        statuses = [await wait_for_batch(conn.redis, batch, show=show) for batch in batches]
    else:
        print_group(runs, conn, group)
        return 0
    unfinished = 0
    for run, status in zip(runs, statuses, strict=True):
        results, errors = export_to_files(run.paths.results, run.paths.errors)
        with results, errors:
            exported = await export(conn.redis, run.batch, results, errors)
        rate = f", {status.rate:.1f} lines/s" if status.rate else ""
        which = f"{run.batch} " if group else ""
        print(
            f"{which}done: {exported.succeeded} succeeded, {exported.failed} failed, "
            f"{exported.unfinished} unfinished{rate}\n"
            f"results: {run.paths.results}\nerrors:  {run.paths.errors}"
        )
        unfinished += exported.unfinished
    if group is not None:
        command = sibling(runs[0].prog, "batch") + (f" --state-dir {args.state_dir}" if conn.embedded else "")
        print(f"bake-off {group}: {len(runs)} batches; status of all: {command} status {group}")
    return 0 if unfinished == 0 else 3


def print_group(runs: list[Run], conn: Connection, group: str | None) -> None:
    for run in runs:
        print_next_steps(run, conn)
    if group is not None:
        env = f"REDIS_URL={redacted(conn.url)} "
        print(f"bake-off {group}: {len(runs)} batches")
        print(f"  follow all:       {env}{sibling(runs[0].prog, 'batch')} status {group} --watch")
        print(f"  export all:       {env}{sibling(runs[0].prog, 'batch')} results {group}")


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    runs = prepare_runs(args, prog)
    if isinstance(runs, int):
        return runs
    group = group_of(args, runs)
    try:
        if args.dry_run:
            from jobs.dryrun import dry_runs

            return event_loop.run(dry_runs(runs), runs[0].settings.event_loop)
        return event_loop.run(enqueue_and_follow(*runs, group=group), runs[0].settings.event_loop)
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except RedisUnavailableError as exc:
        print(f"error: {exc}; run the same command again to resume", file=sys.stderr)
        return EXIT_REDIS_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
