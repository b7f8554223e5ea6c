"""A LiteLLM proxy config.yaml with several providers, run end to end through a real
worker against local wire-format servers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import run_batch
from tests.process_tools import reaping
from tests.ranking_lines import check_records, lines_for
from tests.servers.cohere import CohereServer
from tests.servers.huggingface import TeiServer
from tests.servers.jina_ai import JinaServer
from tests.servers.voyage import VoyageServer
from tests.support import read_jsonl, run_script, write_dataset

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


SIX_MODELS = """
model_list:
  - model_name: hf-reranker
    litellm_params:
      model: huggingface/BAAI/bge-reranker-base
      api_key: os.environ/HF_TOKEN
  - model_name: together-reranker
    litellm_params:
      model: together_ai/Salesforce/Llama-Rank-V1
      api_key: os.environ/TOGETHERAI_API_KEY
  - model_name: cohere-reranker
    litellm_params:
      model: cohere/rerank-english-v3.0
      api_key: os.environ/COHERE_API_KEY
  - model_name: nim-reranker
    litellm_params:
      model: nvidia_nim/nvidia/nv-rerankqa-mistral-4b-v3
      api_key: os.environ/NVIDIA_NIM_API_KEY
  - model_name: nim-ranking
    litellm_params:
      model: nvidia_nim/ranking/nvidia/llama-3.2-nv-rerankqa-1b-v2
      api_key: os.environ/NVIDIA_NIM_API_KEY
  - model_name: jina-reranker
    litellm_params:
      model: jina_ai/jina-reranker-v2-base-multilingual
      api_key: os.environ/JINA_AI_API_KEY
"""
UNSET = {name: "" for name in ("HF_TOKEN", "TOGETHERAI_API_KEY", "NVIDIA_NIM_API_KEY", "JINA_AI_API_KEY")}
HF_WARNING = "model_list[0] (hf-reranker): environment variable HF_TOKEN not set; this entry is unavailable"


def _six_model_batch(tmp_path: Path) -> tuple[Path, Path, list[dict[str, Any]]]:
    config = tmp_path / "config.yaml"
    config.write_text(SIX_MODELS)
    cohere_lines = lines_for("cohere-reranker", 6)
    hf_line = {"id": "needs-hf", "model": "hf-reranker", "query": "solar", "documents": ["solar", "wind"]}
    dataset = write_dataset(tmp_path / "six.jsonl", [*cohere_lines, hf_line])
    return config, dataset, cohere_lines


def _check_hf_failure(errors: list[dict[str, Any]]) -> None:
    assert [(e["id"], e["error"]["code"]) for e in errors] == [("needs-hf", "configuration")]
    assert "HF_TOKEN" in errors[0]["error"]["message"]


@pytest.mark.integration
def test_one_set_key_of_six_serves_its_model_through_a_real_worker(redis_url: str, tmp_path: Path) -> None:
    config, dataset, cohere_lines = _six_model_batch(tmp_path)
    with CohereServer("co-key") as server:
        env = {
            "REDIS_URL": redis_url,
            "COHERE_API_KEY": "co-key",
            "COHERE_API_BASE": server.base_url,
            **UNSET,
        }
        args = ("--config", str(config), "--batch", "six", "--no-progress")
        enqueued = run_script("enqueue.py", str(dataset), *args, env=env)
        assert enqueued.returncode == 0, enqueued.stderr
        worker = run_script("worker.py", "--burst", "--config", str(config), env=env)
        assert worker.returncode == 0, worker.stderr
        out, err = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
        exported = run_script(
            "batch.py", "results", "six", "--output", str(out), "--errors", str(err), env=env
        )
        assert exported.returncode == 0, exported.stderr
    for warning in (HF_WARNING, "(nim-reranker): environment variable NVIDIA_NIM_API_KEY not set"):
        assert warning in worker.stderr
    assert "Traceback" not in worker.stderr
    check_records(cohere_lines, read_jsonl(out))
    _check_hf_failure(read_jsonl(err))


@pytest.mark.integration
def test_one_set_key_of_six_in_local_mode(tmp_path: Path) -> None:
    config, dataset, cohere_lines = _six_model_batch(tmp_path)
    state, out, err = tmp_path / "state", tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    files = ("--state-dir", str(state), "--output", str(out), "--errors", str(err))
    with reaping(state), CohereServer("co-key") as server:
        env = {"COHERE_API_KEY": "co-key", "COHERE_API_BASE": server.base_url, **UNSET}
        done = run_script(
            "enqueue.py",
            str(dataset),
            "--config",
            str(config),
            *files,
            "--no-progress",
            env=env,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stderr
    assert "done: 6 succeeded, 1 failed, 0 unfinished" in done.stdout
    assert HF_WARNING in done.stderr and "Traceback" not in done.stderr
    check_records(cohere_lines, read_jsonl(out))
    _check_hf_failure(read_jsonl(err))
