"""providers/params.py: what a declared parameter takes, and where a value lands on a built request.
(Each adapter's own declarations: tests/cases and the contract suite.)"""

from __future__ import annotations

from typing import Any

import pytest

from providers.adapter import WireRequest
from providers.params import Param, check, describe, forward, scoring, unscored

DECLARED = (
    Param("truncate", "string", ("NONE", "END")),
    Param("tokens", "integer", minimum=-1),
    Param("flag", "boolean"),
    Param("weight", "number"),
    Param("api-version", "string", into="query", scores=False),
    Param("tier", "string", wire="service_tier", scores=False),
)


TAKES = "api-version, flag, tier, tokens, truncate, weight"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"truncate": "END", "tokens": -1, "flag": False, "weight": 1}, None),
        ({"weight": 0.5}, None),
        ({}, None),
        ({"truncate": "START"}, "p.truncate must be one of NONE, END, got 'START'"),
        ({"tokens": True}, "p.tokens must be an integer, got boolean"),  # JSON true is no integer
        ({"tokens": 2.0}, "p.tokens must be an integer, got number"),
        ({"tokens": -2}, "p.tokens must be at least -1, got -2"),
        ({"flag": 1}, "p.flag must be a boolean, got integer"),
        ({"weight": "1"}, "p.weight must be a number, got string"),
        ({"truncate": None}, "p.truncate must be a string, got null"),
        ({"other": 1}, "p.other is not a parameter x takes (it takes: " + TAKES + ")"),
    ],
)  # fmt: skip
def test_values_are_held_to_the_declaration(values: dict[str, Any], problem: str | None) -> None:
    assert check(DECLARED, "x", values, "p") == problem


def test_body_fields_replace_defaults_and_query_parameters_replace_the_bases() -> None:
    built = WireRequest(url="https://h/v1/rerank?api-version=old&keep=1", body={"truncate": "END", "q": "x"})
    sent = forward(DECLARED, {"truncate": "NONE", "tier": "priority", "api-version": "2024-05-01"}, built)
    assert sent.body == {"truncate": "NONE", "q": "x", "service_tier": "priority"}
    assert sent.url == "https://h/v1/rerank?keep=1&api-version=2024-05-01"
    assert built.body == {"truncate": "END", "q": "x"}  # the built request is left as it was
    assert forward(DECLARED, {}, built) is built


def test_only_parameters_that_change_scores_are_kept_for_cache_keys() -> None:
    skip = unscored(DECLARED)
    assert skip == frozenset({"api-version", "tier"})
    assert scoring({"tier": "priority", "truncate": "NONE", "flag": True}, skip) == {
        "flag": True,
        "truncate": "NONE",
    }
    assert scoring(None, skip) == {}


def test_the_table_cell_says_type_or_values_place_and_score_effect() -> None:
    assert describe(DECLARED[0]) == "`truncate` (`NONE`/`END`; body)"
    assert describe(DECLARED[4]) == "`api-version` (string; query, no score effect)"
    assert describe(DECLARED[5]) == "`tier` (string; body as `service_tier`, no score effect)"
