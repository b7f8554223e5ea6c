"""A LiteLLM proxy config.yaml with several providers, run end to end through a real
worker against local wire-format servers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import run_batch
from tests.ranking_lines import check_records, lines_for
from tests.servers.cohere import CohereServer
from tests.servers.huggingface import TeiServer
from tests.servers.jina_ai import JinaServer
from tests.servers.voyage import VoyageServer

CONFIG = """
model_list:
  - model_name: my-reranker                # two deployments of one public model
    litellm_params:
      model: cohere/rerank-v3.5
      api_key: os.environ/COHERE_API_KEY
      api_base: os.environ/COHERE_API_BASE
      rpm: 600
  - model_name: my-reranker
    litellm_params:
      model: jina_ai/jina-reranker-test
      api_key: os.environ/JINA_AI_API_KEY
      api_base: os.environ/JINA_AI_API_BASE
      timeout: 30
  - model_name: voyager
    litellm_params:
      model: voyage/rerank-2
      api_key: os.environ/VOYAGE_API_KEY
      api_base: os.environ/VOYAGE_API_BASE
  - model_name: tei
    litellm_params:
      model: huggingface/BAAI/bge-reranker-base
      api_base: os.environ/TEI_BASE
  - model_name: offline
    litellm_params:
      model: local/bm25
litellm_settings:
  drop_params: true
general_settings:
  master_key: sk-1234
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 2
"""


@pytest.fixture
def servers() -> Iterator[dict[str, Any]]:
    with ExitStack() as stack:
        yield {
            "cohere": stack.enter_context(CohereServer("co-key")),
            "jina": stack.enter_context(JinaServer("jina-key")),
            "voyage": stack.enter_context(VoyageServer("voyage-key")),
            "tei": stack.enter_context(TeiServer()),
        }


def renamed(lines: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [{**line, "id": f"{prefix}-{line['id']}"} for line in lines]


@pytest.mark.integration
def test_a_litellm_proxy_config_runs_end_to_end(
    servers: dict[str, Any], redis_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    env = {
        "COHERE_API_KEY": "co-key",
        "COHERE_API_BASE": servers["cohere"].base_url,
        "JINA_AI_API_KEY": "jina-key",
        "JINA_AI_API_BASE": servers["jina"].base_url,
        "VOYAGE_API_KEY": "voyage-key",
        "VOYAGE_API_BASE": servers["voyage"].base_url,
        "TEI_BASE": servers["tei"].base_url,
    }
    http_lines = (
        renamed(lines_for("my-reranker", 12), "mine")
        + renamed(lines_for("voyager", 6), "voy")
        + renamed(lines_for("tei", 6), "tei")
    )
    offline = [{"id": "off-1", "model": "offline", "query": "solar", "documents": ["solar power", "coffee"]}]
    results, errors = run_batch(
        redis_url, [*http_lines, *offline], tmp_path, env, extra_args=["--config", str(config)]
    )

    assert errors == []
    check_records(http_lines, results[: len(http_lines)])
    assert [r["index"] for r in results[-1]["results"]] == [0, 1]
    served = {record["id"]: record["deployment"] for record in results}
    mine = {served[line["id"]] for line in http_lines if line["model"] == "my-reranker"}
    assert mine == {"my-reranker#0", "my-reranker#1"}  # both deployments of the public name took lines
    assert {served[line["id"]] for line in http_lines if line["model"] == "voyager"} == {"voyager#2"}
    assert served["off-1"] == "offline#4"
    wire_models = {r.body["model"] for r in servers["cohere"].requests} | {
        r.body["model"] for r in servers["jina"].requests
    }
    assert wire_models == {"rerank-v3.5", "jina-reranker-test"}
    assert len(servers["voyage"].requests) == 6 and len(servers["tei"].requests) == 6
    # the keys came from the environment through os.environ/ references
    assert {r.headers["authorization"] for r in servers["cohere"].requests} == {"Bearer co-key"}


def test_unknown_public_names_are_rejected_before_enqueue(redis_url: str, tmp_path: Path) -> None:
    from tests.support import run_script, write_dataset

    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    dataset = write_dataset(
        tmp_path / "d.jsonl",
        [
            {"id": 1, "model": "my-reranker", "query": "q", "documents": ["d"]},
            {"id": 2, "model": "not-in-the-list", "query": "q", "documents": ["d"]},
        ],
    )
    done = run_script("enqueue.py", str(dataset), "--config", str(config), "--redis-url", redis_url, env={})
    assert done.returncode == 1
    assert (
        "line 2: model: unknown model 'not-in-the-list': not a model_name of the model list, "
        "nor of the form provider/model" in done.stderr
    )
