"""Prometheus metrics: each event lands in its metric; several worker processes sharing one
port in multiprocess mode serve the sum of all of them; docs/operations.md names only metrics
that exist."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from jobs.metrics import MULTIPROC_ENV, MetricsObserver
from tests.metrics_kit import free_port, scrape, total
from tests.support import ROOT, env_with, run_script, wait_until


def test_each_event_lands_in_its_metric() -> None:
    registry = CollectorRegistry()
    metrics = MetricsObserver(registry)
    metrics.request("co#0", 429, 0.03)
    metrics.request("co#0", 200, 0.4)
    metrics.retry("co#0")
    metrics.cooldown("co#0", 2.5)
    metrics.gate_wait("co#0", 0.2)
    metrics.deferred("co#0, co#1", 9.0)
    metrics.line_started()
    record = {
        "deployment": "co#0",
        "usage": {"billed_units": {"search_units": 1}},
        "cache": {"hits": 3, "misses": 5},
    }
    metrics.line_finished("succeeded", record)
    metrics.line_finished("failed", {"error": {"code": "rate_limited"}})
    value = registry.get_sample_value
    assert value("rr_provider_requests_total", {"deployment": "co#0", "status": "429"}) == 1
    assert value("rr_provider_request_seconds_bucket", {"deployment": "co#0", "le": "0.05"}) == 1
    assert value("rr_provider_request_seconds_count", {"deployment": "co#0"}) == 2
    assert value("rr_retries_total", {"deployment": "co#0"}) == 1
    assert value("rr_cooldown_seconds_total", {"deployment": "co#0"}) == 2.5
    assert value("rr_gate_wait_seconds_count", {"deployment": "co#0"}) == 1
    assert value("rr_gate_deferrals_total", {"deployments": "co#0, co#1"}) == 1
    assert value("rr_lines_in_flight") == 1
    assert value("rr_lines_total", {"outcome": "failed", "code": "rate_limited"}) == 1
    assert value("rr_cache_documents_total", {"result": "hit"}) == 3
    unit = {"deployment": "co#0", "unit": "billed_units.search_units"}
    assert value("rr_usage_units_total", unit) == 1


COUNT_LINES = """
import sys, time
from jobs.metrics import serve_metrics
metrics = serve_metrics(int(sys.argv[1]), "127.0.0.1")
for _ in range(int(sys.argv[2])):
    metrics.line_finished("succeeded", {})
print("counted", flush=True)
time.sleep(60 if sys.argv[3] == "stay" else 0)
"""


def test_processes_sharing_a_port_serve_the_sum_in_multiprocess_mode(tmp_path: Path) -> None:
    port, shared = free_port(), tmp_path / "prometheus"
    shared.mkdir()
    env = env_with({MULTIPROC_ENV: str(shared)})
    command = [sys.executable, "-c", COUNT_LINES, str(port)]
    with subprocess.Popen(
        [*command, "2", "stay"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    ) as serving:
        try:
            assert serving.stdout is not None and serving.stdout.readline() == "counted\n"
            other = subprocess.run(
                [*command, "3", "go"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
            )
            assert other.returncode == 0, other.stderr  # the port was taken: it counts without serving
            wait_until(lambda: _lines(port) == 5, 10, "the sum of both processes")
        finally:
            serving.terminate()


def _lines(port: int) -> float:
    try:
        return total(scrape(port), "rr_lines_total", outcome="succeeded")
    except httpx.HTTPError:
        return -1


def test_the_operations_guide_names_only_real_metrics() -> None:
    registry = CollectorRegistry()
    MetricsObserver(registry)
    known = {sample for metric in registry.collect() for sample in (metric.name, f"{metric.name}_total")}
    known |= {f"{name}_{part}" for name in known for part in ("bucket", "sum", "count")}
    guide = (ROOT / "docs" / "operations.md").read_text()
    named = set(re.findall(r"\brr_[a-z_]+\b", guide))
    assert named and named <= known, sorted(named - known)


def test_a_taken_port_stops_the_worker_with_one_line(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_script("worker.py", "--metrics-port", str(port), env={"REDIS_URL": redis_url}, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: cannot serve metrics on port {port}:")
    assert "Traceback" not in done.stderr
