"""The score cache end to end: enqueue.py -> Redis -> a real worker.py process -> local wire
servers -> batch.py.  Requests are counted at the servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.adapter_kit import serving
from tests.e2e import WORKER_ENV, CliRun
from tests.servers.cohere import CohereServer
from tests.servers.together_ai import TogetherServer
from tests.support import WORDS, write_dataset
from tests.wire_server import score

pytestmark = pytest.mark.integration

COHERE_KEY = "cache-cohere-key"
TOGETHER_KEY = "cache-together-key"
LINES = 12


cohere = serving(lambda: CohereServer(COHERE_KEY))


together = serving(lambda: TogetherServer(TOGETHER_KEY))


def candidates(extra: int = 0, top_n: int | None = None) -> list[dict[str, Any]]:
    """Lines of 6 documents (``extra`` more at the end), shared across queries as a real
    candidate pool would be."""
    made = []
    for n in range(LINES):
        a, b = WORDS[n % len(WORDS)], WORDS[(n * 7 + 3) % len(WORDS)]
        documents = [f"{a} {b} notes", f"{a} only", f"{b} guide", "shared filler", f"{a} {n}", "other"]
        documents += [f"{b} extra {k}" for k in range(extra)]
        line: dict[str, Any] = {"id": f"q{n}", "query": f"{a} {b}", "documents": documents}
        if top_n is not None:
            line["top_n"] = top_n
        made.append(line)
    return made


def check_scores(records: list[dict[str, Any]], lines: list[dict[str, Any]], expected_length: int) -> None:
    for record, line in zip(records, lines, strict=True):
        results = record["results"]
        assert len(results) == expected_length
        for result in results:
            assert result["relevance_score"] == score(line["query"], line["documents"][result["index"]])
        ranked = [r["relevance_score"] for r in results]
        assert ranked == sorted(ranked, reverse=True)


def test_a_repeated_run_under_another_name_sends_nothing_and_new_documents_only_themselves(
    cohere: CohereServer, redis_url: str, tmp_path: Path
) -> None:
    env = {
        **WORKER_ENV,
        "REDIS_URL": redis_url,
        "COHERE_API_KEY": COHERE_KEY,
        "COHERE_API_BASE": cohere.base_url,
    }
    runner = CliRun(env, tmp_path)
    model = ("--model", "cohere/rerank-v3.5")
    lines = candidates()
    dataset = write_dataset(tmp_path / "cands.jsonl", lines)

    first_batch, _, first = runner.run(dataset, *model, "--batch", "first")
    first_requests = len(cohere.requests)
    assert first_requests == LINES
    assert all(r["cache"] == {"hits": 0, "misses": 6} for r in first)
    check_scores(first, lines, 6)

    _, _, second = runner.run(dataset, *model, "--batch", "second")
    assert len(cohere.requests) == first_requests  # not one request
    assert all(r["cache"] == {"hits": 6, "misses": 0} and r["requests"] == 0 for r in second)
    assert [r["results"] for r in second] == [r["results"] for r in first]
    assert runner.status("second")["cache"] == {"hits": 6 * LINES, "misses": 0}
    assert runner.status(first_batch)["cache"] == {"hits": 0, "misses": 6 * LINES}

    # two new documents per line and a top_n: only the new documents are sent, without top_n
    grown = candidates(extra=2, top_n=3)
    write_dataset(dataset, grown)
    _, _, third = runner.run(dataset, *model, "--batch", "third")
    sent = [r.body for r in cohere.requests[first_requests:]]
    assert len(sent) == LINES
    assert all(len(body["documents"]) == 2 and "top_n" not in body for body in sent)
    assert all(r["cache"] == {"hits": 6, "misses": 2} for r in third)
    check_scores(third, grown, 3)

    # --no-cache asks again for every document
    _, _, fresh = runner.run(dataset, *model, "--batch", "fresh", "--no-cache")
    assert len(cohere.requests) == 3 * first_requests
    assert all(r["cache"] == {"hits": 0, "misses": 8} for r in fresh)
    assert [r["results"] for r in fresh] == [r["results"] for r in third]


def test_a_set_dependent_provider_is_cached_only_line_by_line(
    together: TogetherServer, redis_url: str, tmp_path: Path
) -> None:
    env = {
        **WORKER_ENV,
        "REDIS_URL": redis_url,
        "TOGETHER_API_KEY": TOGETHER_KEY,
        "TOGETHER_AI_API_BASE": f"{together.base_url}/v1",
    }
    runner = CliRun(env, tmp_path)
    model = ("--model", "together_ai/test/reranker")
    dataset = write_dataset(tmp_path / "cands.jsonl", candidates(top_n=2))
    runner.run(dataset, *model, "--batch", "one")
    assert len(together.requests) == LINES
    _, _, again = runner.run(dataset, *model, "--batch", "two")
    assert len(together.requests) == LINES
    assert all(r["cache"] == {"hits": 6, "misses": 0} for r in again)

    # one more candidate changes the set: the whole line is asked again, top_n included
    write_dataset(dataset, candidates(extra=1, top_n=2))
    _, _, grown = runner.run(dataset, *model, "--batch", "three")
    sent = [r.body for r in together.requests[LINES:]]
    assert len(sent) == LINES and all(len(b["documents"]) == 7 and b["top_n"] == 2 for b in sent)
    assert all(r["cache"] == {"hits": 0, "misses": 7} for r in grown)
