"""arq job (de)serializers: JSON only, so a worker never runs code found in Redis.

arq pickles by default; anything we do not produce ourselves (a pickle, garbage)
fails to decode as JSON and the job is rejected instead of executed.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["deserialize", "serialize"]


def serialize(obj: Any) -> bytes:
    # arq also serializes its own failure results (exceptions, datetimes): keep them readable.
    return orjson.dumps(obj, default=repr)


def deserialize(payload: bytes) -> Any:
    return orjson.loads(payload)
