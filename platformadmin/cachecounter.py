"""One fixed-window counter over Django's shared cache, public cache APIs only.

Infrastructure below every app: the project rate limit, the circuit breaker's failure
count, the ingestion API's rate limit and failed-auth throttle, the password-reset
throttle and the count of failed usage writes all count with it, so the rule "create the
window's counter with its expiry, then add atomically" is written once. ``cache.add``
then ``cache.incr`` is atomic on Redis and on the local-memory cache; on the file cache of
``make run`` it is close enough.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import BaseCache, caches


@dataclass(frozen=True)
class Window:
    """A fixed window: its counter's cache key and the seconds until it ends."""

    key: str
    retry_after: int


def window(prefix: str, *, seconds: int, now: float | None = None) -> Window:
    """The current ``seconds``-long window for ``prefix`` (the key names the window)."""
    now = time.time() if now is None else now
    index = int(now // seconds)
    return Window(f"{prefix}:{index}", max(1, int((index + 1) * seconds - now + 0.999)))


def incr(key: str, delta: int = 1, *, timeout: int, cache: BaseCache | None = None) -> int:
    """Add ``delta`` to the counter at ``key`` (created at 0 with ``timeout``); the new value."""
    cache = caches["default"] if cache is None else cache
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key, delta)
    except ValueError:  # evicted or expired between add and incr: this count starts it again
        cache.set(key, delta, timeout=timeout)
        return delta


def adjust(key: str, delta: int, *, cache: BaseCache | None = None) -> None:
    """Correct an existing counter by ``delta``; a window already gone stays gone."""
    cache = caches["default"] if cache is None else cache
    try:
        cache.incr(key, delta)
    except ValueError:  # the window already expired: nothing reads a past window
        pass


def read(key: str, *, cache: BaseCache | None = None) -> int:
    """The counter's value (0 when absent)."""
    cache = caches["default"] if cache is None else cache
    return int(cache.get(key) or 0)


def total(keys: list[str], *, cache: BaseCache | None = None) -> int:
    """The sum of several counters (windows) in one read; absent ones count 0."""
    cache = caches["default"] if cache is None else cache
    return sum(int(value or 0) for value in cache.get_many(keys).values())
