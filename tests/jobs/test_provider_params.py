"""Provider-specific parameters on the jobs side: a line's ``provider_params`` checked against every
provider its model can reach (naming the line and key), a model list entry's (naming the entry),
carried in the job payload, and part of the run identity and of the score cache key."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from jobs.cache import CACHE_VERSION, line_key, pair_key, scorer_for
from jobs.dataset import DatasetLine, parse_line
from jobs.identity import run_identity
from jobs.model_list import parse_model_list
from jobs.payload import line_payload, rerank_request
from jobs.validation import ModelCheck, validate_file
from providers.errors import ConfigurationError
from providers.types import RerankRequest
from tests.adapter_kit import deployment
from tests.support import write_dataset

NIM = "nvidia_nim/ranking/nvidia/llama-3.2-nv-rerankqa-1b-v2"
VLLM_WITH_FALLBACK = """
model_list:
  - model_name: qwen
    litellm_params: {model: hosted_vllm/Qwen/Qwen3-Reranker-4B, api_base: "http://vllm:8000"}
  - model_name: qwen-hosted
    litellm_params: {model: deepinfra/Qwen/Qwen3-Reranker-4B}
router_settings:
  fallbacks: [{"qwen": ["qwen-hosted"]}]
"""


def line(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"q{n}", "query": "solar power", "documents": ["solar power plants", "coffee"], **extra}


def problems(tmp_path: Path, lines: list[dict[str, Any]], models: ModelCheck) -> list[str]:
    found: list[str] = []
    validate_file(write_dataset(tmp_path / "d.jsonl", lines), models, lambda e: found.extend(e.describe()))
    return found


def test_a_lines_parameters_are_checked_against_its_provider_naming_line_and_key(tmp_path: Path) -> None:
    lines = [
        line(1, model=NIM, provider_params={"truncate": "NONE"}),
        line(2, model=NIM, provider_params={"truncate": "START"}),
        line(3, model=NIM, provider_params={"truncation": True}),
        line(4, provider_params={"truncate": "END"}),  # the default model's provider
        line(5, model="cohere/rerank-v3.5", provider_params={"truncate": "END"}),
        line(6, model=NIM, provider_params=["truncate"]),
        line(7, model=NIM, provider_params={}),
        line(8, model="local/bm25", provider_params={"k1": 1.2}),
    ]
    assert problems(tmp_path, lines, ModelCheck(default_model=NIM)) == [
        "line 2: provider_params.truncate: must be one of NONE, END, got 'START'",
        "line 3: provider_params.truncation: is not a parameter nvidia_nim takes (it takes: truncate)",
        "line 5: provider_params.truncate: is not a parameter cohere takes (it takes: none)",
        "line 6: provider_params: must be an object, got array",
        "line 8: provider_params.k1: is not a parameter local takes (it takes: none)",
    ]


def test_a_model_list_name_needs_every_provider_it_can_reach_to_take_the_key(tmp_path: Path) -> None:
    listed = parse_model_list(yaml.safe_load(VLLM_WITH_FALLBACK), None)
    models = ModelCheck(listed.names(), listed.providers(), "qwen")
    assert listed.providers() == {"qwen": ["hosted_vllm", "deepinfra"], "qwen-hosted": ["deepinfra"]}
    lines = [
        line(1, provider_params={"instruction": "Find the passage about energy"}),  # both take it
        line(2, provider_params={"truncation_side": "left"}),  # the fallback does not
        line(3, model="qwen-hosted", provider_params={"service_tier": "priority"}),
    ]
    assert problems(tmp_path, lines, models) == [
        "line 2: provider_params.truncation_side: is not a parameter deepinfra takes "
        "(it takes: instruction, service_tier, webhook)"
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("truncate: START", "model_list[0] (nim): litellm_params.truncate must be one of NONE, END"),
        (
            "instruction: be brief",
            "model_list[0] (nim): litellm_params.instruction is not a parameter nvidia_nim",
        ),
    ],
)
def test_a_model_list_entry_with_a_parameter_its_provider_refuses_is_an_error_naming_it(
    params: str, message: str
) -> None:
    config = f"model_list:\n  - model_name: nim\n    litellm_params:\n      model: {NIM}\n      {params}\n"
    with pytest.raises(ConfigurationError) as raised:
        parse_model_list(yaml.safe_load(config), {})
    assert raised.value.message.startswith(message), raised.value.message


def test_a_model_list_entrys_parameters_reach_its_deployment_and_unknown_keys_still_only_warn() -> None:
    config = (
        f"model_list:\n  - model_name: nim\n    litellm_params:\n      model: {NIM}\n      truncate: NONE\n"
    )
    warnings: list[str] = []
    listed = parse_model_list(yaml.safe_load(config + "      drop_params: true\n"), {}, warnings.append)
    (nim,) = listed.deployments["nim"]
    assert nim.provider_params == {"truncate": "NONE"}
    assert nim.credentials.params == {}
    assert warnings == [
        "model_list[0] (nim): litellm_params.drop_params is not used by rerank-runner; ignored"
    ]


def test_the_payload_carries_a_lines_parameters_to_the_worker() -> None:
    parsed = parse_line(1, orjson.dumps(line(1, provider_params={"truncate": "NONE"})))
    assert isinstance(parsed, DatasetLine)
    payload = line_payload("b", parsed, NIM, "run-1")
    assert payload["provider_params"] == {"truncate": "NONE"}
    assert rerank_request(payload).provider_params == {"truncate": "NONE"}
    plain = parse_line(2, orjson.dumps(line(2)))
    assert isinstance(plain, DatasetLine)
    assert "provider_params" not in line_payload("b", plain, NIM, "run-1")


def test_a_lines_parameters_are_part_of_the_run_identity(tmp_path: Path) -> None:
    def digest(lines: list[dict[str, Any]]) -> str:
        path = write_dataset(tmp_path / "d.jsonl", lines)
        report = validate_file(path, ModelCheck(default_model=NIM), lambda error: None)
        return run_identity(path, report, NIM, None, {}).digest

    assert digest([line(1, provider_params={"truncate": "NONE"})]) != digest([line(1)])
    assert digest([line(1, provider_params={"truncate": "NONE"})]) != digest(
        [line(1, provider_params={"truncate": "END"})]
    )


def test_a_model_list_entrys_parameters_are_part_of_the_run_identity(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "d.jsonl", [line(1, model="nim")])
    config = tmp_path / "config.yaml"

    def digest(extra: str) -> str:
        config.write_text(
            f"model_list:\n  - model_name: nim\n    litellm_params:\n      model: {NIM}\n{extra}"
        )
        report = validate_file(path, ModelCheck(["nim"]), lambda error: None)
        return run_identity(path, report, "nim", config, {}).digest

    assert digest("      truncate: NONE\n") != digest("      truncate: END\n") != digest("")


def old_pair_key(request: RerankRequest) -> str:
    """The pair key as it was before provider parameters existed."""
    fields = [CACHE_VERSION, "pairs", request.query, request.rank_fields, None, None]
    return hashlib.blake2b(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


def test_scoring_parameters_change_the_cache_key_and_others_do_not() -> None:
    plain = RerankRequest(query="q", documents=["a", "b"])
    assert pair_key(plain) == pair_key(replace(plain, provider_params={})) == old_pair_key(plain)
    truncated = replace(plain, provider_params={"instruction": "x"})
    assert pair_key(truncated) != pair_key(plain)
    assert line_key(truncated) != line_key(plain)
    unscored = frozenset({"service_tier", "webhook"})
    tiered = replace(plain, provider_params={"service_tier": "priority"})
    assert pair_key(tiered, unscored) == pair_key(plain, unscored)
    assert pair_key(
        replace(tiered, provider_params={"service_tier": "priority", "instruction": "x"}), unscored
    ) == (pair_key(truncated, unscored))


def test_a_deployments_scoring_parameters_are_part_of_its_scorer() -> None:
    nim = deployment("nvidia_nim", "ranking/nvidia/llama-3.2-nv-rerankqa-1b-v2", base="http://nim:8000")
    plain = scorer_for([nim], has_fallbacks=False)
    assert scorer_for([replace(nim, provider_params={})], has_fallbacks=False) == plain
    assert (
        scorer_for([replace(nim, provider_params={"truncate": "NONE"})], False).namespace != plain.namespace
    )
    tiers = deployment("deepinfra", "Qwen/Qwen3-Reranker-4B")
    tiered = scorer_for([replace(tiers, provider_params={"service_tier": "priority"})], False)
    assert tiered.namespace == scorer_for([tiers], False).namespace  # billing, not scores
    assert tiered.unscored == frozenset({"service_tier", "webhook"})
