"""The arq job: re-rank one dataset line and record its outcome."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from arq import Retry

from jobs import keys
from jobs.cache import CacheStats, ScoreCache
from jobs.payload import LinePayload, rerank_request
from jobs.records import FAILED, SUCCEEDED, RecordWriter, failure_record, success_record
from providers.errors import DeadlineExceededError, DeferredError, RerankError
from providers.redaction import PATTERNS_ONLY, Redactor
from providers.reranker import Reranker
from providers.types import RerankResponse

log = logging.getLogger("rerank_runner.worker")


@dataclass
class WorkerState:
    """What every job in a worker process shares, built once at start-up."""

    reranker: Reranker
    writer: RecordWriter
    line_deadline: float
    max_tries: int
    redactor: Redactor = field(default=PATTERNS_ONLY)
    """The last line of defence: no failure record or log line leaves with a secret in it."""
    cache: ScoreCache | None = None
    """None: ``RR_CACHE_TTL_DAYS=0``, every line is requested."""


async def _rerank(state: WorkerState, line: LinePayload) -> tuple[RerankResponse, CacheStats | None]:
    request = rerank_request(line)
    if state.cache is None:
        return await state.reranker.rerank(line["model"], request), None
    return await state.cache.rerank(line["model"], request, read=not line.get("no_cache", False))


async def rerank_line(ctx: dict[str, Any], line: LinePayload) -> None:
    state: WorkerState = ctx["state"]
    batch = line["batch"]
    cancelled, run = await ctx["redis"].hmget(keys.batch(batch), ["cancelled", "run"])
    if cancelled:
        return
    if (run or b"").decode() != line.get("run", ""):
        # the batch was replaced (or expired) since this job was queued: its scores belong to
        # no batch, so the line is not worth a request
        log.warning("line %s of %s skipped: the batch now holds another run", line["id"], batch)
        return
    started = time.monotonic()
    try:
        async with asyncio.timeout(state.line_deadline):
            response, stats = await _rerank(state, line)
        status, record = SUCCEEDED, success_record(line, response, time.monotonic() - started)
        if stats is not None:
            record["cache"] = stats.to_json()
    except DeferredError as exc:
        if ctx.get("job_try", 1) < state.max_tries - 1:
            # nothing can take the line soon: free this slot, come back when capacity is due
            raise Retry(defer=exc.delay) from exc
        status, record = FAILED, failure_record(line, exc.to_record(), time.monotonic() - started)
    except TimeoutError:
        deadline = DeadlineExceededError(f"line did not finish within {state.line_deadline:g}s")
        status, record = FAILED, failure_record(line, deadline.to_record(), time.monotonic() - started)
    except RerankError as exc:
        state.redactor.error(exc)
        log.warning("line %s of %s failed: %s", line["id"], batch, exc)
        status, record = FAILED, failure_record(line, exc.to_record(), time.monotonic() - started)
    except Exception as exc:  # a bug must still leave a record, never a silently lost line
        log.exception("line %s of %s crashed", line["id"], batch)
        error = {"code": "internal", "message": repr(exc), "retryable": False}
        status, record = FAILED, failure_record(line, error, time.monotonic() - started)
    if status == FAILED:
        record["error"] = state.redactor.record(record["error"])
    record["job_try"] = ctx.get("job_try", 1)
    await state.writer.write(batch, keys.job_id(batch, line["id"]), status, record, line)
