"""Secrets scrubbed from everything a provider says back before it is logged, stored or exported.

A provider may echo what it was sent: the ``Authorization`` header, the key in a query string,
a SigV4 signature.  A :class:`Redactor` replaces every configured secret value (keys, tokens,
AWS secret keys, passwords: every ``SecretStr`` of every provider and model-list entry, and the
values of credential-bearing headers) and anything shaped like a credential (bearer tokens,
``x-api-key``-style header values, ``Signature=``/``Credential=``, ``?key=``) with
:data:`REDACTED`.  The dispatcher applies it to every error it raises, the worker to every
failure record and log line, so a key never reaches Redis, the errors export or the log.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from providers.deployment import Credentials, Deployment
from providers.errors import ProviderError, RerankError

__all__ = [
    "MIN_SECRET_CHARS",
    "OWN_LOGGERS",
    "PATTERNS",
    "PATTERNS_ONLY",
    "REDACTED",
    "SECRET_HEADERS",
    "RedactingFilter",
    "Redactor",
    "redact_logs",
    "secret_values",
]

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 6
"""Shorter configured values are not searched for verbatim (they would blank ordinary words);
the patterns still catch them where they sit in a header or a token."""
SECRET_HEADERS = (
    r"(?:proxy-)?authorization|x-api-key|api[-_]?key|x-goog-api-key|ocp-apim-subscription-key"
    r"|x-amz-security-token|x-auth-token|x-ibm-api-key|(?:set-)?cookie"
)
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a header written out: "Authorization: Bearer x", "x-api-key": "x", api_key=x
    (
        re.compile(rf"""(?i)(["']?\b(?:{SECRET_HEADERS})["']?\s*[:=]\s*["']?)[^"'\r\n,;&}}]+"""),
        rf"\1{REDACTED}",
    ),
    # an auth scheme and its token, wherever it appears
    # (a token has a digit, a capital or a symbol: "Basic authentication failed" is prose)
    (
        re.compile(r"\b([Bb]earer|Basic|ZenApiKey)(\s+)(?=[\w.~+/=:-]*[0-9A-Z.~+/=:-])[\w.~+/=:-]{6,}"),
        rf"\1\2{REDACTED}",
    ),
    # SigV4, in a header or a presigned URL
    (
        re.compile(r"(?i)\b((?:X-Amz-)?(?:Credential|Signature|Security-Token))=[^\s,&\"']+"),
        rf"\1={REDACTED}",
    ),
    # credentials in a query string
    (
        re.compile(
            r"(?i)([?&](?:api[-_]?key|key|token|access_token|auth|sig|signature|password)=)[^&\s\"']+"
        ),
        rf"\1{REDACTED}",
    ),
)


def _forms(secret: str) -> set[str]:
    """The ways a value can come back: as sent, JSON-escaped, percent-encoded."""
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote(secret)}


def secret_values(credentials: Iterable[Credentials], deployments: Iterable[Deployment] = ()) -> list[str]:
    """Every secret value configured: the ``SecretStr`` keys and settings of ``credentials``
    and of each deployment's, and the values of credential-bearing headers."""
    found: list[str] = []
    sources = [*credentials, *(d.credentials for d in deployments)]
    for creds in sources:
        for value in (creds.api_key, *creds.params.values()):
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
    header = re.compile(rf"(?i)^(?:{SECRET_HEADERS})$")
    for deployment in deployments:
        found += [v for k, v in deployment.headers.items() if header.match(k)]
    return found


class Redactor:
    """Scrubs configured secret values and credential-shaped text from strings, errors and
    records.  ``Redactor()`` knows no values and applies the patterns only."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {form for s in secrets if len(s) >= MIN_SECRET_CHARS for form in _forms(s)}
        ordered = sorted(forms, key=len, reverse=True)  # a key that contains another goes first
        self._values = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._values is not None:
            text = self._values.sub(REDACTED, text)
        for pattern, replacement in PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def error(self, exc: RerankError) -> RerankError:
        """``exc`` with its message (and body excerpt) scrubbed, in place."""
        exc.message = self(exc.message)
        exc.args = (exc.message,)
        if isinstance(exc, ProviderError) and exc.body_excerpt:
            exc.body_excerpt = self(exc.body_excerpt)
        return exc

    def record(self, value: Any) -> Any:
        """A JSON-like value with every string in it scrubbed."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.record(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.record(v) for v in value]
        return value


PATTERNS_ONLY = Redactor()


class RedactingFilter(logging.Filter):
    """Scrubs a log record's message and traceback before any handler formats it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redactor(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        return True


OWN_LOGGERS = (
    "rerank_runner.worker",
    "rerank_runner.http",
    "rerank_runner.reranker",
    "arq.worker",
    "arq.jobs",
)
"""Loggers whose records are scrubbed where they are made, whatever handlers (if any) print them."""


def redact_logs(redactor: Redactor) -> None:
    """Put a :class:`RedactingFilter` on every handler of the root logger and on
    :data:`OWN_LOGGERS` (a filter on a logger sees only that logger's own records)."""
    targets: list[logging.Filterer] = [*logging.getLogger().handlers]
    targets += [logging.getLogger(name) for name in OWN_LOGGERS]
    for target in targets:
        for old in [f for f in target.filters if isinstance(f, RedactingFilter)]:
            target.removeFilter(old)
        target.addFilter(RedactingFilter(redactor))
