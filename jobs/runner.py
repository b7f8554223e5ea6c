"""A lean ``run_job`` for arq jobs that arrive claimed and may finish themselves.

arq 0.28's ``Worker.run_job`` spends a round trip before each job (a MULTI of ``GET`` job,
``INCR`` + ``EXPIRE`` of its retry counter) and one after it (``finish_job``: a MULTI deleting the
job's keys and removing it from the queue).  :class:`LeanRunner` runs a job whose value and try
number the claim script already read (:meth:`jobs.liveness.Liveness.claim`), and skips arq's
finish when the job's own last write already did it (the record script: the job sets
``ctx[FINISHED]``).  What it keeps of arq's ``run_job``, with the same log lines on the
``arq.worker`` logger and the same counters (``jobs_complete``, ``jobs_failed``,
``jobs_retried``):

* ``job_try``, ``job_id``, ``enqueue_time`` and ``score`` in the job's context (``score`` is
  None on a first try: the claim does not read it; a ``Retry(defer)`` reads it then); a try number
  stored in the job (``_job_try``) above the counted one wins and is written back;
* a missing or expired job value, a value that does not deserialise, an unknown function, and
  a try beyond ``max_tries``: the job fails before it runs (arq's ``finish_failed_job``);
* the job timeout (a failure), arq's ``Retry(defer)`` (the job's score moves by the delay and
  its in-progress key is freed), a cancelled job (run again), any other error (a failure);
* ``on_job_start``, ``on_job_end`` and ``after_job_end``.

What differs: arq results are never stored (``keep_result`` must be 0), jobs cannot be aborted
(``allow_abort_jobs``), there are no cron jobs, and the job-start line's arguments are rendered
only when that line is logged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from arq.jobs import SerializationError, deserialize_job_raw
from arq.utils import args_to_string, ms_to_datetime, timestamp_ms
from arq.worker import Function, Retry, RetryJob, Worker

from jobs import keys
from jobs.liveness import RETRY_KEY_SECONDS, Claim
from jobs.logs import ARQ_JOB_START

__all__ = ["FINISHED", "LeanRunner"]

FINISHED = "finished"
"""Set true in a job's context by a job whose last write also finished it in arq's terms."""

log = logging.getLogger("arq.worker")


@dataclass(frozen=True, slots=True)
class _Job:
    function: Function
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    enqueue_ms: int
    job_try: int


class LeanRunner(Worker):
    """arq's ``Worker`` running claimed jobs (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.keep_result_s or self.keep_result_forever or self.allow_abort_jobs or self.cron_jobs:
            raise ValueError("LeanRunner keeps no arq results and runs no abortable or cron jobs")

    async def run_claimed(self, job_id: str, claim: Claim) -> None:
        job = await self._unpack(job_id, claim)
        if job is None:
            return
        ctx = {
            **self.ctx,
            "job_id": job_id,
            "job_try": job.job_try,
            "enqueue_time": ms_to_datetime(job.enqueue_ms),
            "score": claim.score,
        }
        if self.on_job_start:
            await self.on_job_start(ctx)
        finish, defer_ms = await self._call(job_id, job, ctx, claim.score)
        incr_score = await self._score_move(job_id, claim.score, defer_ms) if defer_ms else defer_ms
        if self.on_job_end:
            await self.on_job_end(ctx)
        if not ctx.get(FINISHED):
            await asyncio.shield(self.finish_job(job_id, finish, None, None, False, incr_score, None))
        if self.after_job_end:
            await self.after_job_end(ctx)

    async def _score_move(self, job_id: str, score: int | None, defer_ms: int) -> int | None:
        """How far arq moves a deferred job's score: the delay plus how late the job ran (a first
        try's score is read now; the claim did not)."""
        if score is None:
            found = await self.pool.zscore(self.queue_name, job_id)
            if found is None:  # no longer queued (its batch deleted): nothing to move
                return None
            score = int(found)
        return defer_ms + (timestamp_ms() - score)

    async def _unpack(self, job_id: str, claim: Claim) -> _Job | None:
        """The job to run, or None when it failed before it could start."""
        if claim.value is None:
            log.warning("job %s expired", job_id)
            await self._fail_unstarted(job_id)
            return None
        try:
            name, args, kwargs, enqueue_try, enqueue_ms = deserialize_job_raw(
                claim.value, deserializer=self.job_deserializer
            )
        except SerializationError:
            log.exception("deserializing job %s failed", job_id)
            await self._fail_unstarted(job_id)
            return None
        function = self.functions.get(name)
        if not isinstance(function, Function):
            log.warning("job %s, function %r not found", job_id, name)
            await self._fail_unstarted(job_id)
            return None
        job_try = claim.job_try
        if enqueue_try and enqueue_try > job_try:
            job_try = enqueue_try
            await self.pool.setex(keys.arq_retry(job_id), RETRY_KEY_SECONDS, str(job_try))
        max_tries = self.max_tries if function.max_tries is None else function.max_tries
        if job_try > max_tries:
            waited = (timestamp_ms() - enqueue_ms) / 1000
            log.warning("%6.2fs ! %s:%s max retries %d exceeded", waited, job_id, name, max_tries)
            await self._fail_unstarted(job_id)
            return None
        return _Job(function, args, kwargs, enqueue_ms, job_try)

    async def _fail_unstarted(self, job_id: str) -> None:
        self.jobs_failed += 1
        await asyncio.shield(self.finish_failed_job(job_id, None))

    async def _call(
        self, job_id: str, job: _Job, ctx: dict[str, Any], score: int | None
    ) -> tuple[bool, int | None]:
        """Run the job: (finish it, queue it again this many milliseconds from now instead)."""
        ref = f"{job_id}:{job.function.name}"
        start_ms = timestamp_ms()
        if log.isEnabledFor(logging.INFO):
            extra = f" try={job.job_try}" if job.job_try > 1 else ""
            if score is not None and start_ms - score > 1200:
                extra += f" delayed={(start_ms - score) / 1000:0.2f}s"
            shown = args_to_string(job.args, job.kwargs)
            log.info(ARQ_JOB_START, (start_ms - job.enqueue_ms) / 1000, ref, shown, extra)
        timeout_s = self.job_timeout_s if job.function.timeout_s is None else job.function.timeout_s
        task = self.loop.create_task(job.function.coroutine(ctx, *job.args, **job.kwargs))
        self.job_tasks[job_id] = task
        try:
            await asyncio.wait_for(task, timeout_s)
        except (Exception, asyncio.CancelledError) as exc:
            return self._ended_by(exc, ref, start_ms)
        finally:
            del self.job_tasks[job_id]
        self.jobs_complete += 1
        log.info("%6.2fs ← %s ● ", (timestamp_ms() - start_ms) / 1000, ref)
        return True, None

    def _ended_by(self, exc: BaseException, ref: str, start_ms: int) -> tuple[bool, int | None]:
        took = (timestamp_ms() - start_ms) / 1000
        if self.retry_jobs and isinstance(exc, Retry):
            delay = exc.defer_score
            log.info("%6.2fs ↻ %s retrying job in %0.2fs", took, ref, (delay or 0) / 1000)
            self.jobs_retried += 1
            return False, delay
        if self.retry_jobs and isinstance(exc, asyncio.CancelledError | RetryJob):
            log.info("%6.2fs ↻ %s cancelled, will be run again", took, ref)
            self.jobs_retried += 1
            return False, None
        log.exception("%6.2fs ! %s failed, %s: %s", took, ref, type(exc).__name__, exc)
        self.jobs_failed += 1
        return True, None
