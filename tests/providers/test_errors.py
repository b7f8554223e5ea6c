"""The error tree drawn in ``providers/errors.py``'s docstring is the tree of classes: every error,
its code, whether it is retried, and where it hangs."""

from __future__ import annotations

import re

from providers import errors
from providers.errors import RerankError

ROW = re.compile(r"^    (?P<indent>[ │├└─]*)(?P<name>\w+Error)\s+(?P<code>\w+)\s+(?P<retry>yes|no)\b")


def every_error(root: type[RerankError] = RerankError) -> list[type[RerankError]]:
    return [root, *(cls for sub in root.__subclasses__() for cls in every_error(sub))]


def drawn_rows() -> list[re.Match[str]]:
    return [row for line in (errors.__doc__ or "").splitlines() if (row := ROW.match(line))]


def test_every_error_is_drawn_with_its_code_and_retryability() -> None:
    drawn = {row["name"]: (row["code"], row["retry"] == "yes") for row in drawn_rows()}
    assert drawn == {cls.__name__: (cls.code, cls.retryable) for cls in every_error()}


def test_the_drawing_nests_as_the_classes_inherit() -> None:
    parents: list[str] = []  # the chain of drawn ancestors down to the current depth
    for row in drawn_rows():
        depth = len(row["indent"]) // 4
        parents[depth:] = [row["name"]]
        cls = getattr(errors, row["name"])
        assert [base.__name__ for base in cls.__bases__] == ([parents[depth - 1]] if depth else ["Exception"])
