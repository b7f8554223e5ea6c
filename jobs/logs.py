"""A worker's logging: text or one JSON object per line, the line's fields on every record,
no payloads, no third-party noise; the start-up line and the periodic throughput line.

Every record made while a job runs carries the line's ``batch``, ``line_id``, ``job_id``, and
the ``deployment`` and ``attempt`` of its current attempt (:data:`providers.events.current_line`);
a failure carries its error ``code``.  Secrets are scrubbed by :mod:`providers.redaction`'s
filter before any handler formats a record.  We never log query or document text unless
``--log-payloads`` (arq logs each job's arguments at start with ``-v``: they are elided); a
provider's own error message is logged as the failure record keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from jobs.model_list import ModelList
from jobs.redis_url import redacted
from jobs.settings import RunnerSettings
from providers.deployment import Deployment, Limits
from providers.events import LineContext, Observer, current_line, status_class

__all__ = [
    "ARQ_JOB_START",
    "FIELDS",
    "LOG_FORMATS",
    "QUIET_LOGGERS",
    "JsonFormatter",
    "LineFields",
    "PayloadFilter",
    "QuietFilter",
    "Throughput",
    "configure_logging",
    "line_hooks",
    "startup_summary",
]

log = logging.getLogger("rerank_runner.worker")

LOG_FORMATS = ("text", "json")
FIELDS = ("batch", "line_id", "job_id", "deployment", "attempt", "code")
"""Fields a record may carry besides time, level, logger and message (JSON format)."""
QUIET_LOGGERS = ("bm25s", "httpx", "httpcore", "urllib3")
"""Third-party loggers held at WARNING whatever the verbosity (bm25s logs a DEBUG line per
line it indexes; httpx an INFO line per request)."""
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ARQ_JOB_START = "%6.2fs → %s(%s)%s"
"""arq's job-start message; its third argument is the job's arguments (the query, the documents)."""


class LineFields(logging.Filter):
    """Copies the running line's fields onto each record (a handler filter: every logger's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        line = current_line.get()
        if line is not None:
            for name, value in (
                ("batch", line.batch),
                ("line_id", line.line_id),
                ("job_id", line.job_id),
                ("deployment", line.deployment),
                ("attempt", line.attempt or None),
            ):
                if getattr(record, name, None) is None:
                    setattr(record, name, value)
        return True


class QuietFilter(logging.Filter):
    """Drops :data:`QUIET_LOGGERS`' records below WARNING at the handler: bm25s sets its own
    logger to DEBUG when first imported (in the middle of a run), so its level cannot hold."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".")[0] not in QUIET_LOGGERS


class PayloadFilter(logging.Filter):
    """Elides the job arguments from arq's job-start line (``--log-payloads`` keeps them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == ARQ_JOB_START and isinstance(record.args, tuple) and len(record.args) == 4:
            record.args = (record.args[0], record.args[1], "…", record.args[3])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message``, the line's
    fields when set, and ``exception`` (the scrubbed traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


def configure_logging(
    *, log_format: str = "text", verbose: bool = False, payloads: bool = False, stream: TextIO | None = None
) -> None:
    """The worker's logging, once at start-up: INFO for rerank-runner's own loggers, arq's job
    lines only with ``verbose``, third-party noise at WARNING."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(QuietFilter())
    handler.addFilter(LineFields())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("rerank_runner").setLevel(logging.INFO)
    logging.getLogger("arq").setLevel(logging.INFO if verbose else logging.WARNING)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    arq_worker = logging.getLogger("arq.worker")
    for stale in [f for f in arq_worker.filters if isinstance(f, PayloadFilter)]:
        arq_worker.removeFilter(stale)
    if not payloads:
        # first: a redacting filter added later formats the message, hiding the arguments' place
        arq_worker.filters.insert(0, PayloadFilter())


def _limits(deployment: Deployment) -> str:
    limits = deployment.limits
    parts = [
        f"{name} {value}"
        for name, value in (("rpm", limits.rpm), ("tpm", limits.tpm), ("concurrency", limits.max_concurrency))
        if value
    ]
    return f"{deployment.label} ({', '.join(parts) or 'no limits'})"


def startup_summary(settings: RunnerSettings, models: ModelList, worker_id: str) -> str:
    """One line: who this worker is, which Redis (password hidden), which deployments with
    their limits, how many lines at once, its time limits, where its metrics are."""
    listed = [_limits(d) for entries in models.deployments.values() for d in entries]
    raw = Limits(settings.default_rpm, settings.default_tpm, settings.default_max_concurrency)
    listed.append(_limits(Deployment("", "", "", limits=raw, name="raw provider/model names")))
    times = {
        "job_timeout": settings.job_timeout,
        "line_deadline": settings.line_deadline,
        "http_timeout": settings.http_timeout,
        "retry_max": settings.retry_max_seconds,
    }
    port = settings.metrics_port
    return (
        f"worker {worker_id} starting: redis {redacted(str(settings.redis_url))}, "
        f"max_jobs {settings.max_jobs}, {', '.join(f'{n} {s:g}s' for n, s in times.items())}, "
        f"{f'metrics :{port}' if port else 'metrics off'}; deployments: {'; '.join(listed)}"
    )


def line_hooks(observer: Observer) -> dict[str, Any]:
    """arq's per-job hooks (``on_job_start``, ``on_job_end``): name the running line for events
    and log records (:data:`providers.events.current_line`), count it in flight."""

    async def job_start(ctx: dict[str, Any]) -> None:
        job = str(ctx.get("job_id", ""))
        batch, _, line_id = job.partition(":")
        current_line.set(LineContext(batch=batch, line_id=line_id, job_id=job))
        observer.line_started()

    async def job_end(ctx: dict[str, Any]) -> None:
        observer.line_ended()

    return {"on_job_start": job_start, "on_job_end": job_end}


class Throughput(Observer):
    """Counts what happened since the last summary; :meth:`run` logs one line per period."""

    def __init__(self) -> None:
        self.lines: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.retries = 0
        self.in_flight = 0
        self.since = time.monotonic()

    def request(self, deployment: str, status: int | None, seconds: float) -> None:
        self.requests[status_class(status)] += 1

    def retry(self, deployment: str) -> None:
        self.retries += 1

    def line_started(self) -> None:
        self.in_flight += 1

    def line_ended(self) -> None:
        self.in_flight -= 1

    def line_finished(self, status: str, record: dict[str, Any]) -> None:
        self.lines[status] += 1

    def summary(self) -> str:
        """The line for the period since the last call, which starts a new period."""
        now = time.monotonic()
        elapsed = max(now - self.since, 1e-9)
        done = sum(self.lines.values())
        statuses = " ".join(f"{name} {count}" for name, count in sorted(self.requests.items())) or "none"
        line = (
            f"last {elapsed:.0f}s: {done} lines ({done / elapsed:.2f}/s), "
            f"{self.lines['succeeded']} succeeded, {self.lines['failed']} failed; "
            f"requests {sum(self.requests.values())} ({statuses}), retries {self.retries}; "
            f"in flight {self.in_flight}"
        )
        self.lines, self.requests, self.retries, self.since = Counter(), Counter(), 0, now
        return line

    async def run(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            log.info(self.summary())
