"""The arq job: re-rank one dataset line and record its outcome."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from arq import Retry

from jobs import keys
from jobs.payload import LinePayload, rerank_request
from jobs.records import FAILED, SUCCEEDED, RecordWriter, failure_record, success_record
from providers.errors import DeadlineExceededError, DeferredError, RerankError
from providers.redaction import PATTERNS_ONLY, Redactor
from providers.reranker import Reranker

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


async def rerank_line(ctx: dict[str, Any], line: LinePayload) -> None:
    state: WorkerState = ctx["state"]
    batch = line["batch"]
    if await ctx["redis"].hget(keys.batch(batch), "cancelled"):
        return
    started = time.monotonic()
    try:
        async with asyncio.timeout(state.line_deadline):
            response = await state.reranker.rerank(line["model"], rerank_request(line))
        status, record = SUCCEEDED, success_record(line, response, time.monotonic() - started)
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
