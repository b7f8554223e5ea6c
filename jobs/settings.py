"""Runner configuration, read once at the edge (environment + CLI) into typed objects."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobs.dataset import MAX_DOCUMENT_BYTES, MAX_LINE_BYTES, LineLimits
from jobs.event_loop import EventLoop, default_event_loop
from jobs.model_list import ModelList, load_model_list
from providers.deployment import Credentials
from providers.registry import credentials_from
from providers.types import MAX_RESPONSE_BYTES, HttpTransport

__all__ = [
    "DEADLINE_MARGIN_SECONDS",
    "DEFAULT_MODEL",
    "RunnerSettings",
    "SettingsError",
    "load_settings",
    "model_list",
    "provider_credentials",
]

DEFAULT_MODEL = "local/bm25"
DEADLINE_MARGIN_SECONDS = 5.0


class RunnerSettings(BaseSettings):
    """Tuning shared by ``enqueue.py``, ``worker.py`` and ``batch.py`` (``RR_*`` variables)."""

    model_config = SettingsConfigDict(env_prefix="RR_", extra="ignore", populate_by_name=True)

    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "RR_REDIS_URL"))
    default_model: str = DEFAULT_MODEL
    config: Path | None = None
    """A LiteLLM-style config.yaml whose model_list names models (``RR_CONFIG``)."""
    job_timeout: float = Field(300.0, gt=DEADLINE_MARGIN_SECONDS)
    """arq's hard limit per job (a line records ``deadline_exceeded`` 5 s before it)."""
    job_expiry_hours: float = Field(7 * 24.0, gt=0)
    """A queued job not started within this time is dropped by arq (reported as lost)."""
    result_ttl_days: float = Field(30.0, ge=0)
    """How long result records and batch bookkeeping live; 0 keeps them forever."""
    cache_ttl_days: float = Field(30.0, ge=0)
    """How long a cached score lives after its last use; 0 turns the score cache off."""
    max_jobs: int = Field(64, ge=1)
    """Concurrent lines per worker process (docs/performance.md: 16 left half a worker idle at
    50 ms provider latency)."""
    max_tries: int = Field(25, ge=2)
    """arq runs of one job (kills, shutdowns and deferrals count); HTTP retries are separate."""
    poll_delay: float = Field(0.05, gt=0)
    """Seconds between a worker's queue reads; arq only refills free slots when it polls."""
    shutdown_grace: int = Field(30, ge=0)
    """Seconds a worker lets in-flight lines finish after SIGTERM before handing them back."""
    limit_burst: float = Field(0.5, ge=0)
    """GCRA tolerance of the shared limiter, in requests ahead of a deployment's even pace."""
    defer_after: float = Field(5.0, gt=0)
    """A line that would wait longer than this for capacity goes back to the queue."""
    default_rpm: int | None = Field(None, ge=1)
    """Requests per minute for a raw ``provider/model`` deployment (model lists set their own)."""
    default_tpm: int | None = Field(None, ge=1)
    default_max_concurrency: int | None = Field(None, ge=1)
    http_timeout: float = Field(60.0, gt=0)
    retry_attempts: int = Field(4, ge=1)
    retry_max_seconds: float = Field(90.0, gt=0)
    max_line_bytes: int = Field(MAX_LINE_BYTES, ge=1024)
    """A dataset line longer than this is rejected by validation (``--max-line-bytes``)."""
    max_document_bytes: int = Field(MAX_DOCUMENT_BYTES, ge=1)
    """A document larger than this (UTF-8, or JSON for an object) is rejected (``--max-document-bytes``)."""
    max_response_bytes: int = Field(MAX_RESPONSE_BYTES, ge=1024)
    """A provider answer's body is read up to this size; a bigger success is a ``bad_response``."""
    metrics_port: int | None = Field(None, ge=1, le=65535)
    """Serve a worker's Prometheus metrics on this port (``--metrics-port``); None: off."""
    heartbeat_seconds: float = Field(5.0, gt=0)
    """How often a worker renews its heartbeat and leases, and looks for dead workers' lines."""
    worker_ttl_seconds: float = Field(15.0, gt=0)
    """A worker whose heartbeat is this old is dead: its lines go back to the queue."""
    redis_outage_seconds: float = Field(300.0, gt=0)
    """How long a running worker waits for an unreachable Redis before it exits (status 4)."""
    event_loop: EventLoop = Field(default_factory=default_event_loop)
    """uvloop (the default where it is installed: a dependency on Linux) or asyncio's own loop."""
    http_transport: HttpTransport = "aiohttp"
    """What carries a worker's httpx requests: aiohttp's pool, or httpx's own (httpcore)."""

    @model_validator(mode="after")
    def _event_loop_installed(self) -> RunnerSettings:
        if self.event_loop == "uvloop" and default_event_loop() != "uvloop":
            raise ValueError("RR_EVENT_LOOP=uvloop but uvloop is not installed (pip install uvloop)")
        return self

    @model_validator(mode="after")
    def _retries_fit_in_job(self) -> RunnerSettings:
        if self.retry_max_seconds + self.http_timeout > self.line_deadline:
            raise ValueError(
                f"RR_RETRY_MAX_SECONDS + RR_HTTP_TIMEOUT ({self.retry_max_seconds:g} + "
                f"{self.http_timeout:g}) must fit inside RR_JOB_TIMEOUT minus "
                f"{DEADLINE_MARGIN_SECONDS:g}s ({self.line_deadline:g})"
            )
        return self

    @model_validator(mode="after")
    def _heartbeats_fit_in_ttl(self) -> RunnerSettings:
        if self.worker_ttl_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                f"RR_WORKER_TTL_SECONDS ({self.worker_ttl_seconds:g}) must be at least twice "
                f"RR_HEARTBEAT_SECONDS ({self.heartbeat_seconds:g}): one late heartbeat must not "
                "declare a live worker dead"
            )
        return self

    @property
    def recovery_seconds(self) -> float:
        """Upper bound on how long a killed worker's lines wait before another live worker
        queues them again: the heartbeat expires, then the next reaper pass finds it."""
        return self.worker_ttl_seconds + self.heartbeat_seconds

    @property
    def line_deadline(self) -> float:
        """A line's own time budget: it records a failure itself before arq kills it."""
        return self.job_timeout - DEADLINE_MARGIN_SECONDS

    @property
    def line_limits(self) -> LineLimits:
        return LineLimits(self.max_line_bytes, self.max_document_bytes)

    @property
    def job_expiry_ms(self) -> int:
        return int(self.job_expiry_hours * 3_600_000)

    @property
    def cache_ttl_ms(self) -> int:
        return int(self.cache_ttl_days * 86_400_000)

    @property
    def result_ttl_ms(self) -> int:
        return int(self.result_ttl_days * 86_400_000)


class SettingsError(ValueError):
    """Settings that cannot be used; the message never repeats a value (a URL may hold a password)."""


def load_settings(**overrides: Any) -> RunnerSettings:
    """``RunnerSettings`` from the environment and CLI overrides; raises SettingsError with one
    line naming each problem (pydantic's own message would echo inputs, the Redis URL included)."""
    try:
        return RunnerSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            field = str(error["loc"][0]) if error["loc"] else ""
            name = field if field.isupper() else f"RR_{field.upper()}"  # REDIS_URL is set as is
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if field else message)
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None


def provider_credentials(environ: Mapping[str, str] | None = None) -> dict[str, Credentials]:
    """Keys and base URLs for every provider, from the environment (or a given mapping)."""
    return credentials_from(os.environ if environ is None else environ)


def model_list(settings: RunnerSettings, *, resolve_env: bool = True) -> ModelList:
    """The configured model list (empty without ``RR_CONFIG``).  Workers resolve
    ``os.environ/`` references; enqueue only needs the names (``resolve_env=False``)."""
    if settings.config is None:
        return ModelList()
    log = logging.getLogger("rerank_runner.config")
    return load_model_list(settings.config, os.environ if resolve_env else None, log.warning)
