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

AREAS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "the job (rerank_line), all of it": (("jobs/work.py",), ()),
    "  its HTTP client (httpx, httpcore)": (("httpx/", "httpcore/", "h11/", "anyio/"), ()),
    "  its Redis calls (redis-py)": (("redis/",), ()),
    "arq around the job (poll, claim, start, finish)": (("arq/",), ("jobs/work.py",)),
    "  of which Redis calls": (("redis/",), ("jobs/work.py",)),
    "imports (start-up; httpcore's per-request `import sniffio`)": (("<frozen importlib",), ()),
    "socket writes (Redis and HTTP), self time": (("asyncio/selector_events.py",), ()),
    "event loop and selector, self time": (("asyncio/", "selectors.py"), ()),
}
"""Label -> (path prefixes a stack passes through, prefixes it must not pass through); py-spy
names files relative to site-packages or the project.  An indented label counts within the
stacks of the label above it; a "self time" label counts only the innermost frame."""
FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*?)(?::\d+)?\)$")


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


def _within(
    paths: list[str], label: str, prefixes: tuple[str, ...], without: tuple[str, ...], parent: tuple[str, ...]
) -> bool:
    if label.endswith("self time"):
        return paths[-1].startswith(prefixes)
    if any(p.startswith(without) for p in paths if without):
        return False
    inside = not label.startswith(" ") or any(p.startswith(parent) for p in paths)
    return inside and any(p.startswith(prefixes) for p in paths)


def _path(frame: str) -> str:
    match = FRAME.match(frame)
    return match["path"] if match else frame


def summary(path: Path, top: int = 15) -> list[str]:
    frames = _stacks(path)
    stacks = [([_path(f) for f in fs], count) for fs, count in frames]
    total = sum(count for _, count in stacks) or 1
    out = [
        f"py-spy: {total} samples of one worker ({path})",
        "share of samples, by what the stack passes through:",
    ]
    parent: tuple[str, ...] = ()
    for label, (prefixes, without) in AREAS.items():
        if not label.startswith(" "):
            parent = prefixes
        hits = sum(count for paths, count in stacks if _within(paths, label, prefixes, without, parent))
        out.append(f"  {label:<50} {100 * hits / total:5.1f}%")
    leaves: Counter[str] = Counter()
    for fs, count in frames:
        match = FRAME.match(fs[-1])
        leaves[f"{match['function']} ({match['path']})" if match else fs[-1]] += count
    out.append(f"top {top} innermost functions (self time):")
    out += [f"  {100 * count / total:5.1f}%  {name}" for name, count in leaves.most_common(top)]
    return out
