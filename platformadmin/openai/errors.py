"""Error texts: an SDK exception as a message a person can act on, scrubbed of the
credential the call sent, with both request ids."""

from __future__ import annotations

import math
import time

import openai

from platformadmin.openai.breaker import CircuitBreaker
from platformadmin.openai.client import CallSettings, effective_base_url
from platformadmin.openai.results import CallOutcome, GenerateParams
from platformadmin.redaction import exception_secrets, redact, scrub

TRANSIENT_ERRORS = (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError)


def retry_after_of(exc) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        try:
            return float(headers[name]) / divisor
        except (KeyError, ValueError, TypeError):
            continue
    return None


def retries_from_error(exc) -> int:
    """The SDK does not expose retries on errors; the last attempt's header carries them."""
    request = getattr(exc, "request", None)
    try:
        return (
            int(request.headers.get("x-stainless-retry-count") or 0) if request is not None else 0
        )
    except (ValueError, AttributeError):
        return 0


def _server_message(exc) -> str:
    """The upstream's own words, without the credential this call sent (an upstream may
    echo it, in any encoding) and without anything shaped like a secret."""
    body = getattr(exc, "body", None)
    text = body.get("message") if isinstance(body, dict) else None
    return scrub(str(text or getattr(exc, "message", "") or exc), exception_secrets(exc)).strip()


def explain_error(
    exc: Exception, *, api_key, model: str, settings: CallSettings, retries: int
) -> tuple[str, str | None]:
    """(a message a person can act on, the offending parameter) for an SDK exception.

    Both are scrubbed of the credential the call sent, by value and by shape, before
    anything shows, logs or stores them: the parameter name comes from the upstream too.
    """
    message, param = _explain_error(
        exc, api_key=api_key, model=model, settings=settings, retries=retries
    )
    secrets = exception_secrets(exc)
    return scrub(message, secrets), (scrub(param, secrets) or None) if param is not None else None


def _explain_error(
    exc: Exception, *, api_key, model: str, settings: CallSettings, retries: int
) -> tuple[str, str | None]:
    where = effective_base_url(api_key)
    server = _server_message(exc)
    tries = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
    if isinstance(exc, openai.AuthenticationError):
        return (
            f"The provider rejected key {api_key.hint} (401): {server} The key may be revoked, expired or "
            "mistyped: rotate it or paste the current value on the key page.",
            None,
        )
    if isinstance(exc, openai.PermissionDeniedError):
        return (
            f"Key {api_key.hint} is not allowed to do this (403): {server} A restricted or read-only key "
            "needs write access to the Responses API; ask an organization owner to change its permissions.",
            None,
        )
    if isinstance(exc, openai.RateLimitError):
        after = retry_after_of(exc)
        wait = (
            f" Retry after {math.ceil(after)} s."
            if after is not None
            else " Wait a minute and retry."
        )
        if getattr(exc, "code", None) == "insufficient_quota":
            return (
                f"The organization has run out of quota (429): {server} Check billing on platform.openai.com.",
                None,
            )
        code = getattr(exc, "code", None)
        if code in ("project_spend_limit_exceeded", "organization_spend_limit_exceeded"):
            # Not a rate limit: waiting a minute does not help, only a raised limit or the
            # next month (a budget pushed to OpenAI sets this limit: docs/sync.md).
            scope = "project" if code.startswith("project") else "organization"
            return (
                f"OpenAI's monthly spend limit of the {scope} is reached (429 {code}): {server} "
                f"This is a spend limit, not a rate limit: calls with the {scope}'s keys are "
                "refused until the month ends or an owner raises the limit (the budget's "
                "page, Push to OpenAI, or OpenAI's dashboard).",
                None,
            )
        return (
            f"The provider rate-limited this call (429){tries}: {server}{wait} "
            "If it keeps happening, lower the project's traffic or ask for a higher tier.",
            None,
        )
    if isinstance(exc, openai.BadRequestError):
        param = getattr(exc, "param", None)
        field_ = f" Parameter '{param}':" if param else ""
        return (
            f"The request was refused as invalid (400).{field_} {server} Change that field and try again.",
            param,
        )
    if isinstance(exc, openai.NotFoundError):
        return (
            f"Model {model!r} does not exist at {where} or key {api_key.hint} has no access to it (404): "
            f"{server} Choose another model, or ask an owner to enable it for the project.",
            "model",
        )
    if isinstance(exc, openai.APITimeoutError):
        return (
            f"No reply from {where} within the project's timeout of {settings.timeout:g} s{tries}. The "
            "provider may be slow or down: retry, shorten the prompt, or raise the project's request "
            "timeout.",
            None,
        )
    if isinstance(exc, openai.APIConnectionError):
        return (
            f"Could not reach {where}{tries} ({server or 'connection error'}). Check the key's base URL and "
            "the network; the call may have been cut off.",
            None,
        )
    if isinstance(exc, openai.InternalServerError):
        return (
            f"The provider failed with an internal error ({exc.status_code}){tries}: {server} "
            "This is on their side: try again later.",
            None,
        )
    if isinstance(exc, openai.APIStatusError):
        return f"The provider answered {exc.status_code}{tries}: {server}", getattr(
            exc, "param", None
        )
    return f"The call failed ({type(exc).__name__}): {redact(str(exc))}", None


def with_ids(message: str, server_request_id: str | None, client_request_id: str) -> str:
    rid = server_request_id or "none (no reply)"
    return f"{message} (request id {rid}; client request id {client_request_id})"


def failure_outcome(
    exc: Exception,
    *,
    api_key,
    params: GenerateParams,
    settings: CallSettings,
    cid: str,
    started: float,
    breaker: CircuitBreaker | None,
    retries: int | None = None,
) -> CallOutcome:
    """An SDK exception as the outcome the page shows; the breaker learns whether the
    upstream is down (a transient error) or answered (any other status)."""
    retries = retries_from_error(exc) if retries is None else retries
    message, param = explain_error(
        exc, api_key=api_key, model=params.model, settings=settings, retries=retries
    )
    # The request id is the upstream's header: scrubbed like its message before it is
    # shown, logged or stored on the usage record.
    rid = scrub(getattr(exc, "request_id", None), exception_secrets(exc)) or None
    if breaker is not None:
        if isinstance(exc, TRANSIENT_ERRORS):
            breaker.record_failure(type(exc).__name__)
        elif isinstance(exc, openai.APIStatusError):
            breaker.record_success()  # the upstream answered: it is not down
    return CallOutcome(
        ok=False,
        status="error",
        model=params.model,
        message=with_ids(message, rid, cid),
        error_type=type(exc).__name__,
        param=param,
        retry_after=retry_after_of(exc),
        server_request_id=rid,
        client_request_id=cid,
        retries=retries,
        latency_ms=int((time.monotonic() - started) * 1000),
    )
