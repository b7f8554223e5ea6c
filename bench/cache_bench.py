"""Score cache and dry-run figures on a realistic shape: top-100 candidates per query drawn from
one shared corpus, re-ranked through a local TEI server (32 documents per request, so 4
requests a line), with the real commands (enqueue.py, worker.py --burst) on a throwaway Redis.

    python bench/cache_bench.py [--queries 93] [--candidates 100] [--corpus 2000]

Prints: the dry-run estimate, the requests the run sent, the dry run again (what the cache
saves), and the requests a second run of the same candidates under another batch name sent.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from jobs.embedded import EmbeddedRedis
from tests.servers.huggingface import TeiServer
from tests.support import WORDS

ROOT = Path(__file__).resolve().parent.parent
MODEL = "huggingface/BAAI/bge-reranker-base"


def deeper(path: Path, more: int, corpus: int) -> None:
    """The same queries, ``more`` candidates deeper (the first ones unchanged)."""
    rng = random.Random(11)
    lines = [orjson.loads(raw) for raw in path.read_bytes().splitlines()]
    for line in lines:
        line["documents"] += [
            f"deeper candidate {rng.randrange(corpus)} {rng.choice(WORDS)}" for _ in range(more)
        ]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))


def dataset(path: Path, queries: int, candidates: int, corpus: int) -> float:
    """Queries whose candidates overlap as a BM25 top-k over one corpus does; the mean share of
    a line's candidates that also appear in some other line."""
    rng = random.Random(7)
    documents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) for _ in range(corpus)]
    lines: list[dict[str, object]] = []
    seen: dict[int, int] = {}
    chosen: list[list[int]] = []
    for n in range(queries):
        picked = rng.sample(range(corpus), candidates)
        chosen.append(picked)
        for d in picked:
            seen[d] = seen.get(d, 0) + 1
        lines.append(
            {
                "id": f"q{n}",
                "query": f"{rng.choice(WORDS)} {rng.choice(WORDS)}",
                "documents": [documents[d] for d in picked],
            }
        )
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    shared = sum(1 for picks in chosen for d in picks if seen[d] > 1)
    return shared / (queries * candidates)


def run(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def figure(stdout: str, name: str) -> str:
    found = re.search(rf"^  {name} +(.*)$", stdout, re.MULTILINE)
    return found.group(1) if found else "?"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=93)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--corpus", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, TeiServer() as tei:
        redis = EmbeddedRedis(Path(tmp) / "redis", persist=False).start()
        try:
            env = {**os.environ, "REDIS_URL": redis.url, "HF_API_BASE": tei.base_url, "NO_PROXY": "127.0.0.1"}
            path = Path(tmp) / "bm25-top100.jsonl"
            shared = dataset(path, args.queries, args.candidates, args.corpus)
            common = ["enqueue.py", str(path), "--model", MODEL, "--no-progress"]
            estimate = run(*common, "--dry-run", env=env)
            run(*common, "--batch", "first", env=env)
            run("worker.py", "--burst", env=env)
            first = len(tei.requests)
            again = run(*common, "--dry-run", env=env)
            run(*common, "--batch", "second", env=env)
            run("worker.py", "--burst", env=env)
            second = len(tei.requests) - first
            deeper(path, 20, args.corpus)
            deep_estimate = run(*common, "--dry-run", env=env)
            run(*common, "--batch", "deeper", env=env)
            run("worker.py", "--burst", env=env)
            deep = len(tei.requests) - first - second
        finally:
            redis.stop()
    print(
        f"{args.queries} queries x {args.candidates} candidates from a {args.corpus}-document corpus "
        f"({shared:.0%} of candidates shared with another query), {MODEL} on a local TEI (32 per request)"
    )
    print(f"dry run before:   requests {figure(estimate, 'requests')}")
    print(f"first run sent:   {first} requests")
    print(f"dry run after:    requests {figure(again, 'requests')}")
    print(f"second run (another batch name) sent: {second} requests")
    print(f"20 candidates deeper, dry run: requests {figure(deep_estimate, 'requests')}")
    print(f"20 candidates deeper, run sent: {deep} requests")


if __name__ == "__main__":
    main()
