"""Where a worker's CPU goes: ``bench/perf.py --profile FILE`` runs one more ``worker.py`` (one
worker, 0 ms) under ``py-spy record --format raw`` and this module reads the samples.

A raw py-spy file has one line per distinct stack, ``frame;frame;...;frame COUNT``, the innermost
frame last, each frame ``function (path:line)``.  Two views: the share of all samples whose stack
passes through each package (cumulative: httpx's share includes the httpcore it calls), and the
innermost functions with the most samples (self time).
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

__all__ = ["AREAS", "py_spy", "summary"]

AREAS = {
    "httpx + httpcore (HTTP client)": ("/httpx/", "/httpcore/", "/h11/", "/anyio/"),
    "  failed `import sniffio` probes": ("current_async_library",),
    "redis-py (all Redis calls)": ("/redis/",),
    "arq (poll, claim, bookkeeping)": ("/arq/",),
    "jobs/ + providers/ (own code)": ("/jobs/", "/providers/"),
    "orjson / json": ("orjson", "/json/"),
    "asyncio event loop (self)": ("/asyncio/",),
}
FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^:()]*)(?::\d+)?\)$")


def py_spy() -> str:
    """The ``py-spy`` next to this Python, else on PATH."""
    found = shutil.which("py-spy")
    if not found:
        raise FileNotFoundError("py-spy is not installed: ./rr pip install py-spy")
    return found


def _stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summary(path: Path, top: int = 15) -> list[str]:
    stacks = _stacks(path)
    total = sum(count for _, count in stacks) or 1
    out = [
        f"py-spy: {total} samples of one worker ({path})",
        "share of samples, by what the stack passes through:",
    ]
    for label, needles in AREAS.items():
        if label.startswith("asyncio"):
            hits = sum(c for frames, c in stacks if any(n in frames[-1] for n in needles))
        else:
            hits = sum(c for frames, c in stacks if any(n in f for f in frames for n in needles))
        out.append(f"  {label:<34} {100 * hits / total:5.1f}%")
    leaves: Counter[str] = Counter()
    for frames, count in stacks:
        match = FRAME.match(frames[-1])
        leaves[f"{match['function']} ({match['path']})" if match else frames[-1]] += count
    out.append(f"top {top} innermost functions (self time):")
    out += [f"  {100 * count / total:5.1f}%  {name}" for name, count in leaves.most_common(top)]
    return out
