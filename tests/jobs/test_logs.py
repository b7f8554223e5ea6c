"""A worker's logs: JSON lines with the line's fields and no secret, job arguments elided unless
``--log-payloads``, third-party debug noise dropped, a one-line start-up summary without the
Redis password, a throughput line per period."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.logs import ARQ_JOB_START, Throughput, configure_logging, startup_summary
from jobs.settings import RunnerSettings, model_list
from providers.events import LineContext, current_line
from providers.redaction import OWN_LOGGERS, Redactor, redact_logs

KEY = "sk-FAKE-logs-9Wq2Lp7Xv"
ARQ_ARGS = "{'query': 'private query words', 'documents': ['private document']}"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Where the configured handler writes; the logging set-up is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    touched = ["rerank_runner", "arq", "bm25s", "httpx", *OWN_LOGGERS]
    saved = {name: (logging.getLogger(name).level, list(logging.getLogger(name).filters)) for name in touched}
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (old_level, filters) in saved.items():
        logging.getLogger(name).setLevel(old_level)
        logging.getLogger(name).filters[:] = filters


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_lines_fields_and_never_the_key(stream: io.StringIO) -> None:
    configure_logging(log_format="json", stream=stream)
    redact_logs(Redactor([KEY]))
    log = logging.getLogger("rerank_runner.worker")
    log.info("outside any line")
    token = current_line.set(LineContext("b", "q7", "b:q7", deployment="co#0", attempt=2))
    try:
        log.warning("line q7 failed: provider said %s", KEY, extra={"code": "authentication"})
        try:
            raise RuntimeError(f"echoed {KEY}")
        except RuntimeError:
            log.exception("line q7 crashed")
    finally:
        current_line.reset(token)
    outside, failed, crashed = lines(stream)
    assert outside.keys() == {"time", "level", "logger", "message"}
    assert failed == {
        "time": failed["time"], "level": "warning", "logger": "rerank_runner.worker",
        "message": "line q7 failed: provider said [REDACTED]", "batch": "b", "line_id": "q7",
        "job_id": "b:q7", "deployment": "co#0", "attempt": 2, "code": "authentication",
    }  # fmt: skip
    assert "RuntimeError: echoed [REDACTED]" in str(crashed["exception"])
    assert KEY not in stream.getvalue()


@pytest.mark.parametrize(("payloads", "shown"), [(False, "rerank_line(…)"), (True, ARQ_ARGS)])
def test_verbose_job_lines_elide_arguments_unless_payloads_are_asked_for(
    stream: io.StringIO, payloads: bool, shown: str
) -> None:
    configure_logging(verbose=True, payloads=payloads, stream=stream)
    logging.getLogger("arq.worker").info(ARQ_JOB_START, 0.01, "b:q7:rerank_line", ARQ_ARGS, "")
    assert shown in stream.getvalue()
    assert ("private" in stream.getvalue()) is payloads


def test_without_verbose_no_job_lines_and_no_third_party_debug_noise(stream: io.StringIO) -> None:
    configure_logging(stream=stream)
    logging.getLogger("arq.worker").info(ARQ_JOB_START, 0.01, "b:q7:rerank_line", ARQ_ARGS, "")
    logging.getLogger("bm25s").setLevel(logging.DEBUG)  # what importing bm25s does, mid-run
    logging.getLogger("bm25s").debug("Building index from IDs")
    logging.getLogger("httpx").info("HTTP Request: POST https://api.cohere.com/v2/rerank")
    assert stream.getvalue() == ""
    logging.getLogger("bm25s").warning("a real problem")
    assert "a real problem" in stream.getvalue()


def test_startup_summary_hides_the_redis_password_and_lists_each_deployment(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: rr\n"
        "    litellm_params: {model: cohere/rerank-v3.5, api_key: k, rpm: 600, max_parallel_requests: 8}\n"
    )
    settings = RunnerSettings(
        redis_url="redis://app:hunter2pass@redis.internal:6379/0",
        config=config,
        max_jobs=32,
        metrics_port=9100,
    )
    line = startup_summary(settings, model_list(settings), "host:1:abc")
    assert "hunter2pass" not in line and "redis://app:***@redis.internal:6379/0" in line
    assert "worker host:1:abc starting" in line and "max_jobs 32" in line and "metrics :9100" in line
    assert "rr#0 (rpm 600, concurrency 8)" in line and "raw provider/model names (no limits)" in line
    assert "job_timeout 300s" in line and "\n" not in line


def test_throughput_summary_covers_one_period_at_a_time() -> None:
    throughput = Throughput()
    throughput.line_started()
    throughput.request("co#0", 429, 0.1)
    throughput.retry("co#0")
    throughput.request("co#0", 200, 0.1)
    throughput.line_finished("succeeded", {})
    throughput.line_ended()
    throughput.line_started()
    first = throughput.summary()
    assert "1 lines (" in first and "1 succeeded, 0 failed" in first
    assert "requests 2 (2xx 1 429 1), retries 1; in flight 1" in first
    assert "0 lines (0.00/s)" in throughput.summary()
