"""The documents stay true to the code: every provider is described."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers import catalog
from providers.deployment import Credentials, Deployment
from providers.registry import HTTP_ADAPTERS
from tests.support import ROOT

PROVIDERS_MD = ROOT / "docs" / "providers.md"


def test_the_provider_table_is_the_one_the_adapters_generate() -> None:
    text = PROVIDERS_MD.read_text()
    assert catalog.splice(text) == text, "docs/providers.md is out of date: ./rr python -m providers.catalog"


def test_every_provider_has_a_row_in_the_table_the_endpoints_and_the_readme() -> None:
    table = catalog.table()
    endpoints = PROVIDERS_MD.read_text().partition("## Endpoints")[2]
    readme = (ROOT / "README.md").read_text()
    for prefix in ["local", *HTTP_ADAPTERS]:
        assert f"| `{prefix}/" in table, prefix
        assert f"| `{prefix}/" in endpoints, prefix
        assert f"`{prefix}/" in readme, prefix


def test_every_variable_an_adapter_reads_is_in_the_table() -> None:
    table = catalog.table()
    for adapter in HTTP_ADAPTERS.values():
        settings = [name for names in adapter.param_env.values() for name in names]
        for name in (*adapter.key_env, *adapter.base_env, *settings):
            assert f"`{name}`" in table, (adapter.provider, name)


VARIANT_DEPLOYMENTS = {
    "nvidia_nim": {"retrieval": ("nvidia/m", None), "ranking": ("ranking/nvidia/m", None)},
    "together_ai": {
        "llama-rank": ("Salesforce/Llama-Rank-V1", None),
        "serverless": ("mixedbread-ai/m", None),
    },
}
"""(wire model, base) per variant, for variants not chosen by the base's version (``v1``, ``v2``)."""


@pytest.mark.parametrize("provider", [p for p, a in HTTP_ADAPTERS.items() if a.variants])
def test_declared_variants_are_what_the_capabilities_hook_chooses_between(provider: str) -> None:
    adapter = HTTP_ADAPTERS[provider]
    chosen = {}
    for variant in adapter.variants:
        wire_model, base = VARIANT_DEPLOYMENTS.get(provider, {}).get(
            variant, ("m", f"https://rerank.test/{variant}")
        )
        deployment = Deployment(f"{provider}/{wire_model}", provider, wire_model, Credentials(api_base=base))
        chosen[variant] = adapter.capabilities(deployment)
    assert chosen == adapter.variants


def test_check_mode_reports_a_stale_file_and_the_command_rewrites_it(tmp_path: Path) -> None:
    stale = tmp_path / "providers.md"
    stale.write_text(f"# Providers\n\n{catalog.BEGIN}\n| old |\n{catalog.END}\n\nprose kept\n")
    assert catalog.main(["--check", "--file", str(stale)]) == 1
    assert catalog.main(["--file", str(stale)]) == 0
    assert stale.read_text() == f"# Providers\n\n{catalog.table()}\n\nprose kept\n"
    assert catalog.main(["--check", "--file", str(stale)]) == 0


def test_a_file_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        catalog.splice("# Providers\n")
