"""LiteLLM-style config.yaml model lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs.model_list import load_model_list, parse_model_list
from jobs.validation import ModelCheck
from providers.deployment import Credentials
from providers.dispatcher import Dispatcher
from providers.errors import ConfigurationError
from providers.gate import OpenGate
from providers.reranker import Reranker
from providers.retry import RetryPolicy
from tests.support import ROOT

PROXY_CONFIG = """
model_list:
  - model_name: my-reranker
    litellm_params:
      model: cohere/rerank-v3.5
      api_key: os.environ/COHERE_API_KEY
      rpm: 100
      timeout: 30
  - model_name: my-reranker
    litellm_params:
      model: azure_ai/cohere-rerank-v3.5
      api_key: os.environ/AZURE_AI_API_KEY
      api_base: https://example.services.ai.azure.com/providers/cohere/v2
      tpm: 50000
      mystery_setting: 3
    model_info:
      id: azure-1
  - model_name: backup
    litellm_params:
      model: jina_ai/jina-reranker-v2-base-multilingual
litellm_settings:
  drop_params: true
general_settings:
  master_key: sk-1234
router_settings:
  routing_strategy: simple-shuffle
  fallbacks: [{"my-reranker": ["backup"]}]
"""
ENV = {"COHERE_API_KEY": "co-key", "AZURE_AI_API_KEY": "az-key", "JINA_AI_API_KEY": "jina-env-key"}


def parse(text: str, environ: dict[str, str] | None = ENV) -> tuple[Any, list[str]]:
    warnings: list[str] = []
    return parse_model_list(yaml.safe_load(text), environ, warnings.append), warnings


def test_a_litellm_proxy_config_loads_as_is() -> None:
    models, warnings = parse(PROXY_CONFIG)
    assert models.names() == ["backup", "my-reranker"]
    cohere, azure = models.deployments["my-reranker"]
    assert (cohere.provider, cohere.wire_model, cohere.limits.rpm) == ("cohere", "rerank-v3.5", 100)
    assert (
        cohere.credentials.api_key is not None and cohere.credentials.api_key.get_secret_value() == "co-key"
    )
    assert (azure.provider, azure.limits.tpm, azure.name) == ("azure_ai", 50000, "my-reranker#1")
    assert azure.credentials.api_base == "https://example.services.ai.azure.com/providers/cohere/v2"
    # a key the entry leaves out comes from the provider's usual variable
    (jina,) = models.deployments["backup"]
    assert (
        jina.credentials.api_key is not None and jina.credentials.api_key.get_secret_value() == "jina-env-key"
    )
    assert models.fallbacks == {"my-reranker": ["backup"]}
    assert warnings == [
        "general_settings is not used by rerank-runner; ignored",
        "litellm_settings is not used by rerank-runner; ignored",
        "model_list[1] (my-reranker): litellm_params.mystery_setting is not used by rerank-runner; ignored",
        "router_settings.routing_strategy is not used by rerank-runner; ignored",
    ]


def test_secrets_never_show_in_reprs() -> None:
    models, _ = parse(PROXY_CONFIG)
    assert "co-key" not in repr(models) and "az-key" not in repr(models)


def test_an_entry_with_an_unset_variable_is_left_out_with_a_warning() -> None:
    models, warnings = parse(PROXY_CONFIG, {"COHERE_API_KEY": "x"})
    assert (
        "model_list[1] (my-reranker): environment variable AZURE_AI_API_KEY not set; "
        + ("this entry is unavailable")
        in warnings
    )
    assert [d.name for d in models.deployments["my-reranker"]] == ["my-reranker#0"]
    assert models.unavailable == {}  # the name still has its Cohere deployment
    assert models.names() == ["backup", "my-reranker"]


async def test_a_name_whose_entries_all_lack_variables_is_unavailable_not_fatal() -> None:
    text = """
model_list:
  - model_name: hf
    litellm_params: {model: huggingface/BAAI/bge, api_key: os.environ/HF_TOKEN, api_base: os.environ/HF_BASE}
  - model_name: co
    litellm_params: {model: cohere/rerank-v3.5, api_key: os.environ/COHERE_API_KEY}
router_settings:
  fallbacks: [{"co": ["hf"]}]
"""
    models, warnings = parse(text, {"COHERE_API_KEY": "x"})
    assert (
        "model_list[0] (hf): environment variables HF_TOKEN, HF_BASE not set; this entry is unavailable"
        in (warnings)
    )
    assert models.names() == ["co", "hf"]  # enqueue and workers agree on the names
    assert models.unavailable == {"hf": "model_list[0] (hf): environment variables HF_TOKEN, HF_BASE not set"}
    reranker = Reranker(
        Dispatcher(None, RetryPolicy()),  # type: ignore[arg-type]
        {},
        models.deployments,
        models.fallbacks,
        unavailable=models.unavailable,
    )
    assert [d.name for d in reranker.candidates("co")] == ["co#1"]
    with pytest.raises(
        ConfigurationError, match=r"model 'hf' is unavailable on this worker: .*HF_TOKEN"
    ) as err:
        reranker.candidates("hf")
    assert err.value.to_record()["code"] == "configuration"


def test_an_unset_variable_does_not_hide_a_broken_entry() -> None:
    text = (
        "model_list: [{model_name: x, litellm_params: {model: cohere/x, api_key: os.environ/NOPE, rpm: 0}}]"
    )
    with pytest.raises(ConfigurationError, match=r"rpm: must be a positive"):
        parse(text, {})


def test_names_only_mode_needs_no_environment() -> None:
    models, _ = parse(PROXY_CONFIG, None)
    assert models.names() == ["backup", "my-reranker"]
    assert models.deployments["my-reranker"][0].credentials.api_key is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_list: [{model_name: x, litellm_params: {model: nope/m}}]", "unknown provider 'nope'"),
        ("model_list: [{model_name: x, litellm_params: {}}]", r"litellm_params.model is required"),
        ("model_list: [{litellm_params: {model: cohere/x}}]", "needs a model_name"),
        (
            "model_list: [{model_name: x, litellm_params: {model: cohere/x, rpm: 0}}]",
            r"rpm: must be a positive",
        ),
        (
            "model_list: [{model_name: x, litellm_params: {model: cohere/x}}]\n"
            "router_settings: {fallbacks: [{x: [y]}]}",
            "fallbacks names 'y'",
        ),
        ("[1, 2]", "must be a mapping"),
    ],
)
def test_bad_configs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse(text)


def test_example_config_loads(tmp_path: Path) -> None:
    env = {
        "COHERE_API_KEY": "a",
        "AZURE_AI_API_KEY": "b",
        "AZURE_AI_API_BASE": "https://x",
        "JINA_AI_API_KEY": "c",
    }
    models = load_model_list(ROOT / "examples" / "config.yaml", env)
    assert models.names() == ["backup-reranker", "my-reranker", "offline"]
    assert ModelCheck(models.names()).problem("my-reranker") is None
    assert ModelCheck(models.names()).problem("not-there") is not None


def test_unreadable_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("model_list: [unclosed")
    with pytest.raises(ConfigurationError, match=str(path)):
        load_model_list(path, {})


async def test_lines_take_turns_over_a_names_deployments_without_limits() -> None:
    models, _ = parse(PROXY_CONFIG)
    reranker = Reranker(Dispatcher(None, RetryPolicy()), {}, models.deployments)  # type: ignore[arg-type]
    candidates = reranker.candidates("my-reranker")
    gate = OpenGate()
    picked = [(await gate.acquire(candidates, 1, 1)).deployment.name for _ in range(4)]
    assert picked == ["my-reranker#0", "my-reranker#1", "my-reranker#0", "my-reranker#1"]
    assert reranker.candidates("cohere/rerank-v3.5")[0].credentials == Credentials()
