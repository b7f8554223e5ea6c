"""The local wire servers' shared scoring (tests/wire_server.py), on which every expected ranking
in the provider tests rests."""

from __future__ import annotations

import pytest

from tests.wire_server import ranked, score


def test_scores_are_word_overlap_fractions() -> None:
    assert score("Solar power", "solar panels make power") == 1.0
    assert score("solar power plants", "Solar!") == pytest.approx(1 / 3)
    assert score("a b c d", "a c") == 0.5
    assert score("solar", "") == 0.0
    assert score("", "x") == 0.0


def test_rankings_are_best_first_ties_by_index_and_cut() -> None:
    assert ranked("solar power", ["coffee", "solar", "power", "solar power"]) == [
        (3, 1.0), (1, 0.5), (2, 0.5), (0, 0.0),
    ]  # fmt: skip
    assert ranked("solar power", ["coffee", "solar", "power", "solar power"], top_n=2) == [(3, 1.0), (1, 0.5)]
