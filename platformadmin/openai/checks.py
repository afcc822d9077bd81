"""The checks before a call: key usable, model allowed, output cap, pre-call hook, rate
limit, circuit breaker. Each refusal is a ``CallRefused`` with a message naming the fix;
nothing was sent.
"""

from __future__ import annotations

import json
from pathlib import Path

from platformadmin.openai import hooks, ratelimit
from platformadmin.openai.breaker import BreakerOpen, CircuitBreaker
from platformadmin.openai.results import CallRefused, GenerateParams
from usage.selectors import catalog_models_for

# Catalog categories that do not answer text through the Responses API (embeddings,
# speech, realtime, image generation).
NOT_RESPONSES_MODELS = ("embeddings", "audio", "realtime", "multimodal")
CATALOG_FILE = Path(__file__).resolve().parents[2] / "usage" / "data" / "openai-models.json"


def _reasoning_efforts() -> tuple[str, ...]:
    """The efforts the SDK accepts for a reasoning model, from the catalog's data file (it has
    one list, not one per model), so a new effort is one edit there, not a hunt in code."""
    efforts = json.loads(CATALOG_FILE.read_text())["reasoning_effort"]
    if not efforts or not all(isinstance(e, str) and e for e in efforts):
        raise ValueError(f"{CATALOG_FILE}: 'reasoning_effort' must be a non-empty list of names.")
    return tuple(efforts)


REASONING_EFFORTS = _reasoning_efforts()


def models_for_project(project) -> list[tuple[str, bool]]:
    """(model id, supports reasoning) the project may call: active catalog ∩ allow-list.

    Memoized on the project instance for its current allow-list (the form and the
    service both ask within one request).
    """

    allowed = tuple(sorted(project.allowed_models or []))
    memo = getattr(project, "_playground_models", None)
    if memo is not None and memo[0] == allowed:
        return memo[1]
    result = catalog_models_for(allowed=allowed, exclude_categories=NOT_RESPONSES_MODELS)
    project._playground_models = (allowed, result)
    return result


def check_key(api_key, project) -> None:
    if api_key.project_id != project.pk:
        raise CallRefused(
            f"Key {api_key.hint} does not belong to project {project.name}.", "KeyNotInProject"
        )
    if api_key.kind == "admin":
        raise CallRefused(
            "Admin keys cannot call models; choose a project or service-account key.", "AdminKey"
        )
    if not api_key.is_active:
        raise CallRefused(
            f"Key {api_key.hint} is {api_key.get_status_display().lower()} and cannot be used. "
            "Choose an active key, or add a new one on the project's keys page.",
            "KeyNotActive",
        )


def check_model(params: GenerateParams, project) -> None:
    catalog = dict(models_for_project(project))
    if params.model not in catalog:
        raise CallRefused(
            f"Model {params.model!r} is not allowed in project {project.name}. "
            f"Choose one of: {', '.join(catalog) or 'none (ask a project owner to allow a model)'}.",
            "ModelNotAllowed",
        )
    if params.reasoning_effort and not catalog[params.model]:
        raise CallRefused(
            f"{params.model} is not a reasoning model: leave reasoning effort empty.",
            "ReasoningNotSupported",
        )
    if params.reasoning_effort and params.reasoning_effort not in REASONING_EFFORTS:
        raise CallRefused(
            f"Reasoning effort {params.reasoning_effort!r} is not one of "
            f"{', '.join(REASONING_EFFORTS)}: choose one of them.",
            "ReasoningNotSupported",
        )
    cap = project.max_output_tokens
    if cap and params.max_output_tokens and params.max_output_tokens > cap:
        raise CallRefused(
            f"Max output tokens {params.max_output_tokens:,} is above the project's cap of {cap:,}. "
            f"Enter {cap:,} or less.",
            "OutputCapExceeded",
        )


def pre_call(
    *, api_key, project, params: GenerateParams, user
) -> tuple[ratelimit.Reservation, CircuitBreaker | None, hooks.PreCallResult]:
    """Run every check in order; raise CallRefused with a message for the page. The hooks'
    holds (a budget reservation) are released here when a later check refuses; otherwise
    the caller settles them when the call ends."""
    check_key(api_key, project)
    check_model(params, project)
    if params.max_output_tokens is None and project.max_output_tokens:
        params.max_output_tokens = project.max_output_tokens  # the cap applies to every call
    estimate = ratelimit.estimate_tokens(
        instructions=params.instructions,
        text=params.input,
        max_output_tokens=params.max_output_tokens,
    )
    decision = hooks.run_pre_call_hooks(
        hooks.PreCallContext(
            project,
            api_key,
            params.model,
            estimate,
            user,
            max_output_tokens=params.max_output_tokens,
            prompt_bytes=len(((params.instructions or "") + params.input).encode()),
        )
    )
    if not decision.allowed:
        raise CallRefused(
            decision.message or "A policy of this project refused the call.",
            decision.error_type or "BudgetExceeded",
        )
    breaker = CircuitBreaker.for_key(api_key) if project.circuit_breaker_enabled else None
    try:
        reservation = ratelimit.reserve(
            project=project, model=params.model, estimated_tokens=estimate
        )
    except ratelimit.RateLimited as exc:
        decision.release()  # not sent: the budget reservation goes back
        raise CallRefused(exc.message, "ProjectRateLimited", exc.retry_after) from exc
    if breaker is not None:
        try:
            breaker.before_call(
                probe_seconds=project.request_timeout_seconds * (project.max_retries + 1) + 5
            )
        except BreakerOpen as exc:
            reservation.settle(0)
            decision.release()
            raise CallRefused(exc.message, "CircuitOpen") from exc
    return reservation, breaker, decision
