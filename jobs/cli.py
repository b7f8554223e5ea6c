"""``rerank-runner enqueue|worker|batch ...``: the installed console script.

Each subcommand is the matching ``python <command>.py`` with the same arguments and help;
the rest of the command line is passed on untouched.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COMMANDS", "PROG", "Command", "main", "parser"]

PROG = "rerank-runner"


@dataclass(frozen=True)
class Command:
    summary: str
    run: Callable[[list[str], str], int]
    """(arguments after the command name, prog for its help) -> exit status."""


# Each command is imported on use, so that --help and the other commands load only what they need.
def _enqueue(argv: list[str], prog: str) -> int:
    import enqueue

    return enqueue.main(argv, prog=prog)


def _worker(argv: list[str], prog: str) -> int:
    import worker

    worker.main(argv, prog=prog)
    return 0


def _batch(argv: list[str], prog: str) -> int:
    import batch

    return batch.main(argv, prog=prog)


COMMANDS = {
    "enqueue": Command("validate a JSONL dataset and enqueue it (no Redis: run it here)", _enqueue),
    "worker": Command("pull line jobs from Redis and re-rank them", _worker),
    "batch": Command("list, status, results, cancel, retry-failed", _batch),
}


def parser() -> argparse.ArgumentParser:
    """Only for ``--help`` and errors: a known command's arguments are never parsed here."""
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Re-rank JSONL datasets through hosted rerank models, on arq + Redis.",
        epilog=f"'{PROG} COMMAND --help' shows a command's own options.",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=command.summary, add_help=False)
    return top


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in COMMANDS:
        name, rest = args[0], args[1:]
        return COMMANDS[name].run(rest, f"{PROG} {name}")
    parser().parse_args(args)  # prints the help, or an error naming the commands, and exits
    return 2
