"""Prometheus metrics of a worker process (``worker.py --metrics-port``), fed by the observer.

One process, one port: each worker serves its own registry on ``/metrics``.  Several worker
processes on one host may share a port: start them with ``PROMETHEUS_MULTIPROC_DIR`` set (an
empty directory; prometheus-client reads it at import), and each writes its values there;
the first to bind the port serves the sum of all of them, the others skip serving.  Names are
listed in docs/operations.md with the PromQL of the first panels to look at.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server

from jobs.stats import BUCKETS, flatten_usage
from providers.events import Observer, status_class

__all__ = ["MULTIPROC_ENV", "MetricsObserver", "mark_dead", "multiprocess_dir", "serve_metrics"]

log = logging.getLogger("rerank_runner.worker")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_GATE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir(environ: dict[str, str] | None = None) -> str | None:
    """The shared directory of multiprocess mode, or None (one process per port)."""
    return (os.environ if environ is None else environ).get(MULTIPROC_ENV) or None


class MetricsObserver(Observer):
    """Every event as a Prometheus counter, histogram or gauge, in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        """Each labelled child looked up once: ``labels()`` takes a lock and builds a tuple."""

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.lines = counter("rr_lines", "Lines finished, by outcome and error code", ("outcome", "code"))
        self.requests = counter(
            "rr_provider_requests",
            "Provider HTTP requests by deployment and status",
            ("deployment", "status"),
        )
        self.latency = Histogram(
            "rr_provider_request_seconds", "Provider request latency", ("deployment",),
            buckets=BUCKETS, registry=registry,
        )  # fmt: skip
        self.retries = counter("rr_retries", "Attempts after a line's first", ("deployment",))
        self.gate_waits = Histogram(
            "rr_gate_wait_seconds", "Waits for a rate-limit slot", ("deployment",),
            buckets=_GATE_BUCKETS, registry=registry,
        )  # fmt: skip
        self.deferrals = counter(
            "rr_gate_deferrals", "Lines handed back for lack of capacity", ("deployments",)
        )
        self.cooldowns = counter(
            "rr_cooldowns",
            "Cool-downs started (a 429, or the failure that completed a streak)",
            ("deployment",),
        )
        self.cooldown_seconds = counter(
            "rr_cooldown_seconds", "Seconds of cool-down started", ("deployment",)
        )
        self.cache = counter("rr_cache_documents", "Documents the score cache served or not", ("result",))
        self.usage = counter("rr_usage_units", "Usage the providers reported", ("deployment", "unit"))
        self.in_flight = Gauge(
            "rr_lines_in_flight", "Lines running in this process", registry=registry,
            multiprocess_mode="livesum",
        )  # fmt: skip

    def _of(self, metric: Any, *values: str) -> Any:
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def request(self, deployment: str, status: int | None, seconds: float) -> None:
        self._of(self.requests, deployment, status_class(status)).inc()
        self._of(self.latency, deployment).observe(seconds)

    def retry(self, deployment: str) -> None:
        self._of(self.retries, deployment).inc()

    def gate_wait(self, deployment: str, seconds: float) -> None:
        self._of(self.gate_waits, deployment).observe(seconds)

    def deferred(self, deployments: str, seconds: float) -> None:
        self._of(self.deferrals, deployments).inc()

    def cooldown(self, deployment: str, seconds: float) -> None:
        self._of(self.cooldowns, deployment).inc()
        self._of(self.cooldown_seconds, deployment).inc(seconds)

    def line_started(self) -> None:
        self.in_flight.inc()

    def line_ended(self) -> None:
        self.in_flight.dec()

    def line_finished(self, status: str, record: dict[str, Any]) -> None:
        error = record.get("error") or {}
        self._of(self.lines, status, error.get("code", "")).inc()
        if cache := record.get("cache"):
            self._of(self.cache, "hit").inc(cache.get("hits", 0))
            self._of(self.cache, "miss").inc(cache.get("misses", 0))
        deployment = record.get("deployment") or "none"
        for unit, amount in flatten_usage(record.get("usage")).items():
            self._of(self.usage, deployment, unit).inc(amount)


def serve_metrics(port: int, host: str = "0.0.0.0") -> MetricsObserver:
    """Start ``/metrics`` on ``port`` and return the observer that feeds it.  In multiprocess
    mode a port another worker already serves is left to it.  All interfaces by default: a
    Prometheus on another host (or container) scrapes it."""
    if multiprocess_dir() is None:
        registry = CollectorRegistry()
        start_http_server(port, host, registry=registry)
        log.info("metrics on http://%s:%d/metrics", host, port)
        return MetricsObserver(registry)
    shared = CollectorRegistry()
    multiprocess.MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
    try:
        start_http_server(port, host, registry=shared)
        log.info("metrics of every worker on this host on http://%s:%d/metrics", host, port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        log.info("metrics port %d is served by another worker on this host", port)
    return MetricsObserver(None)


def mark_dead(pid: int | None = None) -> None:
    """Multiprocess mode: drop this process's live gauges (in-flight lines) when it stops."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]
