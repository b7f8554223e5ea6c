"""The run identity: what changes it, what does not, and that it never holds a secret."""

from __future__ import annotations

import gc
import hashlib
import threading
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr
from pytest import MonkeyPatch

from jobs import identity as identity_module
from jobs.dataset import LineLimits
from jobs.identity import LinesDigest, RunIdentity, default_batch_name, run_identity
from jobs.validation import ModelCheck, validate_file
from providers.adapters import local
from providers.deployment import Credentials
from tests.support import synthetic_lines, write_dataset

CONFIG = """
model_list:
  - model_name: ranker
    litellm_params:
      model: cohere/rerank-v3.5
      api_key: sk-very-secret
      api_base: http://one.example
      rpm: 100
  - model_name: ranker
    litellm_params:
      model: azure_ai/cohere-rerank-v3.5
      api_key: os.environ/AZURE_AI_API_KEY
      api_base: os.environ/AZURE_AI_API_BASE
      headers: {Authorization: Bearer nope, X-Tenant: t1}
  - model_name: backup
    litellm_params:
      model: jina_ai/jina-reranker-v2-base-multilingual
router_settings:
  fallbacks: [{"ranker": ["backup"]}]
"""


def identity(path: Path, model: str, config: Path | None = None, **credentials: Credentials) -> RunIdentity:
    report = validate_file(path, ModelCheck(), lambda error: None)
    return run_identity(path, report, model, config, credentials)


def test_lines_and_model_change_the_identity_and_nothing_else_does(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(4))
    first = identity(path, "cohere/rerank-v3.5")
    assert identity(path, "cohere/rerank-v3.5") == first
    assert identity(path, "cohere/rerank-english-v3.0").digest != first.digest
    base = Credentials(api_base="http://elsewhere")
    assert identity(path, "cohere/rerank-v3.5", cohere=base).digest != first.digest
    key = Credentials(api_key=SecretStr("k2"))
    assert identity(path, "cohere/rerank-v3.5", cohere=key).digest == first.digest
    write_dataset(path, synthetic_lines(4, top_n=2))
    edited = identity(path, "cohere/rerank-v3.5")
    assert edited.digest != first.digest
    assert edited.differences(first.summary()) == ["the lines differ (4 lines then, 4 now)"]
    assert default_batch_name(path, edited) == f"d-cohere-rerank-v3.5-{edited.digest[:10]}"


def test_a_model_list_name_covers_its_deployments_and_fallbacks_without_secrets(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(2))
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    found = identity(path, "ranker", config)
    assert set(found.models) == {"ranker", "backup"}
    ranker = found.models["ranker"]
    assert ranker["fallbacks"] == ["backup"]
    assert {d["model"] for d in ranker["deployments"]} == {
        "cohere/rerank-v3.5",
        "azure_ai/cohere-rerank-v3.5",
    }
    text = orjson.dumps(found.summary()).decode()
    for secret in ("sk-very-secret", "AZURE_AI_API_KEY", "Bearer nope", "rpm"):
        assert secret not in text
    assert "http://one.example" in text and "os.environ/AZURE_AI_API_BASE" in text and "t1" in text
    config.write_text(CONFIG.replace("http://one.example", "http://two.example"))
    moved = identity(path, "ranker", config)
    assert moved.digest != found.digest
    assert "resolves to differs" in moved.differences(found.summary())[0]


def test_the_identity_fed_by_validation_is_the_one_streamed_from_the_file(tmp_path: Path) -> None:
    """Enqueue hashes the lines while validating them (one pass less); a bad line, a long one, a
    model per line and, with duplicates, the second pass it then needs give the same identity."""
    lines = synthetic_lines(6)
    lines[2]["model"] = "cohere/rerank-v3.5"
    rows = [orjson.dumps(line) for line in lines]
    rows.insert(3, b'{"id": "bad", "query": ""}')
    rows.insert(5, orjson.dumps({**lines[0], "documents": ["x" * 3000]}))  # over the line limit below
    for name, extra in (("plain", []), ("duplicated", [orjson.dumps(lines[1])])):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"\n".join([*rows, *extra]) + b"\n")
        fed = LinesDigest()
        limits = LineLimits(max_line_bytes=2048)
        report = validate_file(path, ModelCheck(), lambda error: None, limits, on_valid=fed.add)
        assert bool(report.duplicate_lines) == (name == "duplicated")
        streamed = run_identity(path, report, "local/bm25", None, {}, max_line_bytes=2048)
        assert run_identity(path, report, "local/bm25", None, {}, None, 2048, fed) == streamed
        assert streamed.lines == 6 and "cohere/rerank-v3.5" in streamed.models


@pytest.mark.parametrize("chunk_bytes", [identity_module.HASH_CHUNK_BYTES, 1500])
def test_the_lines_digest_is_the_one_batches_enqueued_before_were_named_by(
    chunk_bytes: int, monkeypatch: MonkeyPatch
) -> None:
    """blake2b over each line's header and bytes in turn: a batch an earlier version enqueued
    resumes under its own name (a faster hash would need IDENTITY_VERSION 2 and a way back),
    whether the lines fit in one chunk or go through the hashing thread in many."""
    monkeypatch.setattr(identity_module, "HASH_CHUNK_BYTES", chunk_bytes)
    rows = [orjson.dumps(line) for line in synthetic_lines(40)]
    by_line = hashlib.blake2b(digest_size=16)
    for line_no, raw in enumerate(rows, start=1):
        by_line.update(b"%d %d\n" % (line_no, len(raw)))
        by_line.update(raw)
    fed = LinesDigest()
    for line_no, raw in enumerate(rows, start=1):
        fed.add(line_no, raw, orjson.loads(raw))
    assert fed.hexdigest() == by_line.hexdigest()
    assert (fed._hasher is not None) == (chunk_bytes == 1500)  # 40 short lines fit one 4 MB chunk
    assert fed.hexdigest() == by_line.hexdigest()  # asked again (a bake-off asks once a model)


def test_a_digest_nobody_asks_for_leaves_no_thread_behind(monkeypatch: MonkeyPatch) -> None:
    """Validation that refuses the file never asks for the digest: in a notebook that validates
    again and again, each such digest's hashing thread still ends."""
    monkeypatch.setattr(identity_module, "HASH_CHUNK_BYTES", 1500)
    fed = LinesDigest()
    for line_no, line in enumerate(synthetic_lines(40), start=1):
        raw = orjson.dumps(line)
        fed.add(line_no, raw, line)
    hashing = [t for t in threading.enumerate() if t.name.startswith("lines-digest")]
    assert hashing
    del fed
    gc.collect()
    for thread in hashing:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in hashing)


def test_a_local_model_is_identified_with_its_scorer_version(
    tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    """A batch of an older local ranker is never resumed with the new one (mixed scores)."""
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(2))
    config = tmp_path / "config.yaml"
    config.write_text("model_list:\n  - model_name: lexical\n    litellm_params: {model: local/ql}\n")
    raw, listed = identity(path, "local/bm25"), identity(path, "lexical", config)
    assert raw.models["local/bm25"]["deployments"][0]["scorer"] == local.VERSION
    assert listed.models["lexical"]["deployments"][0]["scorer"] == local.VERSION
    monkeypatch.setattr(local, "VERSION", "lexical-next")
    assert identity(path, "local/bm25").digest != raw.digest
    assert identity(path, "lexical", config).digest != listed.digest
