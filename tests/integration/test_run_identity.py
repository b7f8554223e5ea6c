"""Run identity end to end: enqueue.py -> Redis -> a real worker.py process -> the local Cohere
wire server -> batch.py results.  Another model or an edited file is another batch, never the
old scores; the same command twice is a resume that sends nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import WORKER_ENV, CliRun
from tests.servers.cohere import CohereServer
from tests.support import write_dataset
from tests.wire_server import score

pytestmark = pytest.mark.integration

KEY = "identity-cohere-key"
MODEL_A = "cohere/rerank-v3.5"
MODEL_B = "cohere/rerank-english-v3.0"


@pytest.fixture
def server() -> Iterator[CohereServer]:
    with CohereServer(KEY) as running:
        yield running


def lines(documents_per_line: int, top_n: int | None = None) -> list[dict[str, Any]]:
    made = []
    for n in range(3):
        documents = [f"solar wind {n}", f"river {n}", "solar", f"mountain coffee {n}", "wind"]
        line: dict[str, Any] = {
            "id": f"q{n}",
            "query": f"solar wind {n}",
            "documents": documents[:documents_per_line],
        }
        if top_n is not None:
            line["top_n"] = top_n
        made.append(line)
    return made


def cohere_env(redis_url: str, server: CohereServer) -> dict[str, str]:
    return {**WORKER_ENV, "REDIS_URL": redis_url, "COHERE_API_KEY": KEY, "COHERE_API_BASE": server.base_url}


def requests_for(server: CohereServer, model: str) -> int:
    """Requests the server answered for a ``provider/model`` name (its body names the wire model)."""
    wire_model = model.partition("/")[2]
    return sum(1 for r in server.requests if isinstance(r.body, dict) and r.body.get("model") == wire_model)


def scores_of(record: dict[str, Any], line: dict[str, Any]) -> list[tuple[int, float]]:
    """The (index, score) pairs a record holds, checked against what the server scores."""
    pairs = [(r["index"], r["relevance_score"]) for r in record["results"]]
    for index, value in pairs:
        assert value == score(line["query"], line["documents"][index])
    return pairs


def test_model_switch_and_in_place_edit_never_export_stale_scores(
    server: CohereServer, redis_url: str, tmp_path: Path
) -> None:
    runner = CliRun(cohere_env(redis_url, server), tmp_path)
    dataset = write_dataset(tmp_path / "topics.jsonl", lines(4))

    batch_a, _, results_a = runner.run(dataset, "--model", MODEL_A)
    assert re.fullmatch(r"topics-cohere-rerank-v3\.5-[0-9a-f]{10}", batch_a)
    assert {r["model"] for r in results_a} == {MODEL_A} and requests_for(server, MODEL_A) == 3

    # the same file through another model: another batch, every line re-ranked by that model
    batch_b, stdout_b, results_b = runner.run(dataset, "--model", MODEL_B)
    assert batch_b != batch_a and batch_b.startswith("topics-cohere-rerank-english-v3.0-")
    assert "enqueued 3 new lines" in stdout_b
    assert {r["model"] for r in results_b} == {MODEL_B} and requests_for(server, MODEL_B) == 3
    assert len({r["run"] for r in results_a} | {r["run"] for r in results_b}) == 2

    # the file rewritten in place (5 documents, top_n 3): another batch, the new lines' scores
    edited = lines(5, top_n=3)
    write_dataset(dataset, edited)
    batch_c, stdout_c, results_c = runner.run(dataset, "--model", MODEL_B)
    assert batch_c not in (batch_a, batch_b) and "enqueued 3 new lines" in stdout_c
    assert requests_for(server, MODEL_B) == 6
    for record, line in zip(results_c, edited, strict=True):
        assert len(scores_of(record, line)) == 3

    # the same command again is the same batch: a resume that sends nothing
    before = len(server.requests)
    batch_again, stdout_again, results_again = runner.run(dataset, "--model", MODEL_B)
    assert batch_again == batch_c
    assert "enqueued 0 new lines" in stdout_again and "3 already done" in stdout_again
    assert len(server.requests) == before and results_again == results_c


def test_a_named_batch_refuses_other_content_until_replaced(
    server: CohereServer, redis_url: str, tmp_path: Path
) -> None:
    runner = CliRun(cohere_env(redis_url, server), tmp_path)
    dataset = write_dataset(tmp_path / "named.jsonl", lines(4))
    _, _, first = runner.run(dataset, "--model", MODEL_A, "--batch", "mine")
    assert all(len(r["results"]) == 4 for r in first)

    for change in (["--model", MODEL_B], ["--model", MODEL_A]):
        if change == ["--model", MODEL_A]:
            write_dataset(dataset, lines(5, top_n=2))
        refused = runner.enqueue(dataset, *change, "--batch", "mine")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "batch 'mine' already holds another run" in refused.stderr
        assert "--replace" in refused.stderr and "--batch" in refused.stderr
    assert "the lines differ" in refused.stderr

    requests_before = len(server.requests)
    _, stdout, replaced = runner.run(dataset, "--model", MODEL_A, "--batch", "mine", "--replace")
    assert "replaced batch mine: dropped its 3 lines" in stdout and "enqueued 3 new lines" in stdout
    assert len(server.requests) == requests_before + 3
    edited = lines(5, top_n=2)
    for record, line in zip(replaced, edited, strict=True):
        assert len(scores_of(record, line)) == 2


def test_a_line_of_ids_resolves_through_the_corpus_and_the_corpus_is_part_of_the_run(
    server: CohereServer, redis_url: str, tmp_path: Path
) -> None:
    runner = CliRun(cohere_env(redis_url, server), tmp_path)
    corpus = tmp_path / "corpus.jsonl"
    texts = {
        f"d{k}": f"{word} passage {k}" for k, word in enumerate(["solar", "wind", "river", "solar wind"])
    }
    corpus.write_text("".join(f'{{"_id": "{k}", "text": "{t}"}}\n' for k, t in texts.items()))
    lines: list[dict[str, Any]] = [
        {
            "id": f"q{n}",
            "query": query,
            "documents": [{"id": k, "score": 10.0 - i} for i, k in enumerate(texts)],
        }
        for n, query in enumerate(["solar wind", "river"])
    ]
    dataset = write_dataset(tmp_path / "run.jsonl", lines)

    refused = runner.enqueue(dataset, "--model", MODEL_A, "--rejects", str(tmp_path / "rejects.jsonl"))
    assert refused.returncode == 1 and "line 1: documents: all 4 documents are only ids" in refused.stderr

    batch, _, results = runner.run(dataset, "--model", MODEL_A, "--corpus", str(corpus))
    assert {tuple(r.body["documents"]) for r in server.requests} == {tuple(texts.values())}
    for record, line in zip(results, lines, strict=True):
        for item in record["results"]:
            assert item["document_id"] == f"d{item['index']}"
            assert item["relevance_score"] == score(str(line["query"]), texts[item["document_id"]])

    corpus.write_text(corpus.read_text().replace("river passage", "glacier passage"))
    changed, stdout, _ = runner.run(dataset, "--model", MODEL_A, "--corpus", str(corpus))
    assert changed != batch and "enqueued 2 new lines" in stdout
