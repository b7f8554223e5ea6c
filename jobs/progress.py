"""Follow a batch until it finishes, with a progress bar on stderr."""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis
from tqdm import tqdm

from jobs import keys
from jobs.batches import BatchStatus, batch_status

__all__ = ["IDLE_POLLS_BEFORE_GIVING_UP", "POLL_SECONDS", "wait_for_batch"]

POLL_SECONDS = 0.5
IDLE_POLLS_BEFORE_GIVING_UP = 20


async def wait_for_batch(redis: Redis, batch: str, *, show: bool = True) -> BatchStatus:
    """Return once every line has a record, the batch is cancelled, or nothing is
    left to run it (empty queue, no progress for ``IDLE_POLLS_BEFORE_GIVING_UP`` polls)."""
    status = await batch_status(redis, batch)
    bar = tqdm(
        total=status.total,
        initial=status.done,
        unit="line",
        desc=batch,
        file=sys.stderr,
        disable=not show,
        dynamic_ncols=True,
    )
    idle = 0
    try:
        while not status.finished and not status.cancelled:
            await asyncio.sleep(POLL_SECONDS)
            previous = status.done
            status = await batch_status(redis, batch)
            bar.update(status.done - previous)
            bar.set_postfix(failed=status.failed, refresh=False)
            stalled = status.done == previous and not await redis.zcard(keys.QUEUE)
            idle = idle + 1 if stalled else 0
            if idle >= IDLE_POLLS_BEFORE_GIVING_UP:
                break
    finally:
        bar.close()
    return status
