"""The README's configuration table and command line stay true to the settings and flags."""

from __future__ import annotations

import re

import pytest

from enqueue import parse_args
from jobs.settings import RunnerSettings
from tests.support import ROOT

README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(RunnerSettings.model_fields))
def test_every_setting_has_a_row_in_the_configuration_table(name: str) -> None:
    variable = "REDIS_URL" if name == "redis_url" else f"RR_{name.upper()}"
    assert re.search(rf"^\| [^|]*`{variable}`", README, re.MULTILINE), variable


@pytest.mark.parametrize("flag", ["--max-line-bytes", "--max-document-bytes"])
def test_the_limit_flags_are_documented_and_parsed(flag: str) -> None:
    assert f"[{flag} N]" in README
    args = parse_args(["data.jsonl", flag, "2048"])
    assert getattr(args, flag.removeprefix("--").replace("-", "_")) == 2048


def test_documented_defaults_are_the_settings_defaults() -> None:
    fields = RunnerSettings.model_fields
    for name in ("max_line_bytes", "max_document_bytes", "max_response_bytes"):
        default = fields[name].default
        assert f"| `RR_{name.upper()}` | {default} (" in README, name
