"""Lines queued verbatim: the enqueue pass writes a plain line's job as the line's own bytes
behind the fields enqueue adds, never decoding and encoding the line again.

Validation has decoded every line once already; what the enqueue pass needs of each line that
passed its own checks it notes in a :class:`LineIndex` (its id as the batch's line set keeps it,
and whether the line can go verbatim: about 30 bytes a line), so the second pass only reads the
file.  A line goes verbatim when its fields are among ``id``, ``query``, ``documents``, ``top_n``
and a ``model`` that is not null: the job then holds ``batch``, ``run``, ``line`` (and
``model``, ``corpus``, ``no_cache`` as :func:`jobs.payload.line_payload` would) followed by the
line's own fields, and the worker reads exactly the payload ``line_payload`` would have built.
Every other line, and every line while the document store is sampling, is rebuilt the usual way.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from jobs.dataset import MAX_LINE_BYTES, DatasetLine, LongLine, read_lines, trusted_line
from jobs.docstore import DocumentSample
from jobs.validation import ValidationReport

__all__ = ["VERBATIM_FIELDS", "LineIndex", "VerbatimJobs", "VerbatimLine"]

VERBATIM_FIELDS = frozenset(("id", "query", "documents", "model", "top_n"))
"""A valid line with no other field is queued verbatim (``top_n``: null or absent reads the same;
a null ``model`` is the default model, which the job must then name: rebuilt)."""
_REBUILT, _VERBATIM, _OWN_MODEL = 0, 1, 2


@dataclass(slots=True)  # not frozen: built once per line, and frozen init costs ~3x
class VerbatimLine:
    line_no: int
    key: bytes
    """The id as job ids write it (:func:`jobs.keys.line_key`), UTF-8."""
    member: bytes
    """The id as the batch's line set keeps it (:func:`jobs.keys.line_member`), UTF-8."""
    raw: bytes
    own_model: bool


def _key_of(member: bytes) -> bytes:
    """An id's key from its JSON: an integer's JSON is its key; a string's is its text in quotes
    unless JSON escaped something in it."""
    if member[:1] != b'"':
        return member
    if b"\\" not in member:
        return member[1:-1]
    return str(orjson.loads(member)).encode()


def _kind(obj: Mapping[str, Any]) -> int:
    if not obj.keys() <= VERBATIM_FIELDS:
        return _REBUILT
    if "model" not in obj:
        return _VERBATIM
    return _REBUILT if obj["model"] is None else _OWN_MODEL


class LineIndex:
    """Fed by validation (``on_valid``) with every line that passes its own checks, in file
    order; then streams the valid lines for the enqueue pass."""

    def __init__(self) -> None:
        self._line_nos = array("Q")
        self._ends = array("Q")
        self._members = bytearray()
        self._kinds = bytearray()
        self.documents = DocumentSample()
        """Whether the run's first documents recur: if not, the enqueue pass starts with the
        document store off, and every line can go verbatim from the first."""

    def add(self, line_no: int, raw: bytes, obj: Mapping[str, Any]) -> None:
        self.documents.add(line_no, raw, obj)
        self._line_nos.append(line_no)
        self._members += orjson.dumps(obj["id"])
        self._ends.append(len(self._members))
        self._kinds.append(_kind(obj))

    def lines(
        self, path: Path, report: ValidationReport, max_line_bytes: int = MAX_LINE_BYTES
    ) -> Iterator[VerbatimLine | DatasetLine]:
        """The lines validation accepted, verbatim where they can be, else rebuilt without
        checking them again (:func:`jobs.preflight.valid_lines` without a corpus)."""
        line_nos, ends, members, kinds = self._line_nos, self._ends, self._members, self._kinds
        indexed, duplicates = len(line_nos), report.duplicate_lines
        at = start = 0
        for line_no, raw in read_lines(path, max_line_bytes):
            if at >= indexed or line_nos[at] != line_no or isinstance(raw, LongLine):
                continue  # it failed its own checks: never indexed
            kind, end = kinds[at], ends[at]
            member = bytes(members[start:end])
            at, start = at + 1, end
            if line_no in duplicates:
                continue
            # a line that no longer holds the id validation saw (the file changed meanwhile;
            # enqueue reports that once done), or spells it with other escapes: rebuilt, so its
            # job id and its payload always name the same line
            if kind == _REBUILT or member not in raw:
                yield trusted_line(line_no, raw)
                continue
            yield VerbatimLine(line_no, _key_of(member), member, raw, kind == _OWN_MODEL)


class VerbatimJobs:
    """Builds a verbatim line's job: what :func:`jobs.payload.line_payload` adds to the line, then
    the line's own fields, as they are in the file."""

    def __init__(
        self, batch: str, default_model: str, run: str, corpus: str | None = None, no_cache: bool = False
    ) -> None:
        head = b'{"batch":' + orjson.dumps(batch) + b',"run":' + orjson.dumps(run)
        if corpus is not None:
            head += b',"corpus":' + orjson.dumps(corpus)
        if no_cache:
            head += b',"no_cache":true'
        self._head = head + b',"line":'
        self._model = b',"model":' + orjson.dumps(default_model) + b","

    def job(self, line: VerbatimLine) -> bytes:
        # the line is a JSON object whose first byte is its "{" (lines are read stripped)
        return b"%s%d%s%s" % (self._head, line.line_no, b"," if line.own_model else self._model, line.raw[1:])
