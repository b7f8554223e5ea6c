"""Operating a run: a real ``worker.py --metrics-port --log-format json`` process re-ranks a
batch against the local Cohere wire server (each answer a second late; a 429, 503s and a 400
injected); its /metrics (scraped while lines are in flight and once every line is counted),
its JSON log, ``batch.py status --json`` and ``batch.py report --html`` (opened in headless
Chromium) are checked against the batch's records."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from jobs.embedded import EmbeddedRedis
from jobs.settings import RunnerSettings
from tests.browser import rendered_dom
from tests.e2e import WORKER_ENV, CliRun
from tests.metrics_kit import Samples, answers, free_port, scrape, total
from tests.process_tools import SlowCohereServer, Workers, export_batch, start_verbose_worker
from tests.servers.cohere import CohereServer
from tests.support import run_script, synthetic_lines, wait_until, write_dataset
from tests.wire_server import Fault, rate_limited, unavailable

# the module's one run (a worker process, enqueue, waits for the batch, the stats flush and a
# heartbeat) is set up inside the first test: 15-25 s alone, up to ~60 s on a loaded 2-core box
pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

KEY = "sk-FAKE-obsv-7Qx9Lm2ZtW"
"""A recognisable fake key: the wire server accepts it and one fault echoes it back."""
DEPLOYMENT = "cohere/rerank-v3.5"
LINES = 16


@dataclass
class Run:
    batch: str
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    during: Samples
    """Scraped while lines were in flight."""
    metrics: Samples
    """Scraped once every line was counted."""
    status: dict[str, Any]
    log: str
    env: dict[str, str]


def observed_run(server: CohereServer, redis_url: str, workers: Workers, tmp_path: Path) -> Run:
    lines = synthetic_lines(LINES, docs_per_line=5, model=DEPLOYMENT)
    server.fail_query(lines[1]["query"], rate_limited("0"))  # retried: succeeds on attempt 2
    server.fail_query(lines[2]["query"], unavailable("0"), unavailable("0"))  # fails: server_error
    echo = {"message": f"invalid request: bad api key {KEY}"}
    server.fail_query(lines[3]["query"], Fault(400, body=echo))  # fails at once: invalid_request
    env = {
        **WORKER_ENV, "REDIS_URL": redis_url, "COHERE_API_KEY": KEY, "COHERE_API_BASE": server.base_url,
        "RR_RETRY_ATTEMPTS": "2", "RR_CACHE_TTL_DAYS": "0",
    }  # fmt: skip
    dataset = write_dataset(tmp_path / "observed.jsonl", lines)
    cli = CliRun({"REDIS_URL": redis_url}, tmp_path)
    enqueued = cli.enqueue(dataset, "--batch", "observed")  # queued first: the worker starts busy
    assert enqueued.returncode == 0, enqueued.stdout + enqueued.stderr
    port = free_port()
    worker = start_verbose_worker(
        workers, env, "--metrics-port", str(port), "--log-format", "json", "--summary-seconds", "1"
    )
    wait_until(lambda: answers(port), 30, "the worker's metrics endpoint")
    during: Samples = {}

    def busy() -> bool:  # every answer takes the server a second: lines are in flight for a while
        during.update(scrape(port))
        return total(during, "rr_lines_in_flight") > 0

    wait_until(busy, 30, "lines in flight on the metrics endpoint")
    wait_until(lambda: (cli.status_or_none("observed") or {}).get("finished", False), 90, "the batch")
    metrics: Samples = {}

    def counted() -> bool:  # the last line's event follows its record write by a moment
        metrics.update(scrape(port))
        return total(metrics, "rr_lines_total") == LINES and total(metrics, "rr_lines_in_flight") == 0

    wait_until(counted, 15, "the metrics to count every line")
    status: dict[str, Any] = {}

    def flushed() -> bool:  # each worker flushes its stats every couple of seconds
        status.update(cli.status("observed"))
        requests: int = sum(d["requests"] for d in status["deployments"])
        # a worker's leases (its lines in flight) are rewritten with each heartbeat
        idle = [w["in_flight"] for w in status["workers"]] == [0]
        return idle and requests == total(metrics, "rr_provider_requests_total")

    wait_until(flushed, 20, "the per-deployment stats to be flushed and the heartbeat renewed")
    results, errors, _ = export_batch(redis_url, "observed", tmp_path)
    assert worker.process.poll() is None, worker.log_path.read_text()[-3000:]
    return Run("observed", results, errors, during, metrics, status, worker.log_path.read_text(), env)


@pytest.fixture(scope="module")
def run(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One run for every test here (it takes a while): the module's own flush of the session's
    Redis, server and worker."""
    client = sync_redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    tmp_path = tmp_path_factory.mktemp("observed")
    workers = Workers(tmp_path)
    try:
        with SlowCohereServer(KEY, delay=1.0) as server:
            yield observed_run(server, redis_server.url, workers, tmp_path)
    finally:
        workers.stop_all()


def test_scraped_during_the_run_the_lines_are_in_flight_and_not_yet_counted(run: Run) -> None:
    assert 1 <= total(run.during, "rr_lines_in_flight") <= LINES
    assert total(run.during, "rr_lines_total") < LINES  # the retried line takes two answers: 2 s


def test_scraped_metrics_match_the_batch_records(run: Run) -> None:
    assert len(run.results) == LINES - 2
    codes = Counter(e["error"]["code"] for e in run.errors)
    assert codes == {"server_error": 1, "invalid_request": 1}
    metrics = run.metrics
    assert total(metrics, "rr_lines_total", outcome="succeeded") == len(run.results)
    for code, count in codes.items():
        assert total(metrics, "rr_lines_total", outcome="failed", code=code) == count
    # every successful request is a record's request; every injected fault is one request
    assert total(metrics, "rr_provider_requests_total", deployment=DEPLOYMENT, status="2xx") == sum(
        r["requests"] for r in run.results
    )
    assert total(metrics, "rr_provider_requests_total", status="429") == 1
    assert total(metrics, "rr_provider_requests_total", status="5xx") == 2
    assert total(metrics, "rr_provider_requests_total", status="4xx") == 1
    retried = sum(r["attempts"] - 1 for r in run.results) + 1  # the 503 line's second attempt
    assert total(metrics, "rr_retries_total", deployment=DEPLOYMENT) == retried
    assert total(metrics, "rr_cooldowns_total", deployment=DEPLOYMENT) == 1
    assert total(metrics, "rr_provider_request_seconds_count", deployment=DEPLOYMENT) == total(
        metrics, "rr_provider_requests_total"
    )
    units = sum(r["usage"]["billed_units"]["search_units"] for r in run.results)
    assert total(metrics, "rr_usage_units_total", unit="billed_units.search_units") == units


def test_status_reports_each_deployment_and_the_live_worker(run: Run) -> None:
    (deployment,) = run.status["deployments"]
    assert deployment["deployment"] == DEPLOYMENT
    assert deployment["requests"] == total(run.metrics, "rr_provider_requests_total")
    ok = sum(r["requests"] for r in run.results)
    assert deployment["status"] == {"2xx": ok, "429": 1, "5xx": 2, "4xx": 1}
    assert deployment["retries"] == total(run.metrics, "rr_retries_total")
    assert 0 < deployment["p50_ms"] <= deployment["p95_ms"]
    assert deployment["lines"] == {"succeeded": LINES - 2, "failed": 2}
    assert deployment["usage"] == {"billed_units.search_units": len(run.results)}
    assert deployment["cooling_s"] == 0
    (worker,) = run.status["workers"]
    assert worker["in_flight"] == 0
    shown = run_script("batch.py", "status", run.batch, env=run.env, timeout=60)
    assert f"{DEPLOYMENT}: requests {deployment['requests']}" in shown.stdout
    assert "workers alive: 1" in shown.stdout


def test_json_logs_parse_line_by_line_and_hold_no_secret_or_payload(run: Run) -> None:
    entries = [json.loads(line) for line in run.log.splitlines() if line.strip()]
    assert entries and all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    assert KEY[8:] not in run.log  # never the key, although the provider echoed it
    assert "filler text" not in run.log  # documents' text: arq's job lines elide arguments
    assert not [line["query"] for line in synthetic_lines(LINES) if line["query"] in run.log]
    started = [e for e in entries if e["message"].startswith("worker ") and "starting" in e["message"]]
    max_jobs = RunnerSettings.model_fields["max_jobs"].default
    assert len(started) == 1 and f"max_jobs {max_jobs}" in started[0]["message"]
    assert "job_timeout 30s" in started[0]["message"] and "metrics :" in started[0]["message"]
    failures = {e["code"]: e for e in entries if e.get("code")}
    assert failures.keys() == {"server_error", "invalid_request"}
    for entry in failures.values():
        assert entry["batch"] == run.batch and entry["deployment"] == DEPLOYMENT
        assert entry["job_id"] == f"{run.batch}:{entry['line_id']}"
    assert failures["server_error"]["attempt"] == 2 and failures["invalid_request"]["attempt"] == 1
    assert "[REDACTED]" in failures["invalid_request"]["message"]
    assert any(e["message"].startswith("last ") and "lines (" in e["message"] for e in entries)
    assert any("rerank_line(…)" in e["message"] for e in entries)  # -v: the job lines, no payload


def test_html_report_renders_in_headless_chromium(run: Run, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({"ndcg@10": 0.4213, "mrr@10": 0.3561}))
    done = run_script(
        "batch.py", "report", run.batch, "--html", str(page), "--eval", str(evaluation), env=run.env
    )
    assert done.returncode == 0, done.stderr
    assert "<script src" not in page.read_text()  # the plotting library is inlined: no network
    dom = rendered_dom(page, tmp_path / "chromium")
    assert dom.count('class="plotly-graph-div') == 4
    assert dom.count('class="main-svg"') >= 8  # each chart drew its SVG layers
    assert dom.count("trace scatter") >= 4 and "trace bars" in dom  # lines and bars were drawn
    for title in ("Progress", "Throughput per deployment", "Line latency", "error code"):
        assert title in dom, title
    assert "ndcg@10" in dom and "0.4213" in dom and DEPLOYMENT in dom
