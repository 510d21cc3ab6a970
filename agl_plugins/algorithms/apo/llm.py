"""APO's calls to its critique and edit models, over any OpenAI-compatible endpoint.

Each call is bounded by a deadline and retried with exponential back-off (with jitter, honouring
the server's ``Retry-After``) when the endpoint is overloaded or failing: timeouts, connection
errors, 408, 409, 429 and 5xx. Other errors (a bad request, a wrong key, an unknown model) fail at
once: retrying cannot fix them. Every retry and failure is logged and counted, so the person
running APO sees an unhealthy endpoint instead of a silently slow run.

The ``openai`` client's own retries are switched off: they are invisible to the caller, and APO
reports each one.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429})


class LLMCallError(RuntimeError):
    """A critique or edit call that failed for good (after its retries, or at once when retrying
    cannot help)."""


@dataclass
class LLMStats:
    """What the endpoint did: requests sent (retries included), retries, calls that failed for good,
    errors by kind."""

    calls: int = 0
    retries: int = 0
    failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "retries": self.retries, "failures": self.failures, "errors": dict(self.errors)}


def _retry_after(error: BaseException) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms`` or ``retry-after``), if any."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    with_ms = headers.get("retry-after-ms")
    if with_ms:
        try:
            return max(0.0, float(with_ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _classify(error: BaseException) -> tuple[str, bool]:
    """(a short name of the error, whether a retry may help)."""
    if isinstance(error, (TimeoutError, openai.APITimeoutError)):
        return "timeout", True
    if isinstance(error, openai.APIConnectionError):
        return "connection error", True
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        return f"HTTP {status}", status in RETRY_STATUS or status >= 500
    return type(error).__name__, False


class ChatClient:
    """Chat completions with deadlines, retries and back-off.

    :param client: an ``openai.AsyncOpenAI`` (its own retries should be off: ``max_retries=0``).
    :param timeout: seconds one request may take, end to end.
    :param max_retries: retries after the first try (0: none).
    :param backoff: the first retry's delay in seconds; it doubles with each further retry.
    :param max_backoff: the longest single wait, the server's ``Retry-After`` included.
    :param concurrency: calls in flight at once.
    :param sleep: how to wait (tests give their own to see the delays without waiting them).
    """

    def __init__(
        self,
        client: Any,
        *,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        concurrency: int = 8,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries is {max_retries}; use 0 for no retries")
        if timeout <= 0:
            raise ValueError(f"timeout is {timeout}; a call needs a positive number of seconds")
        self.client = client
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.stats = LLMStats()
        self._slots = asyncio.Semaphore(max(1, concurrency))

    def delay(self, retry: int, error: BaseException) -> float:
        """How long to wait before retry number ``retry`` (from 1)."""
        asked = _retry_after(error)
        if asked is not None:
            return min(asked, self.max_backoff)
        exponential = min(self.backoff * 2 ** (retry - 1), self.max_backoff)
        return exponential * (0.5 + self.rng.random() / 2)  # jitter: callers that failed together spread out

    async def complete(
        self, *, model: str, messages: Sequence[dict[str, str]], temperature: float | None, purpose: str
    ) -> str:
        """The text of the first choice.

        :param purpose: what the call is for, in reports (``"critique of apo-...-r1-02"``).
        :raises LLMCallError: when the call failed for good, or the model answered with no text.
        """
        async with self._slots:
            retry = 0
            while True:
                self.stats.calls += 1
                try:
                    extra = {"temperature": temperature} if temperature is not None else {}
                    response = await asyncio.wait_for(
                        self.client.chat.completions.create(model=model, messages=list(messages), **extra),
                        self.timeout,
                    )
                except Exception as exc:
                    kind, retryable = _classify(exc)
                    self.stats.errors[kind] += 1
                    if not retryable or retry >= self.max_retries:
                        self.stats.failures += 1
                        why = "" if retryable else " (not retried: retrying cannot fix it)"
                        logger.warning("apo: %s failed for good after %d tries: %s%s", purpose, retry + 1, kind, why)
                        raise LLMCallError(f"{purpose} failed after {retry + 1} tries: {kind}: {exc}") from exc
                    retry += 1
                    wait = self.delay(retry, exc)
                    self.stats.retries += 1
                    logger.warning(
                        "apo: %s got %s from model %s; retry %d/%d in %.1fs",
                        purpose,
                        kind,
                        model,
                        retry,
                        self.max_retries,
                        wait,
                    )
                    await self.sleep(wait)
                    continue
                choices = getattr(response, "choices", None) or []
                text = choices[0].message.content if choices and choices[0].message is not None else None
                if not text or not text.strip():
                    self.stats.failures += 1
                    raise LLMCallError(f"{purpose}: model {model} answered with no text")
                return str(text)
