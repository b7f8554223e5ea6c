"""Usage as the provider reported it, in its own terms; never estimated."""

from __future__ import annotations

from typing import Any

__all__ = ["token_usage"]


def token_usage(report: Any) -> dict[str, Any] | None:
    """A provider's ``usage`` object as ``{"tokens": {name: count}}``, numbers only, or None."""
    if not isinstance(report, dict):
        return None
    counts = {k: v for k, v in report.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {"tokens": counts} if counts else None
