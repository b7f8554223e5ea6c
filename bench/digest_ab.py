"""Validation with the lines digest hashed inline (each line as validation reads it) against the
digest on its own thread (``jobs.identity.LinesDigest``: 4 MB at a time), alternating in one
process on the same file, so machine load meets both alike.  Both digests must agree.

    python -m bench.digest_ab [--lines 50000] [--docs 19] [--rounds 6]

Lines hold 200-character documents, none repeated (``bench.enqueue_goals.goal_dataset``); 19
documents make lines of about 4 KB, 72 of about 15 KB.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from bench.enqueue_goals import goal_dataset
from jobs.identity import LinesDigest
from jobs.validation import ModelCheck, validate_file
from jobs.verbatim import LineIndex


class Digest(Protocol):
    def add(self, line_no: int, raw: bytes, obj: Mapping[str, Any]) -> None: ...

    def hexdigest(self) -> str: ...


class InlineDigest:
    """The digest as it was computed before: every line hashed as validation hands it over."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)

    def add(self, line_no: int, raw: bytes, obj: Mapping[str, Any]) -> None:
        self._hash.update(b"%d %d\n" % (line_no, len(raw)))
        self._hash.update(raw)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def validated(path: Path, make: Callable[[], Digest]) -> tuple[float, str]:
    """Seconds to validate the file feeding the enqueue index and the digest, and the digest."""
    index, digest = LineIndex(), make()

    def on_valid(line_no: int, raw: bytes, obj: dict[str, Any]) -> None:
        digest.add(line_no, raw, obj)
        index.add(line_no, raw, obj)

    started = time.perf_counter()
    validate_file(path, ModelCheck(), lambda error: None, on_valid=on_valid)
    found = digest.hexdigest()
    return time.perf_counter() - started, found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--docs", type=int, default=19, help="documents of 200 characters per line")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    inline: list[float] = []
    threaded: list[float] = []
    with tempfile.TemporaryDirectory(prefix="digest-ab-") as work:
        path = goal_dataset(Path(work) / "lines.jsonl", args.lines, args.docs, seed=args.docs)
        for round_ in range(args.rounds):
            sides: list[tuple[list[float], Callable[[], Digest]]] = [
                (inline, InlineDigest),
                (threaded, LinesDigest),
            ]
            digests = set()
            for seconds, make in sides if round_ % 2 == 0 else reversed(sides):
                took, digest = validated(path, make)
                seconds.append(took)
                digests.add(digest)
            if len(digests) != 1:
                raise SystemExit(f"round {round_ + 1}: the digests differ: {digests}")
            print(f"round {round_ + 1}: inline {inline[-1]:.3f} s, threaded {threaded[-1]:.3f} s")
    ratio = statistics.median(t / i for i, t in zip(inline, threaded, strict=True))
    print(
        f"medians of {args.rounds}: inline {statistics.median(inline):.3f} s, threaded "
        f"{statistics.median(threaded):.3f} s; threaded / inline {ratio:.2f}x (median of the rounds' ratios)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
