"""A bake-off: the same candidates through several models, as sibling batches under one name.

``enqueue.py DATASET --model a --model b`` validates the file once and enqueues one batch per
model, each with its own run identity and batch name (``FILE-MODEL-HASH``), exactly as if
``enqueue.py`` had been run once per model; the batches share the score cache and the corpus
statistics.  A group (``rr:group:{name}``, the batch names in model order) ties them together,
so ``batch.py status GROUP`` and ``batch.py results GROUP`` cover all of them, and so may any
command that takes batch names through :func:`expand`.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from redis.asyncio import Redis

from jobs import keys
from jobs.batches import BatchStatus
from jobs.preflight import BATCH_NAME, UsageError

__all__ = [
    "ONE_BATCH_FLAGS",
    "GroupStatus",
    "default_group_name",
    "expand",
    "group_batches",
    "per_model",
    "register_group",
]

ONE_BATCH_FLAGS = ("batch", "replace", "output", "errors")
"""Flags that name one batch or its files: refused in a bake-off (each sibling batch is named
after the file, its model and its content, and writes ``results/BATCH.jsonl``)."""


def per_model(args: argparse.Namespace) -> list[argparse.Namespace]:
    """The command's arguments once per ``--model`` (once, unchanged, without one); raises
    UsageError for a bake-off that names a single batch or repeats a model."""
    models: list[str] | None = args.model
    if args.group is not None and not BATCH_NAME.match(args.group):
        raise UsageError(f"group name {args.group!r}: use letters, digits, '.', '_' or '-'")
    if not models or len(models) == 1:
        return [argparse.Namespace(**{**vars(args), "model": models[0] if models else None})]
    if repeated := sorted({m for m in models if models.count(m) > 1}):
        raise UsageError(f"--model {repeated[0]} is given twice")
    if given := [f"--{name}" for name in ONE_BATCH_FLAGS if getattr(args, name, None)]:
        raise UsageError(
            f"{', '.join(given)}: a bake-off (several --model) makes one batch per model, named "
            "after the file, the model and the content; name the bake-off with --group"
        )
    return [argparse.Namespace(**{**vars(args), "model": model}) for model in models]


def default_group_name(dataset: Path, batches: Sequence[str]) -> str:
    """``FILE-bakeoff-HASH``: the file stem and a hash of the sibling batch names (so the same
    bake-off on the same content is the same group, a resume)."""
    digest = hashlib.blake2b("\n".join(batches).encode(), digest_size=5).hexdigest()
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in dataset.stem)[:60] or "dataset"
    return f"{stem}-bakeoff-{digest}"


async def register_group(redis: Redis, group: str, batches: Sequence[str], ttl_ms: int) -> None:
    """Record the group (its batches in model order), expiring with its batches' bookkeeping
    (``ttl_ms``; 0: never).  A group name given again gets this run's batches."""
    key = keys.group(group)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.zadd(key, {batch: position for position, batch in enumerate(batches)})
        if ttl_ms:
            pipe.pexpire(key, ttl_ms)
        await pipe.execute()


async def group_batches(redis: Redis, name: str) -> list[str] | None:
    """The group's batches in model order; None when ``name`` is no group."""
    found: list[bytes] = await redis.zrange(keys.group(name), 0, -1)
    return [b.decode() for b in found] or None


async def expand(redis: Redis, names: Iterable[str]) -> list[str]:
    """Batch names, each group replaced by its batches (in order, each batch once)."""
    batches: list[str] = []
    for name in names:
        for batch in await group_batches(redis, name) or [name]:
            if batch not in batches:
                batches.append(batch)
    return batches


class GroupStatus:
    """Totals over several batches, for one line of ``status``."""

    def __init__(self, statuses: Sequence[BatchStatus]) -> None:
        self.statuses = statuses
        self.total = sum(s.total for s in statuses)
        self.succeeded = sum(s.succeeded for s in statuses)
        self.failed = sum(s.failed for s in statuses)
        self.pending = sum(s.pending for s in statuses)

    def to_json(self) -> dict[str, int]:
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "pending": self.pending,
        }

    def describe(self, name: str) -> str:
        return (
            f"{name}: {len(self.statuses)} batches  total {self.total}  succeeded {self.succeeded}  "
            f"failed {self.failed}  pending {self.pending}"
        )
