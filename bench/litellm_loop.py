"""The anchor a user would write instead of rerank-runner: ``litellm.arerank`` in one asyncio
loop with a fixed number of calls in flight.  Run by ``bench/perf.py`` with the Python of its
own virtual environment (``.bench-venv-litellm``, LiteLLM installed from PyPI), never the
project's:

    .bench-venv-litellm/bin/python bench/litellm_loop.py DATASET --api-base URL --in-flight 64

Prints one JSON object: lines, errors, and the steady-state window (from 10% to 90% of the
calls answered: seconds, process CPU seconds, calls), measured the same way as the workers.
Only the standard library and LiteLLM are imported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

__all__ = ["main"]


class Window:
    """Wall and CPU time between the answers that cross 10% and 90% of the calls."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.marks: list[tuple[int, float, float]] = []

    def answered(self) -> None:
        self.done += 1
        for fraction in (0.1, 0.9):
            if len(self.marks) < 2 and self.done == max(1, int(self.total * fraction)):
                self.marks.append((self.done, time.monotonic(), time.process_time()))

    def figures(self) -> dict[str, float]:
        (n0, t0, c0), (n1, t1, c1) = self.marks
        return {"calls": n1 - n0, "seconds": t1 - t0, "cpu_seconds": c1 - c0}


async def run(args: argparse.Namespace, lines: list[dict[str, Any]]) -> dict[str, Any]:
    import litellm  # imported here: its import is not part of what is measured

    litellm.suppress_debug_info = True
    window = Window(len(lines))
    errors: list[str] = []
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for line in lines:
        queue.put_nowait(line)

    async def one_caller() -> None:
        while not queue.empty():
            line = queue.get_nowait()
            try:
                response = await litellm.arerank(
                    model=args.model,
                    query=line["query"],
                    documents=line["documents"],
                    top_n=line.get("top_n"),
                    api_base=args.api_base,
                    api_key=args.api_key,
                )
                if not response.results:
                    errors.append(f"{line['id']}: no results")
            except Exception as exc:  # counted and shown, never a silent success
                errors.append(f"{line['id']}: {exc!r}"[:300])
            window.answered()

    started = time.monotonic()
    await asyncio.gather(*(one_caller() for _ in range(args.in_flight)))
    return {
        "lines": len(lines),
        "errors": len(errors),
        "first_errors": errors[:3],
        "wall_seconds": time.monotonic() - started,
        **window.figures(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--api-key", default="bench-mock-key")
    parser.add_argument("--model", default="cohere/rerank-v3.5")
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from the internet
    with open(args.dataset, "rb") as handle:
        lines = [json.loads(raw) for raw in handle if raw.strip()]
    print(json.dumps(asyncio.run(run(args, lines))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
