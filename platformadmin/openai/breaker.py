"""Circuit breaker per (base URL, key), with its state in the shared Django cache.

After ``OPENAI_BREAKER_FAILURE_THRESHOLD`` consecutive *transient* failures
(connection errors, timeouts, 5xx, 429 once the SDK's retries are spent) the circuit
opens: calls fail fast with a clear message instead of waiting on a dead upstream.
After ``OPENAI_BREAKER_COOLDOWN_SECONDS`` it half-opens: exactly one caller (claimed
with an atomic ``cache.add``) makes a probe call; success closes the circuit, a
transient failure opens it again for another cool-down. Any reply that proves the
upstream answers (a success, or a 4xx such as 401) resets the count; a stream cut short
(the connection dropped, or the body ended with no terminal event) is a transient failure.

The state lives in the cache (Redis in production and CI, a file cache in
``make run``) so every web and worker process sees the same circuit. It is keyed by the
key's fingerprint (an HMAC, never the secret) and the base URL, so a rotated secret
starts with a closed circuit.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import caches

from platformadmin import cachecounter
from platformadmin.openai.client import effective_base_url

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
_KEEP = 24 * 3600  # how long the cache keeps a circuit's counters without news


def _threshold() -> int:
    return int(getattr(settings, "OPENAI_BREAKER_FAILURE_THRESHOLD", 5))


def _cooldown() -> float:
    return float(getattr(settings, "OPENAI_BREAKER_COOLDOWN_SECONDS", 30.0))


def _cache():
    return caches[getattr(settings, "OPENAI_BREAKER_CACHE", "default")]


@dataclass(frozen=True)
class BreakerState:
    """What the key page shows."""

    state: str  # closed | open | half-open
    consecutive_failures: int
    half_opens_at: datetime | None  # when an open circuit lets a probe through
    threshold: int
    cooldown_seconds: float
    last_error: str = ""
    enabled: bool = True

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    @property
    def probe_failed(self) -> bool:
        """A failed half-open probe adds one failure past the threshold (it re-opens the
        circuit at once), so a count above the threshold means the last probe failed."""
        return self.state != CLOSED and self.consecutive_failures > self.threshold

    @property
    def failures_shown(self) -> str:
        """The failure count as the key page shows it, never "6/5": capped at the
        threshold, with a failed probe said in words."""
        if self.probe_failed:
            return f"{self.threshold}/{self.threshold} failures, last probe failed"
        return f"{self.consecutive_failures}/{self.threshold} failures"


class BreakerOpen(Exception):
    """The circuit is open (or half-open with a probe in flight): fail fast."""

    def __init__(self, message: str, state: BreakerState):
        super().__init__(message)
        self.message, self.state = message, state


class CircuitBreaker:
    """One circuit, identified by the upstream base URL and the key's fingerprint."""

    def __init__(self, base_url: str, key_fingerprint: str, *, label: str = "this key"):
        digest = hashlib.sha256(f"{base_url.rstrip('/')}|{key_fingerprint}".encode()).hexdigest()[
            :32
        ]
        self.prefix = f"openai-breaker:{digest}"
        self.base_url, self.label = base_url, label
        self._failures = f"{self.prefix}:failures"
        self._open_until = f"{self.prefix}:open-until"
        self._probe = f"{self.prefix}:probe"
        self._last_error = f"{self.prefix}:last-error"

    @classmethod
    def for_key(cls, api_key) -> CircuitBreaker:
        return cls(effective_base_url(api_key), api_key.fingerprint, label=f"key {api_key.hint}")

    # -- reading ---------------------------------------------------------------------
    @property
    def state_keys(self) -> list[str]:
        """The cache keys state() reads (a caller may read them in its own round trip)."""
        return [self._failures, self._open_until, self._last_error]

    def state(self, *, enabled: bool = True, values: dict | None = None) -> BreakerState:
        """The circuit's state; ``values``: state_keys already read from the cache."""
        if values is None:
            values = _cache().get_many(self.state_keys)
        failures = int(values.get(self._failures) or 0)
        open_until = values.get(self._open_until)
        if open_until is None:
            state, at = CLOSED, None
        else:
            at = datetime.fromtimestamp(float(open_until), tz=UTC)
            state = OPEN if time.time() < float(open_until) else HALF_OPEN
        return BreakerState(
            state,
            failures,
            at,
            _threshold(),
            _cooldown(),
            values.get(self._last_error) or "",
            enabled,
        )

    # -- the call protocol -----------------------------------------------------------
    def before_call(self, *, probe_seconds: float = 120.0, values: dict | None = None) -> None:
        """Raise BreakerOpen unless a call may go out now (``values``: as for state())."""
        current = self.state(values=values)
        if current.state == CLOSED:
            return
        if current.state == OPEN:
            wait = max(0, int((current.half_opens_at.timestamp() - time.time()) + 0.999))
            raise BreakerOpen(
                f"The circuit breaker for {self.label} at {self.base_url} is open after "
                f"{current.consecutive_failures} consecutive failures (last: {current.last_error or 'unknown'}). "
                f"Calls fail fast for {wait} more second(s); then one test call is let through.",
                current,
            )
        # Half-open: a single probe at a time, across every process (add is atomic).
        if not _cache().add(self._probe, 1, timeout=probe_seconds):
            raise BreakerOpen(
                f"The circuit breaker for {self.label} is half-open and a test call is already "
                "in flight. Try again in a few seconds.",
                current,
            )

    def record_success(self) -> None:
        """The upstream answered: close the circuit."""
        _cache().delete_many([self._failures, self._open_until, self._probe, self._last_error])

    def record_failure(self, error_type: str) -> None:
        """A transient failure: count it; open (or re-open) the circuit at the threshold."""
        cache = _cache()
        failures = cachecounter.incr(self._failures, 1, timeout=_KEEP, cache=cache)
        cache.set(self._last_error, error_type, timeout=_KEEP)
        was_probing = cache.get(self._open_until) is not None
        if failures >= _threshold() or was_probing:
            cache.set(self._open_until, time.time() + _cooldown(), timeout=_KEEP)
            cache.delete(self._probe)

    def release_probe(self) -> None:
        """Give back a half-open probe slot when no request was sent after all."""
        _cache().delete(self._probe)

    def reset(self) -> None:
        self.record_success()


def breaker_state_for_key(api_key) -> BreakerState:
    """The circuit state of a key (closed / open / half-open, failures, when it half-opens)."""
    enabled = bool(api_key.project_id is None or api_key.project.circuit_breaker_enabled)
    return CircuitBreaker.for_key(api_key).state(enabled=enabled)
