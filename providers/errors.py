"""One exception tree for everything that can go wrong while re-ranking a line.

Every error has a stable machine-readable ``code`` (written into failure records)
and knows whether retrying could help.  HTTP failures are translated into this
tree once, in :func:`providers.wire.send`; nothing else inspects status codes.

    class                                code               retry  raised for
    RerankError                          error              no     the root; its code goes into the record
    ├── ConfigurationError               configuration      no     missing key, base URL or setting; bad URL
    ├── DeadlineExceededError            deadline_exceeded  yes    the line's time budget ran out
    ├── DeferredError                    deferred           no     nothing can take the line soon
    ├── DocumentMissingError             document_missing   no     a stored document expired or was evicted
    └── ProviderError                    error              no
        ├── RetryableProviderError       error              yes
        │   ├── RateLimitedError         rate_limited       yes    429
        │   ├── ServerError              server_error       yes    409, 424, 425, 5xx; a retryable refresh
        │   ├── ProviderTimeoutError     timeout            yes    408; any httpx timeout
        │   └── ProviderConnectionError  connection_error   yes    any other httpx transport error
        └── PermanentProviderError       error              no
            ├── AuthenticationError      authentication     no     401, 403 (and IAM's 400); a refused refresh
            ├── QuotaExceededError       quota_exceeded     no     402
            ├── InvalidRequestError      invalid_request    no     any other status >= 400
            └── BadResponseError         bad_response       no     a 2xx that is no correct ranking; too big

A bad URL is ``httpx.InvalidURL`` or ``httpx.UnsupportedProtocol``; an undecodable body
(``httpx.DecodingError``) is a ``BadResponseError``, and so is a 2xx body that is not JSON, not
the documented shape, breaks :mod:`providers.contract` or exceeds the response size cap;
"IAM's 400" is IBM IAM's answer to an unknown API key (:mod:`providers.auth.watsonx_iam`); a
"refresh" is a Google token refresh (:mod:`providers.auth.google_oauth`).  ``DeferredError``
hands the line back to the queue for ``delay`` seconds.  ``tests/providers/test_errors.py``
keeps this drawing in step with the classes.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "BadResponseError",
    "ConfigurationError",
    "DeadlineExceededError",
    "DeferredError",
    "DocumentMissingError",
    "InvalidRequestError",
    "PermanentProviderError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitedError",
    "RerankError",
    "RetryableProviderError",
    "ServerError",
]


class RerankError(Exception):
    code = "error"
    retryable = False

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.provider:
            record["provider"] = self.provider
        return record


class ConfigurationError(RerankError):
    """A key, base URL or model name is missing or wrong; fix the set-up, then retry."""

    code = "configuration"


class DeadlineExceededError(RerankError):
    """The line ran out of its time budget inside the job."""

    code = "deadline_exceeded"
    retryable = True


class DeferredError(RerankError):
    """No deployment can take the line soon: hand it back to the queue for ``delay`` seconds."""

    code = "deferred"

    def __init__(self, message: str, *, delay: float, provider: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.delay = delay


class DocumentMissingError(RerankError):
    """A document the line's job refers to by hash is no longer in Redis (expired or evicted), or
    is not the content its hash names; the line is never ranked without it."""

    code = "document_missing"

    def __init__(self, message: str, *, positions: list[int]) -> None:
        super().__init__(message)
        self.positions = positions

    def to_record(self) -> dict[str, Any]:
        return {**super().to_record(), "documents": self.positions}


class ProviderError(RerankError):
    """The provider answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        request_id: str | None = None,
        body_excerpt: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.status = status
        self.request_id = request_id
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [f"{self.provider}: {self.message}"]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        if self.retry_after is not None:
            parts.append(f"retry_after={self.retry_after:g}s")
        return " ".join(parts)

    def to_record(self) -> dict[str, Any]:
        record = super().to_record()
        for key in ("status", "request_id", "body_excerpt", "retry_after"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        return record


class RetryableProviderError(ProviderError):
    retryable = True


class RateLimitedError(RetryableProviderError):
    code = "rate_limited"


class ServerError(RetryableProviderError):
    code = "server_error"


class ProviderTimeoutError(RetryableProviderError):
    code = "timeout"


class ProviderConnectionError(RetryableProviderError):
    code = "connection_error"


class PermanentProviderError(ProviderError):
    pass


class AuthenticationError(PermanentProviderError):
    code = "authentication"


class InvalidRequestError(PermanentProviderError):
    code = "invalid_request"


class QuotaExceededError(PermanentProviderError):
    code = "quota_exceeded"


class BadResponseError(PermanentProviderError):
    """A 2xx answer that is not the provider's documented shape."""

    code = "bad_response"
