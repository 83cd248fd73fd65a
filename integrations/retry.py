"""Bounded retries with exponential backoff for calls to outside services."""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a call that failed transiently.

    The wait before retry n (counting from 0) is about
    ``initial_seconds * 2**n``, plus up to ``initial_seconds`` of jitter, and
    at most ``max_seconds``.
    """

    attempts: int = 5
    initial_seconds: float = 0.5
    max_seconds: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial_seconds < 0 or self.max_seconds < self.initial_seconds:
            raise ValueError("need 0 <= initial_seconds <= max_seconds")


def is_server_error(error: BaseException) -> bool:
    """Return whether the error is a connection failure, a timeout or a 5xx response."""
    if isinstance(error, httpx.TransportError):
        return True
    return (
        isinstance(error, httpx.HTTPStatusError) and error.response.status_code >= 500
    )


def is_server_error_or_throttled(error: BaseException) -> bool:
    """Return ``is_server_error``, or whether it is a 429 Too Many Requests."""
    if is_server_error(error):
        return True
    return (
        isinstance(error, httpx.HTTPStatusError) and error.response.status_code == 429
    )


async def call_with_retry(
    operation: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    transient: Callable[[BaseException], bool],
    what: str,
) -> T:
    """Await ``operation()``, again after a transient failure, at most ``attempts``
    times in all; the last failure, or any other one, propagates."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential_jitter(
            multiplier=policy.initial_seconds,
            max=policy.max_seconds,
            jitter=policy.initial_seconds,
        ),
        retry=retry_if_exception(transient),
        reraise=True,
        before_sleep=_log_retry(what, policy.attempts),
    )
    async for attempt in retrying:
        with attempt:
            return await operation()
    raise AssertionError("unreachable: tenacity returns or raises")


def _log_retry(what: str, attempts: int) -> Callable[[RetryCallState], None]:
    def log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "%s failed (%s); retrying in %.2f s, attempt %d of %d",
            what,
            describe_error(error),
            delay,
            state.attempt_number + 1,
            attempts,
        )

    return log


def describe_error(error: BaseException | None) -> str:
    """Describe a failed HTTP call briefly: the status, or the error's type and text."""
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    if error is None:
        return "unknown error"
    return type(error).__name__ + (f": {error}" if str(error) else "")
