"""rerank-runner from Python: ``import rerank_runner``.

    records = rerank_runner.rerank(lines, ["local/bm25", "local/ql"])
    frame = rerank_runner.rerank_frame(candidates, "cohere/rerank-v3.5")

Runs the lines exactly as ``enqueue.py`` does (see :mod:`jobs.api`); works in scripts and in
notebooks (inside a running event loop), ``arerank`` / ``arerank_frame`` are the async forms.
"""

from __future__ import annotations

from jobs.api import RerankFailedError, arerank, arerank_frame, rerank, rerank_frame

__all__ = ["RerankFailedError", "arerank", "arerank_frame", "rerank", "rerank_frame"]
