"""Bounded retries with exponential backoff, shared by the HTTP providers.

Only errors marked :class:`Retryable` are retried (connection failures, 5xx and 429 answers);
everything else propagates at once. After the last attempt the :class:`Retryable`'s ``final``
error is raised, so callers always see a :class:`workflow.errors.ProviderError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import httpx
import trio

from protocol.log import get_logger
from workflow.errors import ProviderError, ProviderTimeoutError, ProviderUnavailableError

log = get_logger(__name__)

T = TypeVar("T")


class Retryable(Exception):
    """A transient failure: worth another attempt; ``final`` is raised when attempts run out."""

    def __init__(self, final: ProviderError) -> None:
        super().__init__(str(final))
        self.final = final


ErrorFactory = Callable[[type[ProviderError], str], ProviderError]
"""A provider's ``_error``: builds an error naming its endpoint and model."""


@contextmanager
def transport_errors(what: str, timeout_s: float, error: ErrorFactory) -> Iterator[None]:
    """One attempt's deadline, with transport failures mapped to provider errors.

    No answer within ``timeout_s`` (or an httpx read timeout) is a :class:`ProviderTimeoutError`,
    not retried; a connection failure (connect timeout included) is :class:`Retryable`.
    """
    try:
        with trio.fail_after(timeout_s):
            yield
    except trio.TooSlowError as exc:
        raise error(ProviderTimeoutError, f"{what}: no answer within {timeout_s}s") from exc
    except httpx.ConnectTimeout as exc:
        raise Retryable(error(ProviderUnavailableError, f"{what}: cannot connect ({exc!r})")) from exc
    except httpx.TimeoutException as exc:
        raise error(ProviderTimeoutError, f"{what}: no answer within {timeout_s}s") from exc
    except (ConnectionError, httpx.TransportError) as exc:
        raise Retryable(error(ProviderUnavailableError, f"{what}: cannot connect ({exc!r})")) from exc


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    max_retries: int,
    backoff_s: float,
    what: str,
) -> T:
    """Run ``attempt`` up to ``1 + max_retries`` times, sleeping ``backoff_s * 2**n`` between tries."""
    for n in range(max_retries + 1):
        try:
            return await attempt()
        except Retryable as exc:
            if n == max_retries:
                raise exc.final from exc
            delay = backoff_s * (2**n)
            log.warning("provider_retry", what=what, attempt=n + 1, delay_s=delay, error=str(exc.final))
            await trio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
