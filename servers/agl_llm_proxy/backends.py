"""The backends behind the LLM proxy: which one serves a call, and which are up.

Routing keeps **rollout affinity**: every call of a rollout goes to the backend that served its
first call while that backend is healthy, so a multi-turn agent hits the prefix cache of one
vLLM server. A new rollout goes to the healthy backend with the fewest calls in flight (ties
broken in turn). A backend that refuses a connection or drops it before answering is marked
down for ``retry_after`` seconds; its rollouts move to another backend (and stay there), and it
is tried again once the time has passed. Health is learnt from the calls themselves: no
probing traffic.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field


def normalise_url(url: str) -> str:
    """A backend's base URL without a trailing ``/`` or ``/v1`` (the proxy adds ``/v1/...``)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


@dataclass
class Backend:
    """One OpenAI-compatible server.

    :ivar url: base URL (``http://host:port``, no ``/v1``).
    :ivar in_flight: calls it is serving now.
    :ivar down_until: monotonic time before which it is not chosen (0: up).
    """

    url: str
    in_flight: int = 0
    served: int = 0
    failures: int = 0
    down_until: float = 0.0
    last_error: str | None = None

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "url": self.url,
            "healthy": self.healthy(now),
            "in_flight": self.in_flight,
            "served": self.served,
            "failures": self.failures,
            "last_error": self.last_error,
        }


class NoBackendError(Exception):
    """No backend is configured, or every one was tried for this call and failed."""


@dataclass
class BackendPool:
    """Backends with rollout affinity and passive health tracking.

    :param urls: base URLs of the backends.
    :param retry_after: seconds a failed backend is left out before it is tried again.
    :param max_affinity: rollouts remembered (least recently used forgotten first).
    """

    urls: Iterable[str] = ()
    retry_after: float = 10.0
    max_affinity: int = 100_000
    backends: list[Backend] = field(init=False, default_factory=list)
    _affinity: OrderedDict[str, str] = field(init=False, default_factory=OrderedDict)
    _turn: itertools.count[int] = field(init=False, default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.set_urls(self.urls)

    def set_urls(self, urls: Iterable[str]) -> None:
        """Replace the backends (state of those that stay is kept; affinities to removed ones drop)."""
        known = {b.url: b for b in self.backends}
        wanted = list(dict.fromkeys(normalise_url(u) for u in urls))
        self.backends = [known.get(url) or Backend(url) for url in wanted]
        kept = set(wanted)
        for rollout_id in [r for r, url in self._affinity.items() if url not in kept]:
            del self._affinity[rollout_id]

    def __len__(self) -> int:
        return len(self.backends)

    def _by_url(self, url: str) -> Backend | None:
        return next((b for b in self.backends if b.url == url), None)

    def choose(self, rollout_id: str | None, exclude: set[str] | frozenset[str] = frozenset()) -> Backend:
        """The backend for the next call of ``rollout_id`` (``None``: a call outside any rollout).

        :param exclude: URLs already tried for this call.
        :raises NoBackendError: when none is left to try.
        """
        if not self.backends:
            raise NoBackendError("the proxy has no backend; start it with --backend URL")
        now = time.monotonic()
        if rollout_id is not None:
            pinned = self._affinity.get(rollout_id)
            backend = self._by_url(pinned) if pinned else None
            if backend is not None and backend.url not in exclude and backend.healthy(now):
                self._affinity.move_to_end(rollout_id)
                return backend
        candidates = [b for b in self.backends if b.url not in exclude]
        if not candidates:
            raise NoBackendError(f"every backend failed for this call ({', '.join(sorted(exclude))})")
        healthy = [b for b in candidates if b.healthy(now)]
        # When all are marked down, try the one that comes back first rather than failing outright:
        # a backend that recovered early should not have to wait out its penalty.
        pool = healthy or [min(candidates, key=lambda b: b.down_until)]
        fewest = min(b.in_flight for b in pool)
        tied = [b for b in pool if b.in_flight == fewest]
        backend = tied[next(self._turn) % len(tied)]
        if rollout_id is not None:
            self._affinity[rollout_id] = backend.url
            self._affinity.move_to_end(rollout_id)
            while len(self._affinity) > self.max_affinity:
                self._affinity.popitem(last=False)
        return backend

    def affinity(self, rollout_id: str) -> str | None:
        """The URL the rollout is pinned to, if any."""
        return self._affinity.get(rollout_id)

    def mark_down(self, backend: Backend, error: str) -> None:
        backend.failures += 1
        backend.last_error = error
        backend.down_until = time.monotonic() + self.retry_after

    def mark_up(self, backend: Backend) -> None:
        backend.down_until = 0.0

    def status(self) -> list[dict[str, object]]:
        now = time.monotonic()
        return [b.as_dict(now) for b in self.backends]


__all__ = ["Backend", "BackendPool", "NoBackendError", "normalise_url"]
