"""The project's own RPM/TPM limit, counted in the shared cache across processes.

Limits come from a ``ProjectModelLimit`` row for the model when it sets them, else from
the organization's tier defaults. Counting uses fixed one-minute windows keyed by
project, model and minute; ``cache.incr`` is atomic on Redis (production, CI) and on the
local-memory cache, and close enough on the file cache of ``make run``. A request is
counted first and refused (and un-counted) if it went over, so two processes racing
for the last slot cannot both pass.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches

WINDOW = 60


@dataclass(frozen=True)
class ProjectLimits:
    rpm: int
    tpm: int
    source: str  # "tier default" or "project override"


@dataclass(frozen=True)
class Reservation:
    """What a call took from the window; ``settle`` corrects the token estimate."""

    tokens_key: str
    estimated_tokens: int
    # Values of ``reserve(read_also=...)`` keys read in the same round trip (Redis only;
    # None elsewhere: the caller reads them itself).
    read: dict | None = None

    def settle(self, actual_tokens: int | None, *, pipeline=None) -> None:
        """Correct the window's tokens to what the call used (``pipeline``: queue it there)."""
        if actual_tokens is None or actual_tokens == self.estimated_tokens:
            return
        delta = actual_tokens - self.estimated_tokens
        redis = _redis(_cache())
        if redis is not None:
            client, make_key = redis
            key = make_key(self.tokens_key)
            pipe = pipeline if pipeline is not None else client.pipeline(transaction=False)
            # If the window already expired this recreates its counter for two minutes;
            # nothing reads a past window's key.
            pipe.set(key, 0, ex=WINDOW * 2, nx=True)
            pipe.incrby(key, delta)
            if pipeline is None:
                pipe.execute()
            return
        try:
            _cache().incr(self.tokens_key, delta)
        except ValueError:  # the window already expired
            pass


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


def _cache():
    return caches[getattr(settings, "OPENAI_RATELIMIT_CACHE", "default")]


def shared_pipeline(other_cache):
    """(pipeline, key maker) when ``other_cache`` is this module's Redis cache, else None.

    Lets the service queue the breaker's and the rate limit's bookkeeping of one call in
    a single round trip.
    """
    cache = _cache()
    redis = _redis(cache) if other_cache is cache else None
    if redis is None:
        return None
    return redis[0].pipeline(transaction=False), redis[1]


def _redis(cache):
    """(raw redis client, key maker) when ``cache`` is Django's Redis backend, else None.

    Counting takes one round trip there (a pipeline) instead of Django's add + exists +
    incr per counter: about ten round trips per call before, a quarter of a millisecond
    each. The keys and integer values are the ones Django's backend reads and writes
    (``make_and_validate_key``; the Redis serializer stores ints as plain integers).
    """
    from django.core.cache.backends.redis import RedisCache

    backend = cache if isinstance(cache, RedisCache) else None
    if backend is None:
        return None
    return backend._cache.get_client(write=True), backend.make_and_validate_key


def limits_for(project, model: str) -> ProjectLimits:
    org = project.organization
    override = _override(project.pk, model)
    rpm, tpm, source = org.default_rpm, org.default_tpm, f"{org.get_tier_display()} default"
    if override is not None and (override[0] or override[1]):
        rpm, tpm = override[0] or rpm, override[1] or tpm
        source = "project limit for this model"
    return ProjectLimits(rpm, tpm, source)


def _override(project_pk: int, model: str) -> tuple[int | None, int | None] | None:
    """ProjectModelLimit's (rpm, tpm) for the project and model (unique together), or None.

    Written out: the ORM spent 0.2-0.3 ms building this one-row lookup on every call.
    """
    from django.db import connections, router

    from orgs.models import ProjectModelLimit

    alias = router.db_for_read(ProjectModelLimit)
    connection = connections[alias]
    qn = connection.ops.quote_name
    meta = ProjectModelLimit._meta

    def col(name: str) -> str:
        return qn(meta.get_field(name).column)

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {col('rpm')}, {col('tpm')} FROM {qn(meta.db_table)} "
                       f"WHERE {col('project')} = %s AND {col('model_id')} = %s", [project_pk, model])
        return cursor.fetchone()


def estimate_tokens(*, instructions: str, text: str, max_output_tokens: int | None) -> int:
    """Tokens a call may use, as OpenAI estimates it: the prompt plus the output cap."""
    return max(1, math.ceil(len((instructions or "") + (text or "")) / 4)) + int(max_output_tokens or 0)


def _incr(key: str, delta: int) -> int:
    cache = _cache()
    cache.add(key, 0, timeout=WINDOW * 2)
    try:
        return cache.incr(key, delta)
    except ValueError:  # expired between add and incr
        cache.set(key, delta, timeout=WINDOW * 2)
        return delta


def reserve(*, project, model: str, estimated_tokens: int, limits: ProjectLimits | None = None,
            read_also: tuple[str, ...] | list[str] = ()) -> Reservation:
    """Count one request and its estimated tokens, or raise RateLimited.

    ``read_also``: cache keys to read in the same round trip on Redis (the circuit
    breaker's state); their values are in ``Reservation.read``.
    """
    limits = limits or limits_for(project, model)
    now = time.time()
    window = int(now // WINDOW)
    retry_after = max(1, int((window + 1) * WINDOW - now + 0.999))
    prefix = f"openai-ratelimit:{project.public_id}:{model}:{window}"
    redis = _redis(_cache())
    if redis is not None:
        return _reserve_redis(redis, prefix, limits, model, estimated_tokens, retry_after, tuple(read_also))
    requests = _incr(f"{prefix}:requests", 1)
    if requests > limits.rpm:
        _incr(f"{prefix}:requests", -1)
        raise _rpm_refusal(limits, model, retry_after)
    tokens = _incr(f"{prefix}:tokens", estimated_tokens)
    if tokens > limits.tpm:
        _incr(f"{prefix}:tokens", -estimated_tokens)
        _incr(f"{prefix}:requests", -1)
        raise _tpm_refusal(limits, model, estimated_tokens, retry_after)
    return Reservation(f"{prefix}:tokens", estimated_tokens)


def _rpm_refusal(limits: ProjectLimits, model: str, retry_after: int) -> RateLimited:
    return RateLimited(
        f"This project has reached its limit of {limits.rpm} requests per minute for {model} "
        f"({limits.source}). Try again in {retry_after} s, or ask a project owner to raise the limit.",
        retry_after,
    )


def _tpm_refusal(limits: ProjectLimits, model: str, estimated_tokens: int, retry_after: int) -> RateLimited:
    return RateLimited(
        f"This call (about {estimated_tokens} tokens with the output cap) would exceed the project's "
        f"limit of {limits.tpm} tokens per minute for {model} ({limits.source}). Try again in "
        f"{retry_after} s, lower max output tokens, or ask a project owner to raise the limit.",
        retry_after,
    )


def _reserve_redis(redis, prefix: str, limits: ProjectLimits, model: str, estimated_tokens: int,
                   retry_after: int, read_also: tuple[str, ...] = ()) -> Reservation:
    """reserve() on Redis: both counters in one pipeline, counted first as elsewhere.

    ``SET NX EX`` creates a window's counter with its expiry (as ``cache.add`` does),
    then ``INCRBY`` counts; a refusal takes back both counts in a second pipeline. A
    refused call's tokens are counted for that instant only, which can make a racing
    call see the window fuller than it is, never emptier.
    """
    client, make_key = redis
    requests_key, tokens_key = make_key(f"{prefix}:requests"), make_key(f"{prefix}:tokens")
    pipe = client.pipeline(transaction=False)
    pipe.set(requests_key, 0, ex=WINDOW * 2, nx=True)
    pipe.incrby(requests_key, 1)
    pipe.set(tokens_key, 0, ex=WINDOW * 2, nx=True)
    pipe.incrby(tokens_key, estimated_tokens)
    if read_also:
        pipe.mget([make_key(k) for k in read_also])
    _, requests, _, tokens, *rest = pipe.execute()
    refusal = None
    if requests > limits.rpm:
        refusal = _rpm_refusal(limits, model, retry_after)
    elif tokens > limits.tpm:
        refusal = _tpm_refusal(limits, model, estimated_tokens, retry_after)
    if refusal is not None:
        undo = client.pipeline(transaction=False)
        undo.decrby(requests_key, 1)
        undo.decrby(tokens_key, estimated_tokens)
        undo.execute()
        raise refusal
    read = None
    if read_also:
        loads = _cache()._cache._serializer.loads  # how Django's get_many decodes
        read = {k: loads(v) for k, v in zip(read_also, rest[0], strict=True) if v is not None}
    return Reservation(f"{prefix}:tokens", estimated_tokens, read)
