"""arq job (de)serializers: JSON only, so a worker never runs code found in Redis.

arq pickles by default; anything we do not produce ourselves (a pickle, garbage)
fails to decode as JSON and the job is rejected instead of executed.

A queued line is written without arq's envelope (``{"t", "f", "a", "k", "et"}``, about 60
bytes a line): its value is the bare ``rerank_line`` payload (:mod:`jobs.payload`), and
:func:`deserialize` puts the envelope back, so arq's own ``Worker`` runs it as any job.  Jobs
with the envelope (``batch.py retry-failed``, older versions) still read as they are.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from jobs.keys import JOB_FUNCTION

__all__ = ["deserialize", "serialize"]


def serialize(obj: Any) -> bytes:
    # arq also serializes its own failure results (exceptions, datetimes): keep them readable.
    return orjson.dumps(obj, default=repr)


def deserialize(payload: bytes) -> Any:
    found = orjson.loads(payload)
    if isinstance(found, dict) and "f" not in found and "documents" in found:
        # a bare line: no enqueue time was written (arq only logs it), the time it is read stands in
        enqueued_ms = int(time.time() * 1000)
        return {"t": None, "f": JOB_FUNCTION, "a": [found], "k": {}, "et": enqueued_ms}
    return found
