"""The one observer interface the hot path reports to: metrics, stats and logs listen here.

The dispatcher, the gate and the worker call an :class:`Observer` at a handful of points
(one HTTP request answered, an attempt retried, a gate wait, a deferral, a cool-down, a
line started, finished or ended); what is done with that (Prometheus counters, per-deployment
stats in Redis, a periodic log summary) lives in ``jobs/`` behind this interface, so the hot
path carries one call per event and no knowledge of who listens.  Observers must not raise
and must not block: they count in memory, and whoever needs Redis flushes on its own beat.

:data:`current_line` names the line the running task works on (set once per job by the
worker), so an event raised deep in the dispatcher still knows its batch, and log records
carry the batch, line, job, deployment and attempt without being passed them.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["NO_OBSERVER", "LineContext", "Observer", "Observers", "current_line", "status_class"]

log = logging.getLogger("rerank_runner.events")


@dataclass
class LineContext:
    """The line a job task works on; ``deployment`` and ``attempt`` follow its current attempt."""

    batch: str
    line_id: str
    job_id: str
    deployment: str | None = None
    attempt: int = 0


current_line: contextvars.ContextVar[LineContext | None] = contextvars.ContextVar(
    "rerank_runner_line", default=None
)


def status_class(status: int | None) -> str:
    """``2xx``, ``429``, ``4xx``, ``5xx``, or ``none`` (no HTTP answer: a timeout, a refused
    connection): the status label of request counters."""
    if status is None:
        return "none"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


class Observer:
    """Every event, as a no-op: an observer overrides the ones it cares about."""

    def request(self, deployment: str, status: int | None, seconds: float) -> None:
        """One HTTP request to a provider ended: its status (None: no answer) and duration."""

    def retry(self, deployment: str) -> None:
        """An attempt after the line's first went to ``deployment``."""

    def gate_wait(self, deployment: str, seconds: float) -> None:
        """The gate held an attempt this long for a rate-limit slot on ``deployment``."""

    def deferred(self, deployments: str, seconds: float) -> None:
        """No deployment had capacity soon: the line goes back to the queue for ``seconds``."""

    def cooldown(self, deployment: str, seconds: float) -> None:
        """A 429 cooled ``deployment`` down for every worker, this long."""

    def line_started(self) -> None:
        """A job began to run in this process (in flight)."""

    def line_ended(self) -> None:
        """A job stopped running in this process, whatever became of it."""

    def line_finished(self, status: str, record: dict[str, Any]) -> None:
        """A line's record (``succeeded`` or ``failed``) was written; :data:`current_line` is set."""


NO_OBSERVER = Observer()


class Observers(Observer):
    """Fans every event out to several observers; one that raises is logged and skipped."""

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers = list(observers)

    def _each(self, name: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, name)(*args)
            except Exception:  # a broken listener must never fail a line
                log.exception("observer %s failed on %s", type(observer).__name__, name)

    def request(self, deployment: str, status: int | None, seconds: float) -> None:
        self._each("request", deployment, status, seconds)

    def retry(self, deployment: str) -> None:
        self._each("retry", deployment)

    def gate_wait(self, deployment: str, seconds: float) -> None:
        self._each("gate_wait", deployment, seconds)

    def deferred(self, deployments: str, seconds: float) -> None:
        self._each("deferred", deployments, seconds)

    def cooldown(self, deployment: str, seconds: float) -> None:
        self._each("cooldown", deployment, seconds)

    def line_started(self) -> None:
        self._each("line_started")

    def line_ended(self) -> None:
        self._each("line_ended")

    def line_finished(self, status: str, record: dict[str, Any]) -> None:
        self._each("line_finished", status, record)
