"""Provider-specific parameters: what an adapter forwards beyond the unified request, and how.

An adapter declares each parameter it takes as a :class:`Param` (name, JSON type, allowed values
where the API has an enum, body field or query parameter, whether it changes scores).  Values
come from two places, merged with the line winning: a model-list deployment's ``litellm_params``
(as in LiteLLM) and a dataset line's ``provider_params`` object.  A key the adapter does not
declare, or a value it does not allow, is an error naming the key -- never dropped -- and
:func:`forward` is the one place values go onto a built :class:`~providers.adapter.WireRequest`:
the adapters' hooks never see them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from providers.adapter import WireRequest

__all__ = ["Kind", "Param", "check", "describe", "forward", "problems", "scoring", "unscored"]

Kind = Literal["string", "integer", "number", "boolean"]
_PYTHON: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    """The key users write (in ``provider_params`` or ``litellm_params``)."""
    kind: Kind
    choices: tuple[str | int, ...] = ()
    """The allowed values, where the API has an enum."""
    into: Literal["body", "query"] = "body"
    wire: str | None = None
    """The field's name on the wire, when not ``name``."""
    scores: bool = True
    """Whether the value can change a score (then it is part of the score cache key); a
    parameter that only changes billing or scheduling does not."""
    minimum: int | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not one this parameter takes, or None."""
        boolean = isinstance(value, bool)
        if boolean is not (self.kind == "boolean") or not isinstance(value, _PYTHON[self.kind]):
            article = "an" if self.kind == "integer" else "a"
            return f"must be {article} {self.kind}, got {_json_kind(value)}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if self.minimum is not None and isinstance(value, int) and value < self.minimum:
            return f"must be at least {self.minimum}, got {value}"
        return None

    @property
    def wire_name(self) -> str:
        return self.wire or self.name


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def problems(declared: Sequence[Param], provider: str, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, reason) for every key of ``values`` that ``declared`` does not take as given."""
    by_name = {p.name: p for p in declared}
    found = []
    for key, value in values.items():
        param = by_name.get(key)
        if param is None:
            takes = ", ".join(sorted(by_name)) or "none"
            found.append((key, f"is not a parameter {provider} takes (it takes: {takes})"))
        elif reason := param.problem(value):
            found.append((key, reason))
    return found


def check(declared: Sequence[Param], provider: str, values: Mapping[str, Any], where: str) -> str | None:
    """One message for everything wrong with ``values`` (``where``: what holds them), or None."""
    if not values:
        return None
    found = problems(declared, provider, values)
    return "; ".join(f"{where}.{key} {reason}" for key, reason in found) or None


def forward(declared: Sequence[Param], values: Mapping[str, Any], wire: WireRequest) -> WireRequest:
    """``wire`` with ``values`` (already checked) as body fields and query parameters; a value
    given replaces the adapter's own default for that field."""
    if not values:
        return wire
    by_name = {p.name: p for p in declared}
    body = dict(wire.body)
    query: list[tuple[str, str]] = []
    for key, value in values.items():
        param = by_name[key]
        if param.into == "body":
            body[param.wire_name] = value
        else:
            query.append((param.wire_name, _query_value(value)))
    url = wire.url
    if query:
        parts = urlsplit(url)
        kept = [q for q in parts.query.split("&") if q and q.split("=")[0] not in {n for n, _ in query}]
        url = urlunsplit(parts._replace(query="&".join([*kept, urlencode(query)])))
    return replace(wire, url=url, body=body)


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def unscored(declared: Iterable[Param]) -> frozenset[str]:
    return frozenset(p.name for p in declared if not p.scores)


def scoring(values: Mapping[str, Any] | None, skip: frozenset[str]) -> dict[str, Any]:
    """The values that can change scores (for cache keys)."""
    return {k: v for k, v in sorted((values or {}).items()) if k not in skip}


def describe(param: Param) -> str:
    """One cell of the provider table: name, type or values, where it goes."""
    allowed = "/".join(f"`{c}`" for c in param.choices) if param.choices else param.kind
    where = "query" if param.into == "query" else "body"
    renamed = f" as `{param.wire}`" if param.wire else ""
    note = "" if param.scores else ", no score effect"
    return f"`{param.name}` ({allowed}; {where}{renamed}{note})"
