"""The documents stay true to the code: every provider is described."""

from __future__ import annotations

from providers.registry import HTTP_ADAPTERS
from tests.support import ROOT


def test_every_provider_has_a_row_in_the_provider_table() -> None:
    table = (ROOT / "docs" / "providers.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for prefix in ["local", *HTTP_ADAPTERS]:
        assert f"| `{prefix}/" in table, prefix
        assert f"`{prefix}/" in readme, prefix


def test_every_key_variable_is_documented() -> None:
    table = (ROOT / "docs" / "providers.md").read_text()
    for adapter in HTTP_ADAPTERS.values():
        for name in (*adapter.key_env, *adapter.base_env):
            assert f"`{name}`" in table, (adapter.provider, name)
