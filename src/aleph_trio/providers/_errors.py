"""How a provider fails: one exception with a message fit for ``agent.error``."""

from __future__ import annotations

__all__ = ["ProviderError"]


class ProviderError(Exception):
    """The model could not be reached or answered badly. Never carries an API key.

    ``status`` is the HTTP status when there was one; ``retryable`` says whether the same request
    may succeed later (rate limits, server errors, timeouts); ``retry_after`` is how many seconds
    the server asked to wait first (its ``Retry-After``), when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
