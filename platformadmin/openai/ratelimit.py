"""The project's own RPM/TPM limit, counted in the shared cache across processes.

Limits come from a ``ProjectModelLimit`` row for the model when it sets them, else from
the organization's tier defaults. Counting uses fixed one-minute windows keyed by
project, model and minute, through the one window counter (platformadmin/cachecounter.py:
``cache.add`` + ``cache.incr``, atomic on Redis and on the local-memory cache). A request
is counted first and refused (and un-counted) if it went over, so two processes racing
for the last slot cannot both pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches

from orgs.selectors import project_model_limit
from platformadmin import cachecounter

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
        """Correct the window's tokens to what the call used."""
        if actual_tokens is None or actual_tokens == self.estimated_tokens:
            return
        cachecounter.adjust(self.tokens_key, actual_tokens - self.estimated_tokens, cache=_cache())


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


def _cache():
    return caches[getattr(settings, "OPENAI_RATELIMIT_CACHE", "default")]


def limits_for(project, model: str) -> ProjectLimits:
    org = project.organization
    override = project_model_limit(project_id=project.pk, model=model)
    rpm, tpm, source = org.default_rpm, org.default_tpm, f"{org.get_tier_display()} default"
    if override is not None and (override[0] or override[1]):
        rpm, tpm = override[0] or rpm, override[1] or tpm
        source = "project limit for this model"
    return ProjectLimits(rpm, tpm, source)


def estimate_tokens(*, instructions: str, text: str, max_output_tokens: int | None) -> int:
    """Tokens a call may use, as OpenAI estimates it: the prompt plus the output cap."""
    return max(1, math.ceil(len((instructions or "") + (text or "")) / 4)) + int(
        max_output_tokens or 0
    )


def reserve(
    *, project, model: str, estimated_tokens: int, limits: ProjectLimits | None = None
) -> Reservation:
    """Count one request and its estimated tokens, or raise RateLimited (taking both back)."""
    limits = limits or limits_for(project, model)
    window = cachecounter.window(f"openai-ratelimit:{project.public_id}:{model}", seconds=WINDOW)
    requests_key, tokens_key = f"{window.key}:requests", f"{window.key}:tokens"
    cache = _cache()
    if cachecounter.incr(requests_key, 1, timeout=WINDOW * 2, cache=cache) > limits.rpm:
        cachecounter.adjust(requests_key, -1, cache=cache)
        raise _rpm_refusal(limits, model, window.retry_after)
    if (
        cachecounter.incr(tokens_key, estimated_tokens, timeout=WINDOW * 2, cache=cache)
        > limits.tpm
    ):
        cachecounter.adjust(tokens_key, -estimated_tokens, cache=cache)
        cachecounter.adjust(requests_key, -1, cache=cache)
        raise _tpm_refusal(limits, model, estimated_tokens, window.retry_after)
    return Reservation(tokens_key, estimated_tokens)


def _rpm_refusal(limits: ProjectLimits, model: str, retry_after: int) -> RateLimited:
    return RateLimited(
        f"This project has reached its limit of {limits.rpm} requests per minute for {model} "
        f"({limits.source}). Try again in {retry_after} s, or ask a project owner to raise the limit.",
        retry_after,
    )


def _tpm_refusal(
    limits: ProjectLimits, model: str, estimated_tokens: int, retry_after: int
) -> RateLimited:
    return RateLimited(
        f"This call (about {estimated_tokens} tokens with the output cap) would exceed the project's "
        f"limit of {limits.tpm} tokens per minute for {model} ({limits.source}). Try again in "
        f"{retry_after} s, lower max output tokens, or ask a project owner to raise the limit.",
        retry_after,
    )
