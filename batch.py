"""rerank-runner batch commands: list, status, report, results, cancel, retry-failed, workers.

    python batch.py list
    python batch.py status BATCH|GROUP ... [--watch] [--json]
    python batch.py report BATCH --html report.html
    python batch.py results BATCH|GROUP [--output FILE] [--errors FILE] [--format jsonl|trec|csv|parquet]
    python batch.py eval BATCH|GROUP ... --qrels QRELS [--metrics nDCG@10 RR@10 R@100] [--baseline RUN]
    python batch.py cancel BATCH|GROUP
    python batch.py retry-failed BATCH|GROUP [--code rate_limited ...]
    python batch.py workers

They work against $REDIS_URL (or --redis-url); without one, against the embedded
Redis that a local `python enqueue.py` run left in --state-dir.  There, `status` says
"interrupted" for a batch whose local run was stopped (Ctrl-C, kill) before it finished,
and `retry-failed` runs the lines it queues again in this process.

`status` also shows each deployment's requests, latency, retries, cool-down, usage and
cost, and the live workers; `report` writes one self-contained HTML page of the run
(docs/operations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from jobs.bakeoff import GroupStatus, expand, group_batches
from jobs.batches import (
    BatchStatus,
    UnknownBatchError,
    batch_status,
    cancel,
    list_batches,
    retry_failed,
)
from jobs.connection import (
    DEFAULT_STATE_DIR,
    EXIT_REDIS_UNAVAILABLE,
    Connection,
    RedisUnavailableError,
    connect,
)
from jobs.embedded import pid_alive
from jobs.estimate import prices_from
from jobs.evaluation import (
    DEFAULT_METRICS,
    evaluate_batches,
    report_rows,
    stored_evaluation,
    table,
    write_per_query,
)
from jobs.evaluation import EvaluationError as IrEvaluationError
from jobs.formats import FORMATS, FormatError, export_as
from jobs.liveness import WorkerInfo, list_workers
from jobs.progress import wait_for_batch
from jobs.redis_url import RedisUrlError
from jobs.report import EvaluationError, ReportUnavailableError, load_evaluation, render_html, report_data
from jobs.settings import RunnerSettings, SettingsError, load_settings
from jobs.stats import deployment_stats, describe
from worker import local_run, run_local_batches

__all__ = ["main", "parse_args", "print_workers", "run", "state_of"]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def state_of(status: BatchStatus, embedded: bool) -> str:
    """cancelled, finished, interrupted (local mode: the run that worked on it is gone) or running."""
    if status.cancelled:
        return "cancelled"
    if status.finished:
        return "finished"
    if embedded and not (status.local_pid and pid_alive(status.local_pid)):
        return "interrupted"
    return "running"


def parse_args(argv: list[str] | None, prog: str = "python batch.py") -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", help="default: $REDIS_URL, else the embedded Redis in --state-dir")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="batch names in this Redis")
    status = commands.add_parser("status", help="counts, rate and ETA; per deployment; workers")
    status.add_argument(
        "batch", nargs="+", help="batch names, or bake-off group names (enqueue.py --model a --model b)"
    )
    status.add_argument("--watch", action="store_true", help="progress bar until the batch finishes")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--config", type=Path, help="model list whose prices give the cost ($RR_CONFIG)")
    report = commands.add_parser("report", help="one self-contained HTML page with charts of the run")
    report.add_argument("batch")
    report.add_argument("--html", type=Path, required=True, help="the file to write, e.g. report.html")
    report.add_argument("--config", type=Path, help="model list whose prices give the cost ($RR_CONFIG)")
    report.add_argument(
        "--eval", type=Path, help="metrics of an evaluation of the batch (JSON: {metric: value} or rows)"
    )
    results = commands.add_parser("results", help="export results (JSONL, TREC run, CSV or Parquet)")
    results.add_argument("batch", help="a batch, or a bake-off group (each of its batches is exported)")
    results.add_argument("--output", type=Path, help="default: results/BATCH.jsonl (.trec, .csv, .parquet)")
    results.add_argument(
        "--format",
        choices=FORMATS,
        default="jsonl",
        help="jsonl: the records; trec: qid Q0 docid rank score tag; csv and parquet: "
        "qid, docid, rank, score, model (parquet needs the parquet extra)",
    )
    results.add_argument("--tag", help="trec: the run tag (default: the model)")
    results.add_argument(
        "--errors", type=Path, help="failed and unfinished lines (default: results/BATCH.errors.jsonl)"
    )
    evaluation = commands.add_parser(
        "eval", help="score batches (and the first stage) against qrels with ir_measures: one table"
    )
    evaluation.add_argument(
        "batches", nargs="+", metavar="BATCH", help="batch names, or bake-off groups (each of their batches)"
    )
    evaluation.add_argument(
        "--qrels",
        type=Path,
        required=True,
        help="qrels: TREC (qid iter docid relevance) or BEIR (query-id, corpus-id, score)",
    )
    evaluation.add_argument(
        "--metrics",
        nargs="+",
        default=list(DEFAULT_METRICS),
        help="ir_measures names, after the batches (default: %(default)s)",
    )
    evaluation.add_argument(
        "--baseline", type=Path, help="the first-stage run (TREC, .tsv or .jsonl): its row"
    )
    evaluation.add_argument(
        "--per-query", type=Path, help="write run, metric, qid, value (TSV) for significance tests"
    )
    cancel_cmd = commands.add_parser("cancel", help="drop queued lines; finished results are kept")
    cancel_cmd.add_argument("batch", help="a batch, or a bake-off group (each of its batches)")
    retry_cmd = commands.add_parser("retry-failed", help="queue the failed lines again (dead-letter store)")
    retry_cmd.add_argument("batch", help="a batch, or a bake-off group (each of its batches)")
    retry_cmd.add_argument(
        "--code", action="append", default=[], help="only lines that failed with this error code (repeatable)"
    )
    retry_cmd.add_argument(
        "--config", type=Path, help="local mode: the model list the batch uses ($RR_CONFIG)"
    )
    retry_cmd.add_argument("--no-progress", action="store_true", help="local mode: no progress bar")
    workers_cmd = commands.add_parser("workers", help="live and stale workers, lines in flight")
    workers_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    return parser.parse_args(argv)


def print_workers(found: list[WorkerInfo], *, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps([vars(w) for w in found]).decode())
        return
    for w in found:
        state = "live" if w.live else "stale"
        print(f"{w.worker_id}  {state}  in flight {w.in_flight}  last seen {w.last_seen_s:.1f}s ago")
    if not found:
        print("no workers registered")


async def _eval(redis: Redis, args: argparse.Namespace) -> int:
    batches = await expand(redis, args.batches)
    rows = await evaluate_batches(redis, batches, args.qrels, args.metrics, args.baseline)
    print(table(rows, args.metrics))
    judged = len(next(iter(rows[0].per_query.values()), {}))
    print(f"{judged} judged queries; a query a run lacks counts 0")
    for row in rows:
        if row.missing:
            more = f" and {len(row.missing) - 20} more" if len(row.missing) > 20 else ""
            shown = ", ".join(row.missing[:20]) + more
            print(f"{row.name}: {len(row.missing)} judged queries missing: {shown}", file=sys.stderr)
        if row.unranked:
            print(
                f"{row.name}: {row.unranked} lines failed or unfinished (batch.py results lists them)",
                file=sys.stderr,
            )
    if args.per_query:
        write_per_query(rows, args.per_query)
        print(f"per-query values -> {args.per_query}")
    return 0


async def _one_status(
    args: argparse.Namespace, conn: Connection, settings: RunnerSettings, batch: str
) -> tuple[BatchStatus, dict[str, Any]]:
    """One batch's status, printed unless --json, and its JSON row."""
    redis = conn.redis
    status = await (wait_for_batch(redis, batch) if args.watch else batch_status(redis, batch))
    state = state_of(status, conn.embedded)
    eta = None if state == "interrupted" else status.eta_seconds
    deployments = await deployment_stats(redis, batch, prices_from(settings.config))
    row = {
        **status.to_json(),
        "state": state,
        "eta_s": eta and round(eta, 1),
        "deployments": [d.to_json() for d in deployments],
    }
    if args.json:
        return status, row
    rate = f"{status.rate:.1f} lines/s" if status.rate else "n/a"
    hint = "  (stopped before it finished: run the same enqueue command again to resume)"
    print(
        f"batch {status.batch}: {state}{hint if state == 'interrupted' else ''}\n"
        f"  total {status.total}  succeeded {status.succeeded}  failed {status.failed}  "
        f"pending {status.pending}\n  rate {rate}  eta {_duration(eta)}\n"
        f"  score cache: {status.cache_hits} documents served, {status.cache_misses} requested"
    )
    print("deployments:" if deployments else "deployments: no requests recorded yet")
    for stats in deployments:
        print(describe(stats))
    return status, row


async def _status(args: argparse.Namespace, conn: Connection, settings: RunnerSettings) -> None:
    """One batch, or several: names and bake-off groups, each group standing for its batches."""
    batches = await expand(conn.redis, args.batch)
    found = [await _one_status(args, conn, settings, batch) for batch in batches]
    several = GroupStatus([status for status, _ in found])
    alive = [w for w in await list_workers(conn.redis) if w.live]
    if args.json:
        workers = [{"worker_id": w.worker_id, "in_flight": w.in_flight} for w in alive]
        rows = [row for _, row in found]
        single = batches == args.batch and len(batches) == 1
        whole = rows[0] if single else {**several.to_json(), "batches": rows}
        print(orjson.dumps({**whole, "workers": workers}).decode())
        return
    if len(batches) > 1:
        print(several.describe(" ".join(args.batch)))
    flights = ", ".join(f"{w.worker_id} {w.in_flight}" for w in alive)
    print(f"workers alive: {len(alive)}" + (f" (in flight: {flights})" if alive else ""))


async def _report(args: argparse.Namespace, redis: Redis, settings: RunnerSettings) -> None:
    stored = report_rows(await stored_evaluation(redis, args.batch))
    evaluation = load_evaluation(args.eval) if args.eval else stored
    data = await report_data(redis, args.batch, prices_from(settings.config), evaluation)
    args.html.parent.mkdir(parents=True, exist_ok=True)
    args.html.write_text(render_html(data))
    print(f"report of batch {args.batch} ({data.status.done} lines) -> {args.html}")


async def _export(redis: Redis, batch: str, args: argparse.Namespace) -> None:
    out = args.output or Path("results") / f"{batch}.{args.format}"
    err = args.errors or Path("results") / f"{batch}.errors.jsonl"
    counts = await export_as(redis, batch, args.format, out, err, args.tag)
    print(f"{counts.succeeded} results -> {out}")
    print(f"{counts.failed} failed + {counts.unfinished} unfinished -> {err}")
    if counts.failed + counts.unfinished:
        print(
            f"warning: {counts.failed + counts.unfinished} lines have no ranking in {out} "
            f"({counts.failed} failed, {counts.unfinished} unfinished); their ids are in {err}",
            file=sys.stderr,
        )


async def _results(args: argparse.Namespace, redis: Redis) -> int:
    """Export a batch, or each batch of a bake-off group to its own default files."""
    siblings = await group_batches(redis, args.batch)
    if siblings and (args.output or args.errors):
        print(
            f"error: {args.batch} is a bake-off of {len(siblings)} batches: "
            f"each is written to results/BATCH.{args.format} (no --output, --errors)",
            file=sys.stderr,
        )
        return 2
    for name in siblings or [args.batch]:
        await _export(redis, name, args)
    return 0


async def run(args: argparse.Namespace, settings: RunnerSettings) -> int:
    async with connect(settings.redis_url, args.state_dir) as conn:
        redis = conn.redis
        if args.command == "list":
            for name in await list_batches(redis):
                print(name)
            return 0
        if args.command == "status":
            await _status(args, conn, settings)
            return 0
        if args.command == "report":
            await _report(args, conn.redis, settings)
            return 0
        if args.command == "results":
            return await _results(args, redis)
        if args.command == "eval":
            return await _eval(redis, args)
        if args.command == "workers":
            print_workers(await list_workers(redis), as_json=args.json)
            return 0
        if args.command == "retry-failed":
            return await _retry_failed(args, conn, settings)
        for batch in await expand(redis, [args.batch]):
            removed = await cancel(redis, batch)
            print(f"batch {batch} cancelled: {removed} queued lines removed; finished results kept")
        return 0


async def _retry_failed(args: argparse.Namespace, conn: Connection, settings: RunnerSettings) -> int:
    """Queue a batch's (or each batch of a group's) failed lines again; in local mode, run them."""
    batches = await expand(conn.redis, [args.batch])
    for batch in batches:
        queued = await retry_failed(conn.redis, batch, set(args.code), settings.job_expiry_ms)
        print(f"batch {batch}: {queued} failed lines queued again")
    if not conn.embedded:
        print("start workers to run them")
        return 0
    print("running them locally")
    async with contextlib.AsyncExitStack() as local:
        for batch in batches:
            await local.enter_async_context(local_run(conn.redis, batch))
        statuses = await run_local_batches(conn.url, conn.redis, settings, batches, show=not args.no_progress)
    for batch, status in zip(batches, statuses, strict=True):
        print(
            f"batch {batch}: {status.succeeded} succeeded, {status.failed} failed, "
            f"{status.pending} pending; export with: python batch.py --state-dir {args.state_dir} "
            f"results {batch}"
        )
    return 0


def main(argv: list[str] | None = None, prog: str = "python batch.py") -> int:
    args = parse_args(argv, prog)
    overrides: dict[str, Any] = {"redis_url": args.redis_url} if args.redis_url else {}
    if getattr(args, "config", None):
        overrides["config"] = args.config
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args, settings))
    except (
        UnknownBatchError,
        RedisUrlError,
        ReportUnavailableError,
        EvaluationError,
        FormatError,
        IrEvaluationError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RedisUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REDIS_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
