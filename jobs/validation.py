"""Whole-file validation before anything is enqueued.

Memory stays flat as the file grows except for duplicate detection, which keeps
8 bytes per line (a 64-bit hash of each id) and 8 per invalid line; lines whose
hashes collide are confirmed by exact comparison in a second, targeted pass.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Collection, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from jobs import keys
from jobs.dataset import (
    DEFAULT_LIMITS,
    FieldError,
    LineError,
    LineLimits,
    LongLine,
    check_line,
    read_lines,
    valid_id_key,
)
from providers import params
from providers.deployment import split_model_name
from providers.errors import ConfigurationError
from providers.registry import declared_params, deployment_for

__all__ = ["ModelCheck", "ValidationReport", "fingerprint", "id_hash", "validate_file"]


_U64 = (1 << 64) - 1


def id_hash(key: str) -> int:
    """64 bits of the id for duplicate detection within this process (Python's own string
    hash: seeded per process, computed once per string, a tenth of a blake2b call); ids whose
    hashes collide are compared exactly."""
    return hash(key) & _U64


class ModelCheck:
    """Whether a model name is a model list's public name or resolves to a known
    provider; answers cached per name.  Also whether a line's ``provider_params`` are taken by
    every provider its model can reach (``providers``: a public name -> its deployments' and
    fallbacks' providers; a ``provider/model`` name reaches its own)."""

    def __init__(
        self,
        public_names: Collection[str] = (),
        providers: Mapping[str, Sequence[str]] | None = None,
        default_model: str | None = None,
    ) -> None:
        self._seen: dict[str, str | None] = {name: None for name in public_names}
        self._providers = providers or {}
        self.default_model = default_model

    def params_errors(self, model: str | None, values: Mapping[str, object]) -> list[FieldError]:
        """What is wrong with a line's ``provider_params`` for its model (or the default)."""
        model = model or self.default_model
        if not values or model is None or self.problem(model):
            return []  # no model to check against, or the model's own error is reported
        reachable = self._providers.get(model) or [split_model_name(model)[0]]
        errors: dict[str, FieldError] = {}
        for provider in dict.fromkeys(reachable):
            for key, reason in params.problems(declared_params(provider), provider, values):
                errors.setdefault(key, FieldError(f"provider_params.{key}", reason))
        return list(errors.values())

    @staticmethod
    def _unknown(model: str) -> str:
        return f"unknown model {model!r}: not a model_name of the model list, nor of the form provider/model"

    def problem(self, model: str) -> str | None:
        if model not in self._seen:
            try:
                deployment_for(model, {})
                self._seen[model] = None
            except ConfigurationError as exc:
                self._seen[model] = exc.message if "/" in model else self._unknown(model)
        return self._seen[model]


def _contains(ascending: array[int], value: int) -> bool:
    at = bisect_left(ascending, value)
    return at < len(ascending) and ascending[at] == value


def fingerprint(path: Path) -> tuple[int, int]:
    """Size and modification time: enough to notice a file changing between passes."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@dataclass
class ValidationReport:
    lines: int = 0
    invalid_lines: int = 0
    duplicate_lines: set[int] = field(default_factory=set)
    """Line numbers of second and later occurrences of an id (the first is kept)."""
    invalid: array[int] = field(default_factory=lambda: array("Q"))
    """Ascending line numbers of lines with field errors."""
    fingerprint: tuple[int, int] = (0, 0)
    """The file as validated; enqueue refuses to go on if it changed since."""

    def rejected(self, line_no: int) -> bool:
        return line_no in self.duplicate_lines or _contains(self.invalid, line_no)

    @property
    def valid(self) -> int:
        return self.lines - self.invalid_lines

    @property
    def ok(self) -> bool:
        return self.invalid_lines == 0


def _raw_key(raw: bytes | LongLine) -> str | None:
    if isinstance(raw, LongLine):
        return None  # never parsed: its id is not known, so it is no duplicate either
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return valid_id_key(obj.get("id")) if isinstance(obj, dict) else None


def _duplicate_errors(path: Path, colliding: set[int], limits: LineLimits) -> Iterator[LineError]:
    first_seen: dict[str, int] = {}
    for line_no, raw in read_lines(path, limits.max_line_bytes):
        key = _raw_key(raw)
        if key is None or id_hash(key) not in colliding or isinstance(raw, LongLine):
            continue
        first = first_seen.setdefault(key, line_no)
        if first != line_no:
            reason = f"duplicate id {key!r} (first on line {first})"
            yield LineError(line_no, (FieldError("id", reason),), raw)


def _with_params_checked(
    line_no: int, raw: bytes | LongLine, checked: dict[str, Any], models: ModelCheck
) -> dict[str, Any] | LineError:
    wrong = models.params_errors(checked.get("model"), checked["provider_params"])
    if not wrong:
        return checked
    return LineError(line_no, tuple(wrong), raw if isinstance(raw, bytes) else raw.head)


def validate_file(
    path: Path,
    models: ModelCheck,
    on_error: Callable[[LineError], None],
    limits: LineLimits = DEFAULT_LIMITS,
    corpus: Container[str] | None = None,
    on_valid: Callable[[int, bytes, dict[str, Any]], None] | None = None,
) -> ValidationReport:
    """Check every line; ``on_valid`` sees each line that passes its own checks (a later
    duplicate of an id included: the report says which those are)."""
    report = ValidationReport(fingerprint=fingerprint(path))
    hashes = array("Q")
    invalid = report.invalid
    for line_no, raw in read_lines(path, limits.max_line_bytes):
        report.lines += 1
        checked = check_line(line_no, raw, models.problem, limits, corpus)
        if not isinstance(checked, LineError) and checked.get("provider_params"):
            checked = _with_params_checked(line_no, raw, checked, models)
        if isinstance(checked, LineError):
            invalid.append(line_no)
            on_error(checked)
            key = _raw_key(raw)
        else:
            key = keys.line_key(checked["id"])
            if on_valid is not None:
                assert not isinstance(raw, LongLine)  # a long line never passes
                on_valid(line_no, raw, checked)
        if key is not None:
            hashes.append(id_hash(key))
    ordered = np.frombuffer(hashes, dtype=np.uint64)
    ordered.sort()  # in place: the array's own buffer, no copy
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]  # np.unique would import numpy.ma: 20-40 ms
    if repeated.size:
        for error in _duplicate_errors(path, set(repeated.tolist()), limits):
            report.duplicate_lines.add(error.line_no)
            on_error(error)
    already_invalid = sum(1 for n in report.duplicate_lines if _contains(invalid, n))
    report.invalid_lines = len(invalid) + len(report.duplicate_lines) - already_invalid
    return report
