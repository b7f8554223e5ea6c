"""The first stage of the example collection: bm25.run is what this script wrote.

    python examples/collection/first_stage.py > examples/collection/bm25.run

BM25 (bm25s, its default parameters, no stemming) over each document's title and text, the
top 10 per topic title (documents that match no query word are not retrieved).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import bm25s

HERE = Path(__file__).parent
DEPTH = 10


def main() -> None:
    corpus = [json.loads(line) for line in (HERE / "corpus.jsonl").read_text().splitlines()]
    topics = re.findall(r"<num> Number: (\d+)\s*<title>([^<]*)", (HERE / "topics.trec").read_text())
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([f"{doc['title']} {doc['text']}" for doc in corpus], show_progress=False),
        show_progress=False,
    )
    for qid, title in topics:
        found, scores = retriever.retrieve(
            bm25s.tokenize([title.strip()], show_progress=False), k=DEPTH, show_progress=False
        )
        for rank, (index, score) in enumerate(zip(found[0], scores[0], strict=True), start=1):
            if score > 0:  # as a search engine, only documents that match a query word
                print(f"{qid} Q0 {corpus[int(index)]['_id']} {rank} {float(score):.4f} bm25")


if __name__ == "__main__":
    main()
