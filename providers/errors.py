"""One exception tree for everything that can go wrong while re-ranking a line.

Every error has a stable machine-readable ``code`` (written into failure records)
and knows whether retrying could help.  HTTP failures are translated into this
tree once, in :mod:`providers.dispatcher`; nothing else inspects status codes.
"""

from __future__ import annotations

from typing import Any


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
