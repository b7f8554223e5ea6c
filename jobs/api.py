"""The Python API: re-rank from a script or a notebook, through the same path as ``enqueue.py``.

The lines are written to a JSONL file in a temporary directory and run exactly as
``enqueue.py FILE --model A [--model B ...]`` would run them (validation, run identity, batch
names, score cache, corpus statistics, a bake-off group for several models), on the embedded
Redis in ``state_dir`` (in-process workers) or, with ``redis_url``, on a shared Redis whose
workers do the work (this call waits for them).  The records come back in dataset order, per
model.  Inside a running event loop (Jupyter), the sync functions run the work in a thread
with its own loop; ``arerank`` is the ``async`` form.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import tempfile
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from jobs import event_loop
from jobs.connection import DEFAULT_STATE_DIR, RedisUnavailableError
from jobs.frames import frame_lines, frame_of
from jobs.preflight import Paths
from jobs.runs import group_of, prepare_runs

if TYPE_CHECKING:
    import pandas

__all__ = ["EXIT_MEANINGS", "RerankFailedError", "arerank", "arerank_frame", "rerank", "rerank_frame"]

T = TypeVar("T")
EXIT_MEANINGS = {1: "invalid lines", 2: "bad arguments", 3: "unfinished lines", 4: "Redis unavailable"}


class RerankFailedError(RuntimeError):
    """Lines that did not end as a ranking (``strict``), or a run that could not start; ``records``
    holds every record, failures (with their ``error``) included, ``problems`` what went wrong."""

    def __init__(self, message: str, records: list[dict[str, Any]], problems: list[Any]) -> None:
        super().__init__(message)
        self.records = records
        self.problems = problems


def _argv(dataset: Path, models: Sequence[str], directory: Path, options: Mapping[str, Any]) -> list[str]:
    argv = [str(dataset), "--no-progress", "--wait", "--rejects", str(directory / "rejects.jsonl")]
    argv += [arg for model in models for arg in ("--model", model)]
    for flag in ("corpus", "config", "redis_url", "group", "state_dir"):
        if options.get(flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(options[flag])]
    if options.get("no_cache"):
        argv.append("--no-cache")
    return argv


def _refused(status: int, directory: Path, output: str) -> RerankFailedError:
    rejects = directory / "rejects.jsonl"
    problems = [orjson.loads(raw) for raw in rejects.read_bytes().splitlines()] if rejects.exists() else []
    first = "; ".join(str(p.get("errors")) for p in problems[:3]) or output.strip().splitlines()[-1:]
    return RerankFailedError(
        f"nothing re-ranked ({EXIT_MEANINGS.get(status, status)}): {first}", [], problems
    )


async def _run(lines: Iterable[Mapping[str, Any]], models: Sequence[str], options: Mapping[str, Any]) -> Any:
    import enqueue

    with tempfile.TemporaryDirectory(prefix="rerank-runner-") as temp:
        directory = Path(temp)
        dataset = directory / f"{options.get('name') or 'api'}.jsonl"
        with dataset.open("wb") as handle:
            for line in lines:
                handle.write(orjson.dumps(line) + b"\n")
        output = io.StringIO()
        with contextlib.redirect_stdout(output) if not options.get("verbose") else contextlib.nullcontext():
            args = enqueue.parse_args(_argv(dataset, models, directory, options))
            runs = prepare_runs(args)
            if isinstance(runs, int):
                raise _refused(runs, directory, output.getvalue())
            for run in runs:
                results, errors = directory / f"{run.batch}.jsonl", directory / f"{run.batch}.errors.jsonl"
                run.paths = Paths(results, errors, run.paths.rejects)
            status = await enqueue.enqueue_and_follow(*runs, group=group_of(args, runs))
        if status not in (0, 3):
            raise _refused(status, directory, output.getvalue())
        return _collect(runs, bool(options.get("strict", True)))


def _collect(runs: Sequence[Any], strict: bool) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for run in runs:
        records += [orjson.loads(raw) for raw in run.paths.results.read_bytes().splitlines()]
        errors = [orjson.loads(raw) for raw in run.paths.errors.read_bytes().splitlines()]
        for error in errors:
            error.setdefault("model", run.settings.default_model)
        failures += errors
    if strict and failures:
        codes = sorted({f["error"]["code"] for f in failures})
        raise RerankFailedError(
            f"{len(failures)} lines did not end as a ranking ({', '.join(codes)}); pass strict=False to "
            "get them as error records",
            records + failures,
            failures,
        )
    return records + failures


def _models(models: str | Sequence[str]) -> list[str]:
    return [models] if isinstance(models, str) else list(models)


async def arerank(
    lines: Iterable[Mapping[str, Any]],
    models: str | Sequence[str] = "local/bm25",
    *,
    corpus: str | Path | None = None,
    redis_url: str | None = None,
    state_dir: str | Path = DEFAULT_STATE_DIR,
    config: str | Path | None = None,
    group: str | None = None,
    name: str = "api",
    no_cache: bool = False,
    strict: bool = True,
    verbose: bool = False,
) -> list[dict[str, Any]]:
    """Re-rank dataset lines (dicts in ``enqueue.py``'s format) with each model; the result
    records, per model in dataset order (``record["model"]`` says which).  ``strict``: raise
    :class:`RerankFailedError` when a line failed (else its error record is returned too)."""
    options = {
        "corpus": corpus, "redis_url": redis_url, "state_dir": state_dir, "config": config,
        "group": group, "name": name, "no_cache": no_cache, "strict": strict, "verbose": verbose,
    }  # fmt: skip
    try:
        records: list[dict[str, Any]] = await _run(lines, _models(models), options)
    except RedisUnavailableError as exc:
        raise RerankFailedError(f"nothing re-ranked: {exc}", [], [str(exc)]) from exc
    return records


def _blocking(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, inside a running event loop too."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return event_loop.run(work, event_loop.default_event_loop())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rerank-runner") as pool:
        return pool.submit(event_loop.run, work, event_loop.default_event_loop()).result()


def rerank(
    lines: Iterable[Mapping[str, Any]], models: str | Sequence[str] = "local/bm25", **options: Any
) -> list[dict[str, Any]]:
    """:func:`arerank` from sync code (a script, or a notebook cell: a running loop is fine)."""
    return _blocking(arerank(lines, models, **options))


async def arerank_frame(
    frame: pandas.DataFrame, models: str | Sequence[str] = "local/bm25", **options: Any
) -> pandas.DataFrame:
    """Re-rank a DataFrame of ``qid, query, docno[, text]`` (PyTerrier's columns; without
    ``text``, pass ``corpus``); one row per (model, qid, docno): ``score`` and ``rank`` (0 is
    the best, as in PyTerrier)."""
    lines = frame_lines(frame)
    records = await arerank(lines, models, **options)
    return frame_of(records, {line["id"]: line["query"] for line in lines})


def rerank_frame(
    frame: pandas.DataFrame, models: str | Sequence[str] = "local/bm25", **options: Any
) -> pandas.DataFrame:
    """:func:`arerank_frame` from sync code."""
    return _blocking(arerank_frame(frame, models, **options))
