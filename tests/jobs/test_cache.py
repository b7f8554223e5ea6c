"""Score cache keys: everything that changes what a provider scores changes the key."""

from __future__ import annotations

import re
from dataclasses import replace

from jobs.cache import document_hash, line_key, pair_key
from providers.registry import HTTP_ADAPTERS
from providers.types import RerankRequest
from tests.support import ROOT

REQUEST = RerankRequest(query="solar wind", documents=["solar panels", {"id": "d2", "text": "wind"}])


def test_what_is_scored_changes_the_pair_key_and_top_n_does_not() -> None:
    changed = [
        replace(REQUEST, query="solar"),
        replace(REQUEST, rank_fields=["text"]),
        replace(REQUEST, max_chunks_per_doc=2),
        replace(REQUEST, max_tokens_per_doc=64),
    ]
    keys = {pair_key(r) for r in [REQUEST, *changed]}
    assert len(keys) == 5
    assert pair_key(replace(REQUEST, top_n=1)) == pair_key(REQUEST)  # pairs are asked without top_n


def test_a_line_key_covers_the_whole_candidate_set_and_top_n() -> None:
    assert line_key(replace(REQUEST, top_n=1)) != line_key(REQUEST)
    assert line_key(replace(REQUEST, documents=["solar panels"])) != line_key(REQUEST)
    assert line_key(replace(REQUEST, documents=list(reversed(REQUEST.documents)))) != line_key(REQUEST)


def test_a_document_hash_is_its_content() -> None:
    assert document_hash({"id": "d2", "text": "wind"}) == document_hash({"text": "wind", "id": "d2"})
    assert document_hash({"id": "d2", "text": "wind"}) != document_hash({"id": "d3", "text": "wind"})
    assert document_hash("wind") != document_hash({"text": "wind"})


def test_the_readme_names_exactly_the_per_document_scorers() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"`independent_scores`, today (.*?)\), only", readme, re.DOTALL)
    assert listed, "README: the score cache section lists the per-document scorers"
    named = set(re.findall(r"`([a-z_]+)`", listed.group(1)))
    assert named == {name for name, adapter in HTTP_ADAPTERS.items() if adapter.independent_scores}
