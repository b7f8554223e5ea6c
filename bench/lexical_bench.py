"""local/bm25 and local/ql throughput, and the cost of corpus statistics, in process.

    python -m bench.lexical_bench [--docs 20000] [--lines 200] [--candidates 100]

Baseline, measured in the same run: the per-line BM25 the runner used before (bm25s indexing
each line's candidates, its own tokenizer, no stemming).  Prints lines/s for the baseline and for
local/bm25 and local/ql with per-line and with corpus statistics (and the ratios), then corpus
statistics: documents/s, distinct terms, blob size and load time; last, on the test collection
of ``tests/collection.py``, nDCG@10 of a bm25s first stage (top 20) and of its re-ranking by
each model with per-line and with corpus statistics.
"""

from __future__ import annotations

import argparse
import functools
import random
import time
from collections.abc import Callable

from providers.adapters import local
from providers.lexicon import CollectionStats, collect, tokenize
from providers.types import RerankRequest
from tests.collection import build, doc_ids, first_stage, ndcg

WORDS = [
    "running", "runs", "painted", "painting", "sailing", "boats", "garden", "gardens", "bread", "baking",
    "river", "rivers", "mountain", "climbing", "climbed", "engine", "engines", "violin", "bridges", "castle",
    "forest", "island", "harbor", "desert", "meadow", "tower", "valley", "solar", "panels", "power",
    "electricity", "coffee", "espresso", "brewing", "volcano", "eruption", "magma", "ocean", "waves",
]  # fmt: skip


def corpus_texts(count: int, rng: random.Random) -> list[str]:
    vocabulary = WORDS + [f"term{n}" for n in range(20_000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    return [" ".join(rng.choices(vocabulary, weights, k=rng.randint(30, 150))) for _ in range(count)]


def bm25s_per_line(request: RerankRequest) -> None:
    import bm25s
    from bm25s.tokenization import Tokenizer

    tokenizer = Tokenizer(stopwords="en")
    texts = [str(d) for d in request.documents]
    ids = tokenizer.tokenize(texts, return_as="ids", show_progress=False)
    query = tokenizer.tokenize([request.query], update_vocab=False, return_as="ids", show_progress=False)
    retriever = bm25s.BM25()
    retriever.index([list(t) for t in ids], show_progress=False)
    retriever.get_scores(query[0])


def lines_per_second(requests: list[RerankRequest], rank: Callable[[RerankRequest], object]) -> float:
    started = time.perf_counter()
    for request in requests:
        rank(request)
    return len(requests) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(5)
    texts = corpus_texts(args.docs, rng)
    started = time.perf_counter()
    stats = collect((tokenize(t) for t in texts), "bench")
    collect_s = time.perf_counter() - started
    blob = stats.to_bytes()
    started = time.perf_counter()
    CollectionStats.from_bytes(blob)
    load_s = time.perf_counter() - started
    requests = [
        RerankRequest(query=" ".join(rng.sample(WORDS, 3)), documents=rng.sample(texts, args.candidates))
        for _ in range(args.lines)
    ]
    with_corpus = [RerankRequest(query=r.query, documents=r.documents, collection=stats) for r in requests]
    baseline = lines_per_second(requests, bm25s_per_line)
    print(f"{args.lines} lines x {args.candidates} candidates (30-150 words each)")
    print(f"  baseline (bm25s per line, no stemming)  {baseline:8.1f} lines/s")
    for model in local.MODELS:
        for label, batch in (("per-line statistics", requests), ("corpus statistics", with_corpus)):
            rate = lines_per_second(batch, functools.partial(local.rank, model))
            print(f"  local/{model:<5} {label:<22}    {rate:8.1f} lines/s  ({rate / baseline:.2f}x baseline)")
    print(
        f"corpus statistics of {args.docs} documents: {args.docs / collect_s:,.0f} documents/s, "
        f"{len(stats.df):,} terms, blob {len(blob) / 1024:,.0f} KiB, loaded in {load_s * 1000:.0f} ms"
    )


def quality() -> None:
    collection = build()
    stage = first_stage(collection, 20)
    stats = collect(tokenize(text) for text in collection.corpus.values())
    baseline = ndcg(doc_ids(stage), collection.qrels)
    print(f"nDCG@10 on tests/collection.py (seed 11): bm25s first stage {baseline:.3f}")
    for model in local.MODELS:
        for label, collection_stats in (("per-line statistics", None), ("corpus statistics", stats)):
            reranked = {}
            for qid, docs in doc_ids(stage).items():
                request = RerankRequest(
                    query=collection.queries[qid],
                    documents=[collection.corpus[d] for d in docs],
                    collection=collection_stats,
                )
                order = sorted(local.rank(model, request), key=lambda r: (-r.relevance_score, r.index))
                reranked[qid] = [docs[r.index] for r in order]
            print(f"  re-ranked by local/{model:<5} {label:<20} {ndcg(reranked, collection.qrels):.3f}")


if __name__ == "__main__":
    main()
    quality()
