"""Table-driven body checks for the fake providers.

A provider's validation is a tuple of rules, each returning the provider's own message for a
body it refuses (or None); :func:`first_problem` runs them in order, as the real API reports
the first thing wrong.  Messages are the provider's words: ``{name}`` in a message stands for
the field concerned, ``{value}`` for its value, ``{count}`` for its length.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

Rule = Callable[[dict[str, Any]], str | None]


def say(message: str, body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    count = str(len(value)) if isinstance(value, list | dict | str) else "0"
    return message.replace("{name}", name).replace("{value}", str(value)).replace("{count}", count)


def first_problem(body: Any, not_an_object: str, rules: Iterable[Rule]) -> str | None:
    if not isinstance(body, dict):
        return not_an_object
    return next((problem for rule in rules if (problem := rule(body)) is not None), None)


def known_fields(fields: Collection[str], message: str) -> Rule:
    """Refuses the first field (alphabetically) that is not in ``fields``."""

    def rule(body: dict[str, Any]) -> str | None:
        unknown = sorted(set(body) - set(fields))
        return message.replace("{name}", unknown[0]) if unknown else None

    return rule


def text(name: str, message: str, *, strip: bool = False) -> Rule:
    """A non-empty string (``strip``: not blank either)."""

    def rule(body: dict[str, Any]) -> str | None:
        value = body.get(name)
        ok = isinstance(value, str) and bool(value.strip() if strip else value)
        return None if ok else say(message, body, name)

    return rule


def string(name: str, message: str) -> Rule:
    """Any string, empty included."""
    return lambda body: None if isinstance(body.get(name), str) else say(message, body, name)


def listed(name: str, message: str, low: int = 1, high: int | None = None) -> Rule:
    """A list of ``low`` to ``high`` items."""

    def rule(body: dict[str, Any]) -> str | None:
        value = body.get(name)
        ok = isinstance(value, list) and low <= len(value) <= (high if high is not None else len(value))
        return None if ok else say(message, body, name)

    return rule


def each(name: str, message: str, accept: Callable[[Any], bool] = lambda item: isinstance(item, str)) -> Rule:
    """Every item of the list ``name`` is accepted (strings, by default)."""

    def rule(body: dict[str, Any]) -> str | None:
        value = body.get(name)
        ok = isinstance(value, list) and all(accept(item) for item in value)
        return None if ok else say(message, body, name)

    return rule


def counts(names: Iterable[str], message: str, minimum: int = 1, *, null: bool = True) -> Rule:
    """Each of ``names``, when given, is an integer of at least ``minimum`` (booleans are not;
    ``null``: an explicit null counts as not given)."""
    names = tuple(names)

    def rule(body: dict[str, Any]) -> str | None:
        for name in names:
            if name not in body or (null and body[name] is None):
                continue
            value = body[name]
            if type(value) is not int or value < minimum:
                return say(message, body, name)
        return None

    return rule


def flags(names: Iterable[str], message: str) -> Rule:
    """Each of ``names``, when given, is a boolean."""
    names = tuple(names)

    def rule(body: dict[str, Any]) -> str | None:
        wrong = [name for name in names if name in body and not isinstance(body[name], bool)]
        return say(message, body, wrong[0]) if wrong else None

    return rule


def one_of(name: str, allowed: Collection[Any], message: str, default: Any = None) -> Rule:
    """The field (``default`` when left out) is one of ``allowed``."""
    return lambda body: None if body.get(name, default) in allowed else say(message, body, name)


def unless(condition: Callable[[dict[str, Any]], bool], message: str) -> Rule:
    """Refuses a body for which ``condition`` holds."""
    return lambda body: message if condition(body) else None
