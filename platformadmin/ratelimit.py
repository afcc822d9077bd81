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

    def settle(self, actual_tokens: int | None) -> None:
        if actual_tokens is None or actual_tokens == self.estimated_tokens:
            return
        try:
            _cache().incr(self.tokens_key, actual_tokens - self.estimated_tokens)
        except ValueError:  # the window already expired
            pass


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


def _cache():
    return caches[getattr(settings, "OPENAI_RATELIMIT_CACHE", "default")]


def limits_for(project, model: str) -> ProjectLimits:
    from orgs.models import ProjectModelLimit

    org = project.organization
    override = ProjectModelLimit.objects.filter(project=project, model_id=model).first()
    rpm, tpm, source = org.default_rpm, org.default_tpm, f"{org.get_tier_display()} default"
    if override is not None and (override.rpm or override.tpm):
        rpm, tpm = override.rpm or rpm, override.tpm or tpm
        source = "project limit for this model"
    return ProjectLimits(rpm, tpm, source)


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


def reserve(*, project, model: str, estimated_tokens: int, limits: ProjectLimits | None = None) -> Reservation:
    """Count one request and its estimated tokens, or raise RateLimited."""
    limits = limits or limits_for(project, model)
    now = time.time()
    window = int(now // WINDOW)
    retry_after = max(1, int((window + 1) * WINDOW - now + 0.999))
    prefix = f"openai-ratelimit:{project.public_id}:{model}:{window}"
    requests = _incr(f"{prefix}:requests", 1)
    if requests > limits.rpm:
        _incr(f"{prefix}:requests", -1)
        raise RateLimited(
            f"This project has reached its limit of {limits.rpm} requests per minute for {model} "
            f"({limits.source}). Try again in {retry_after} s, or ask a project owner to raise the limit.",
            retry_after,
        )
    tokens = _incr(f"{prefix}:tokens", estimated_tokens)
    if tokens > limits.tpm:
        _incr(f"{prefix}:tokens", -estimated_tokens)
        _incr(f"{prefix}:requests", -1)
        raise RateLimited(
            f"This call (about {estimated_tokens} tokens with the output cap) would exceed the project's "
            f"limit of {limits.tpm} tokens per minute for {model} ({limits.source}). Try again in "
            f"{retry_after} s, lower max output tokens, or ask a project owner to raise the limit.",
            retry_after,
        )
    return Reservation(f"{prefix}:tokens", estimated_tokens)
