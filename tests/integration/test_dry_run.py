"""``enqueue.py --dry-run`` against what a real run then sends: lines of 100 candidates through a
local TEI server (32 documents per request: 4 requests a line), with model list prices."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from jobs.dataset import trusted_line
from jobs.payload import line_payload, rerank_request
from providers.gate import estimate_tokens
from tests.e2e import WORKER_ENV, CliRun
from tests.servers.huggingface import TeiServer
from tests.support import WORDS, write_dataset

pytestmark = pytest.mark.integration

LINES = 9
CANDIDATES = 100
PER_TOKEN = 0.00002
CONFIG = f"""
model_list:
  - model_name: tei
    litellm_params:
      model: huggingface/BAAI/bge-reranker-base
      api_base: os.environ/TEI_BASE
    model_info:
      input_cost_per_token: {PER_TOKEN}
"""


@pytest.fixture
def tei() -> Iterator[TeiServer]:
    with TeiServer() as server:
        yield server


def candidates() -> list[dict[str, Any]]:
    return [
        {
            "id": f"q{n}",
            "query": f"{WORDS[n % len(WORDS)]} {WORDS[(n + 5) % len(WORDS)]}",
            "documents": [f"{WORDS[(n + k) % len(WORDS)]} passage {k}" for k in range(CANDIDATES)],
        }
        for n in range(LINES)
    ]


def figure(stdout: str, name: str) -> tuple[int, int]:
    """(with the cache, without) from a ``NAME  X with the cache, Y without`` line."""
    found = re.search(rf"^  {name} +([\d,]+) with the cache, ([\d,]+) without", stdout, re.MULTILINE)
    assert found, stdout
    return int(found.group(1).replace(",", "")), int(found.group(2).replace(",", ""))


def test_the_dry_run_estimate_is_what_the_run_sends(tei: TeiServer, redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    runner = CliRun(
        {**WORKER_ENV, "REDIS_URL": redis_url, "TEI_BASE": tei.base_url, "RR_CONFIG": str(config)}, tmp_path
    )
    lines = candidates()
    dataset = write_dataset(tmp_path / "bm25-top100.jsonl", lines)
    requests = [
        rerank_request(line_payload("b", trusted_line(n, orjson.dumps(line)), "tei", "r"))
        for n, line in enumerate(lines, 1)
    ]
    tokens = sum(estimate_tokens(request) for request in requests)

    dry = runner.enqueue(dataset, "--model", "tei", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    print(dry.stdout)
    assert "nothing enqueued, no provider called" in dry.stdout
    batch = re.search(r"dry run of batch (\S+):", dry.stdout)
    assert batch and tei.requests == [] and runner.status_or_none(batch.group(1)) is None
    assert f"lines           {LINES} (0 wholly in the score cache)" in dry.stdout
    assert figure(dry.stdout, "requests") == (LINES * 4, LINES * 4)
    assert figure(dry.stdout, "tokens \\(est.\\)") == (tokens, tokens)
    assert f"${tokens * PER_TOKEN:,.4f} with the cache" in dry.stdout

    runner.run(dataset, "--model", "tei")
    assert len(tei.requests) == LINES * 4  # the estimate, exactly

    again = runner.enqueue(dataset, "--model", "tei", "--dry-run")
    print(again.stdout)
    assert figure(again.stdout, "requests") == (0, LINES * 4)
    assert f"lines           {LINES} ({LINES} wholly in the score cache)" in again.stdout
    assert "$0.0000 with the cache" in again.stdout
