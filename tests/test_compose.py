"""docker-compose.yml cannot run here (no Docker engine); check what can be checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

import enqueue
from tests.support import ROOT


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_redis_persists_with_aof() -> None:
    redis = compose()["services"]["redis"]
    assert redis["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_worker_runs_the_documented_command_and_scales() -> None:
    worker = compose()["services"]["worker"]
    assert worker["command"] == ["python", "worker.py"]
    assert "container_name" not in worker and "ports" not in worker  # both break --scale
    environment = worker["environment"]
    assert environment["REDIS_URL"].startswith("${REDIS_URL")
    assert environment["COHERE_API_KEY"] == "${COHERE_API_KEY:-}"
    readme = (ROOT / "README.md").read_text()
    assert "docker compose up -d --scale worker=" in readme


def test_enqueue_service_is_one_shot_and_its_arguments_parse() -> None:
    service = compose()["services"]["enqueue"]
    assert service["entrypoint"] == ["python", "enqueue.py"]
    assert service["restart"] == "no" and service["profiles"] == ["tools"]
    args = enqueue.parse_args(service["command"])
    assert args.dataset == Path("examples/queries.jsonl") and args.wait
    assert "docker compose run --rm enqueue data/" in (ROOT / "README.md").read_text()


def test_image_contains_every_module_the_commands_import() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = " ".join(line for line in dockerfile.splitlines() if line.startswith("COPY"))
    for name in ("jobs", "providers", "worker.py", "enqueue.py", "batch.py", "pyproject.toml"):
        assert name in copied, name
    for service in ("worker", "enqueue"):
        assert compose()["services"][service]["build"] == "."


def test_prometheus_is_an_optional_profile_scraping_every_worker() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["metrics"]
    config_mount = next(v for v in prometheus["volumes"] if v.endswith("/prometheus.yml:ro"))
    config = yaml.safe_load((ROOT / config_mount.split(":")[0]).read_text())
    (job,) = config["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    port = services["worker"]["environment"]["RR_METRICS_PORT"]
    assert discovery["names"] == ["worker"] and port == f"${{RR_METRICS_PORT:-{discovery['port']}}}"
    assert "docker compose --profile metrics up" in (ROOT / "README.md").read_text()


def test_the_grafana_dashboard_holds_the_five_panels_of_the_operations_guide() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert len(dashboard["panels"]) == 5
    assert all(f"`{query}`" in guide for query in queries), queries
