"""What `enqueue.py` decides before Redis is touched: settings from the flags, argument checks,
the output paths, validation of the whole file (bad lines printed and written to the rejects
file) and the stream of lines validation accepted."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from jobs.corpus import Corpus
from jobs.dataset import (
    DEFAULT_LIMITS,
    MAX_LINE_BYTES,
    DatasetLine,
    LineError,
    LineLimits,
    LongLine,
    read_lines,
    trusted_line,
)
from jobs.identity import LinesDigest
from jobs.redis_url import RedisUrlError, redis_settings
from jobs.settings import RunnerSettings, SettingsError, load_settings, model_list
from jobs.validation import ModelCheck, ValidationReport, validate_file
from jobs.verbatim import LineIndex
from providers.errors import ConfigurationError

__all__ = [
    "BATCH_NAME",
    "ERRORS_SHOWN",
    "Paths",
    "RejectLog",
    "UsageError",
    "check_arguments",
    "paths_for",
    "settings_from",
    "stop_before_enqueue",
    "valid_lines",
    "validate",
]

BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ERRORS_SHOWN = 100


class UsageError(Exception):
    """A bad argument or input file, found before anything is read or enqueued (exit status 2)."""


@dataclass
class Paths:
    results: Path
    errors: Path
    rejects: Path


def paths_for(args: argparse.Namespace, batch: str) -> Paths:
    out = Path("results")
    return Paths(
        results=args.output or out / f"{batch}.jsonl",
        errors=args.errors or out / f"{batch}.errors.jsonl",
        rejects=args.rejects or out / f"{batch}.rejects.jsonl",
    )


class RejectLog:
    """Prints the first bad lines and writes all of them to the rejects file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown = 0
        self.handle: BinaryIO | None = None

    def __call__(self, error: LineError) -> None:
        for message in error.describe():
            if self.shown < ERRORS_SHOWN:
                print(message, file=sys.stderr)
            self.shown += 1
        if self.handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self.path.open("wb")
        self.handle.write(orjson.dumps(error.to_json()) + b"\n")

    def close(self) -> None:
        if self.handle:
            self.handle.close()
        if self.shown > ERRORS_SHOWN:
            print(f"... {self.shown - ERRORS_SHOWN} more problems not shown", file=sys.stderr)

    def move_to(self, path: Path) -> None:
        """The default rejects file is named after the batch, known only once the valid lines
        are: validation writes to a temporary name first."""
        if self.handle and path != self.path:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.path = self.path.replace(path)


def settings_from(args: argparse.Namespace) -> RunnerSettings:
    """Settings from the environment and the flags; raises UsageError (never echoing a value)."""
    given = {
        "redis_url": args.redis_url,
        "default_model": args.model,
        "config": args.config,
        "max_line_bytes": args.max_line_bytes,
        "max_document_bytes": args.max_document_bytes,
    }
    try:
        settings = load_settings(**{name: value for name, value in given.items() if value})
        if settings.redis_url:
            redis_settings(settings.redis_url)
    except (SettingsError, RedisUrlError) as exc:
        raise UsageError(str(exc)) from None
    return settings


def check_arguments(args: argparse.Namespace, settings: RunnerSettings) -> ModelCheck:
    """The model names lines may use; raises UsageError."""
    if not args.dataset.is_file():
        raise UsageError(f"{args.dataset}: no such file")
    if args.batch is not None and not BATCH_NAME.match(args.batch):
        raise UsageError(f"batch name {args.batch!r}: use letters, digits, '.', '_' or '-'")
    if args.replace and args.batch is None:
        raise UsageError("--replace needs --batch (a default batch name already follows the content)")
    try:
        listed = model_list(settings, resolve_env=False)
        models = ModelCheck(listed.names(), listed.providers(), settings.default_model)
    except ConfigurationError as exc:
        raise UsageError(exc.message) from exc
    if problem := models.problem(settings.default_model):
        raise UsageError(f"--model: {problem}")
    return models


def validate(
    args: argparse.Namespace,
    models: ModelCheck,
    corpus: Corpus | None,
    limits: LineLimits = DEFAULT_LIMITS,
    lines: LinesDigest | None = None,
    index: LineIndex | None = None,
) -> tuple[ValidationReport, RejectLog]:
    """Validate the whole file (feeding the run identity's ``lines`` and the enqueue pass's
    ``index`` on the way)."""
    partial = Path("results") / f".{args.dataset.name}.{os.getpid()}.rejects.partial"
    rejects = RejectLog(args.rejects or partial)
    fed = [each.add for each in (lines, index) if each is not None]

    def on_valid(line_no: int, raw: bytes, obj: dict[str, Any]) -> None:
        for add in fed:
            add(line_no, raw, obj)

    try:
        report = validate_file(args.dataset, models, rejects, limits, corpus=corpus, on_valid=on_valid)
    finally:
        rejects.close()
    print(f"checked {report.lines} lines: {report.valid} valid, {report.invalid_lines} invalid")
    return report, rejects


def stop_before_enqueue(args: argparse.Namespace, report: ValidationReport, paths: Paths) -> int | None:
    """The exit status when validation says nothing is to be enqueued, else None."""
    if not report.ok:
        print(f"all problems written to {paths.rejects}", file=sys.stderr)
        if not args.skip_invalid:
            print("nothing enqueued; fix the lines above or pass --skip-invalid", file=sys.stderr)
            return 1
    if args.check:
        return 0 if report.ok else 1
    if report.valid == 0:
        print("error: no valid lines to enqueue", file=sys.stderr)
        return 1
    return None


def valid_lines(
    path: Path, report: ValidationReport, max_line_bytes: int = MAX_LINE_BYTES, corpus: Corpus | None = None
) -> Iterator[DatasetLine]:
    """The lines validation accepted, rebuilt without checking them a second time (documents
    given by id resolved through the corpus)."""
    for line_no, raw in read_lines(path, max_line_bytes):
        if not report.rejected(line_no) and not isinstance(raw, LongLine):
            line = trusted_line(line_no, raw)
            yield corpus.resolve(line) if corpus else line
