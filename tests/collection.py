"""A small test collection built in code: a corpus, queries, graded qrels, a BM25 first stage
over the whole corpus (bm25s, an implementation independent of ``local/bm25``) and nDCG."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import write_dataset

ACTIONS = [
    "paint", "climb", "sail", "plant", "bake", "knit", "fish", "hunt", "camp", "row",
    "skate", "brew", "carve", "weld", "mine", "farm", "print", "sculpt", "train", "swim",
]  # fmt: skip
OBJECTS = [
    "boat", "garden", "bread", "mountain", "river", "glacier", "canyon", "violin", "engine",
    "bridge", "castle", "forest", "island", "harbor", "desert", "meadow", "tower", "valley",
]  # fmt: skip
INFLECTIONS = ("", "s", "ing", "ed")


@dataclass(frozen=True)
class Collection:
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def write_corpus(self, path: Path) -> Path:
        return write_dataset(path, ({"_id": key, "text": text} for key, text in self.corpus.items()))

    def dataset(self, run: Mapping[str, Sequence[tuple[str, float]]]) -> list[dict[str, Any]]:
        """Dataset lines re-ranking ``run`` (query id -> ranked (doc id, score)), documents by id."""
        return [
            {"id": qid, "query": self.queries[qid], "documents": [{"id": d} for d, _ in docs]}
            for qid, docs in run.items()
        ]


def _inflect(rng: random.Random, word: str) -> str:
    suffix = rng.choice(INFLECTIONS)
    if word.endswith("e") and suffix in ("ed", "ing"):
        word = word[:-1]
    return word + suffix


def build(seed: int = 11, per_topic: int = 14, background_docs: int = 260) -> Collection:
    """Queries of two words (an action and an object); per query a few highly relevant documents
    (both words, inflected), some partly relevant (the action only), and a corpus-wide background
    in which objects are common and actions rare, so corpus-level idf matters."""
    rng = random.Random(seed)
    filler = [f"{a}{b}{c}" for a in "bdfgklmnprstvz" for b in "aeiou" for c in "bklmnrst"]
    weights = [1 / (rank + 1) for rank in range(len(filler))]
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}

    def document(words: list[str], length: tuple[int, int] = (15, 90)) -> str:
        body = rng.choices(filler, weights, k=rng.randint(*length)) + words
        body += rng.choices(OBJECTS, k=rng.randint(0, 3))  # objects are everywhere
        rng.shuffle(body)
        return " ".join(body)

    for number in range(per_topic):
        action, thing = ACTIONS[number % len(ACTIONS)], OBJECTS[number % len(OBJECTS)]
        qid = f"q{number}"
        queries[qid] = f"{action} {thing}"
        qrels[qid] = {}
        for k in range(rng.randint(3, 6)):
            doc = f"{qid}-rel{k}"
            words = [_inflect(rng, action) for _ in range(rng.randint(1, 3))]
            words += [_inflect(rng, thing) for _ in range(rng.randint(1, 2))]
            corpus[doc] = document(words, (40, 220))
            qrels[qid][doc] = 2
        for k in range(rng.randint(2, 5)):
            doc = f"{qid}-part{k}"
            corpus[doc] = document([_inflect(rng, action)])
            qrels[qid][doc] = 1
        for k in range(8):  # short documents repeating one of the words, about neither
            word = thing if k % 2 else action
            corpus[f"{qid}-noise{k}"] = document(
                [_inflect(rng, word) for _ in range(rng.randint(2, 5))], (5, 30)
            )
    for k in range(background_docs):
        corpus[f"bg{k}"] = document([])
    return Collection(corpus, queries, qrels)


def first_stage(collection: Collection, depth: int) -> dict[str, list[tuple[str, float]]]:
    """BM25 over the whole corpus with bm25s (Lucene's variant, k1 0.9, b 0.4, English
    stopwords, Snowball stemming): query id -> the top ``depth`` (doc id, score)."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = list(collection.corpus)
    retriever = bm25s.BM25(method="lucene", k1=0.9, b=0.4)
    tokens = bm25s.tokenize(
        [collection.corpus[d] for d in ids], stopwords="en", stemmer=stemmer.stemWords, show_progress=False
    )
    retriever.index(tokens, show_progress=False)
    run: dict[str, list[tuple[str, float]]] = {}
    for qid, query in collection.queries.items():
        terms = bm25s.tokenize(
            query, stopwords="en", stemmer=stemmer.stemWords, return_ids=False, show_progress=False
        )
        scores = retriever.get_scores(terms[0])
        order = sorted(range(len(ids)), key=lambda i: (-float(scores[i]), ids[i]))
        run[qid] = [(ids[i], float(scores[i])) for i in order[:depth]]
    return run


def ndcg(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], cut: int = 10) -> float:
    """Mean nDCG@cut with linear gains (trec_eval's ``ndcg_cut``) over the qrels' queries."""
    total = 0.0
    for qid, judged in qrels.items():
        ranked = run.get(qid, [])[:cut]
        dcg = sum(judged.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked))
        ideal = sorted(judged.values(), reverse=True)[:cut]
        best = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
        total += dcg / best if best else 0.0
    return total / len(qrels)


def ranking(records: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Query id -> doc ids in the order a batch's result records ranked them."""
    return {str(r["id"]): [d["document_id"] for d in r["results"]] for r in records}


def doc_ids(run: Mapping[str, Sequence[tuple[str, float]]]) -> dict[str, list[str]]:
    return {qid: [d for d, _ in docs] for qid, docs in run.items()}
