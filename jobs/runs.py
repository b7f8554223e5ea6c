"""One enqueue's runs, decided before Redis is touched: the settings per model (one run, or
one per model in a bake-off), the dataset (given, or built from a first-stage run), the
validation of the whole file, and each run's identity and batch name."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from jobs.bakeoff import default_group_name, per_model
from jobs.corpus import Corpus, CorpusError, load_corpus
from jobs.firststage import FirstStageError, first_stage_dataset
from jobs.identity import LinesDigest, RunIdentity, default_batch_name, run_identity
from jobs.preflight import (
    Paths,
    UsageError,
    check_arguments,
    paths_for,
    settings_from,
    stop_before_enqueue,
    validate,
)
from jobs.settings import RunnerSettings, provider_credentials
from jobs.validation import ValidationReport
from jobs.verbatim import LineIndex

__all__ = ["PROG", "Run", "group_of", "prepare_runs"]

PROG = "python enqueue.py"


@dataclass
class Run:
    """Everything one enqueue needs, decided before Redis is touched."""

    args: argparse.Namespace
    settings: RunnerSettings
    batch: str
    paths: Paths
    report: ValidationReport
    identity: RunIdentity
    prog: str = PROG
    """How this command was run, so the next steps it prints are run the same way."""
    corpus: Corpus | None = None
    index: LineIndex | None = None
    """What validation noted of each line for the enqueue pass (None with a corpus)."""


def _first_stage(args: argparse.Namespace) -> Corpus:
    """--run: the dataset built from the run, topics and corpus becomes the command's dataset."""
    built, corpus = first_stage_dataset(args.run, args.topics, args.corpus, args.depth, args.topic_field)
    print(
        f"{args.run}: {built.queries} queries, {built.documents} documents (top {args.depth}) -> {built.path}"
        + (f"; {built.topics_without_run} topics have no run lines" if built.topics_without_run else "")
    )
    args.dataset = built.path
    return corpus


def prepare_runs(args: argparse.Namespace, prog: str = PROG) -> list[Run] | int:
    """One run per model (one unless a bake-off), validated; an exit status when nothing is
    to be enqueued."""
    corpus: Corpus | None = None
    try:
        every = [settings_from(model_args) for model_args in per_model(args)]
        if (args.run is None) == (args.dataset is None):
            raise UsageError("give a dataset or --run (with --topics and --corpus), not both")
        if args.run is not None:
            corpus = _first_stage(args)
        checks = [check_arguments(args, settings) for settings in every]
        if corpus is None and args.corpus:
            corpus = load_corpus(args.corpus)
    except (UsageError, FirstStageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CorpusError as exc:
        print(f"error: --corpus {exc}", file=sys.stderr)
        return 2
    lines = LinesDigest()  # validation hashes the lines: enqueue reads the file once more
    index = LineIndex() if corpus is None else None  # and notes what that pass needs of them
    report, rejects = validate(args, checks[0], corpus, every[0].line_limits, lines, index)
    runs = []
    for settings in every:
        identity = run_identity(
            args.dataset,
            report,
            settings.default_model,
            settings.config,
            provider_credentials(),
            corpus.digest if corpus else None,
            settings.max_line_bytes,
            lines,
        )
        batch = args.batch or default_batch_name(args.dataset, identity)
        paths = paths_for(args, batch)
        runs.append(Run(args, settings, batch, paths, report, identity, prog, corpus, index))
    rejects.move_to(runs[0].paths.rejects)
    if (status := stop_before_enqueue(args, report, runs[0].paths)) is not None:
        return status
    return runs


def group_of(args: argparse.Namespace, runs: list[Run]) -> str | None:
    """The bake-off's group name: --group, else one made from the sibling batches' names."""
    if args.group is None and len(runs) > 1:
        return default_group_name(args.dataset, [run.batch for run in runs])
    return str(args.group) if args.group else None
