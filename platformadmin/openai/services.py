"""The service layer over the OpenAI SDK: list models, generate (plain or streamed), classify.

Everything else in the console calls these functions, never the SDK. A call goes:
key usable? → model allowed (catalog ∩ project allow-list) → pre-call hooks (budget
hard limit) → the project's RPM/TPM limit → circuit breaker → decrypt the secret →
per-key client on the shared pool → ``responses.create`` → usage record (success,
error or a stream cut short) → breaker and rate-limit bookkeeping.

Every failure becomes a ``CallOutcome`` with a message a person can act on and the
request ids; nothing raises to the view. Outcomes are logged with both request ids,
never with the secret.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from keys.services import SecretUnavailable, api_key_mark_used, api_key_reveal_secret
from platformadmin.openai import hooks, ratelimit
from platformadmin.openai.breaker import BreakerOpen, CircuitBreaker, breaker_cache
from platformadmin.openai.client import (
    CallSettings,
    async_client_for_key,
    client_for_key,
    effective_base_url,
    new_client_request_id,
    refusal_of,
)
from platformadmin.redaction import exception_secrets, header_secrets, redact, scrub

log = logging.getLogger("platformadmin.openai")

SOURCE_PLAYGROUND = "playground"
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
TRANSIENT_ERRORS = (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError)
RATELIMIT_HEADERS = (
    "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
)


# --- Results ---------------------------------------------------------------------------


@dataclass
class ModelsListResult:
    """What "Test connection" shows: ids on success, else a human explanation."""

    ok: bool
    model_ids: list[str] = field(default_factory=list)
    request_id: str | None = None
    message: str = ""


@dataclass
class UsageCounts:
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_sdk(cls, usage) -> UsageCounts | None:
        if usage is None:
            return None
        inp = usage.input_tokens_details
        out = usage.output_tokens_details
        return cls(usage.input_tokens, getattr(inp, "cached_tokens", 0) or 0, usage.output_tokens,
                   getattr(out, "reasoning_tokens", 0) or 0, usage.total_tokens)

    def as_usage_dict(self) -> dict:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens,
        }


@dataclass
class GenerateParams:
    model: str
    input: str
    instructions: str = ""
    temperature: float | None = None
    max_output_tokens: int | None = None
    reasoning_effort: str | None = None


@dataclass
class CallOutcome:
    """The result panel: text, usage, cost, latency, both request ids, retries, or why not."""

    ok: bool
    status: str  # completed | incomplete | error | refused
    model: str
    text: str = ""
    message: str = ""
    error_type: str = ""
    param: str | None = None
    retry_after: float | None = None
    response_id: str | None = None
    server_request_id: str | None = None
    client_request_id: str = ""
    retries: int = 0
    latency_ms: int | None = None
    usage: UsageCounts | None = None
    usage_estimated: bool = False
    record: object | None = None  # usage.models.UsageRecord

    @property
    def cost(self) -> Decimal | None:
        return getattr(self.record, "cost", None)

    @property
    def request_ids(self) -> str:
        return f"request id {self.server_request_id or 'none (no reply)'}, client request id {self.client_request_id}"


class CallRefused(Exception):
    """A pre-call check said no; nothing was sent."""

    def __init__(self, message: str, error_type: str, retry_after: float | None = None):
        super().__init__(message)
        self.message, self.error_type, self.retry_after = message, error_type, retry_after


# --- Checks before a call ----------------------------------------------------------------


def models_for_project(project) -> list[tuple[str, bool]]:
    """(model id, supports reasoning) the project may call: active catalog ∩ allow-list.

    Memoized on the project instance for its current allow-list (the form and the
    service both ask within one request).
    """

    allowed = tuple(sorted(project.allowed_models or []))
    memo = getattr(project, "_playground_models", None)
    if memo is not None and memo[0] == allowed:
        return memo[1]
    result = [(model_id, bool(reasoning)) for model_id, reasoning in _catalog_rows(allowed)]
    project._playground_models = (allowed, result)
    return result


def _catalog_rows(allowed: tuple[str, ...]) -> list[tuple]:
    """CatalogModel.objects.filter(is_active=True).exclude(category__in=NOT_RESPONSES_MODELS)
    [.filter(model_id__in=allowed)].order_by("model_id").values_list("model_id", "supports_reasoning"),
    written out: the ORM spent about 0.3 ms building that query on every playground request.
    (category is not nullable, so NOT IN is exactly the ORM's exclude.)
    """
    from django.db import connections, router

    from usage.models import CatalogModel

    alias = router.db_for_read(CatalogModel)
    connection = connections[alias]
    qn = connection.ops.quote_name
    meta = CatalogModel._meta

    def col(name: str) -> str:
        return qn(meta.get_field(name).column)

    sql = (f"SELECT {col('model_id')}, {col('supports_reasoning')} FROM {qn(meta.db_table)} "
           f"WHERE {col('is_active')} = %s AND {col('category')} NOT IN ({', '.join(['%s'] * len(NOT_RESPONSES_MODELS))})")
    params: list = [True, *NOT_RESPONSES_MODELS]
    if allowed:
        sql += f" AND {col('model_id')} IN ({', '.join(['%s'] * len(allowed))})"
        params += list(allowed)
    sql += f" ORDER BY {col('model_id')} ASC"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _check_key(api_key, project) -> None:
    if api_key.project_id != project.pk:
        raise CallRefused(f"Key {api_key.hint} does not belong to project {project.name}.", "KeyNotInProject")
    if api_key.kind == "admin":
        raise CallRefused("Admin keys cannot call models; choose a project or service-account key.", "AdminKey")
    if not api_key.is_active:
        raise CallRefused(
            f"Key {api_key.hint} is {api_key.get_status_display().lower()} and cannot be used. "
            "Choose an active key, or add a new one on the project's keys page.", "KeyNotActive")


def _check_model(params: GenerateParams, project) -> None:
    catalog = dict(models_for_project(project))
    if params.model not in catalog:
        raise CallRefused(
            f"Model {params.model!r} is not allowed in project {project.name}. "
            f"Choose one of: {', '.join(catalog) or 'none (ask a project owner to allow a model)'}.",
            "ModelNotAllowed")
    if params.reasoning_effort and not catalog[params.model]:
        raise CallRefused(f"{params.model} is not a reasoning model: leave reasoning effort empty.",
                          "ReasoningNotSupported")
    if params.reasoning_effort and params.reasoning_effort not in REASONING_EFFORTS:
        raise CallRefused(f"Reasoning effort {params.reasoning_effort!r} is not one of "
                          f"{', '.join(REASONING_EFFORTS)}: choose one of them.", "ReasoningNotSupported")
    cap = project.max_output_tokens
    if cap and params.max_output_tokens and params.max_output_tokens > cap:
        raise CallRefused(f"Max output tokens {params.max_output_tokens:,} is above the project's cap of {cap:,}. "
                          f"Enter {cap:,} or less.", "OutputCapExceeded")


def _pre_call(*, api_key, project, params: GenerateParams, user) -> tuple[ratelimit.Reservation, CircuitBreaker | None]:
    """Run every check in order; raise CallRefused with a message for the page."""
    _check_key(api_key, project)
    _check_model(params, project)
    if params.max_output_tokens is None and project.max_output_tokens:
        params.max_output_tokens = project.max_output_tokens  # the cap applies to every call
    estimate = ratelimit.estimate_tokens(instructions=params.instructions, text=params.input,
                                         max_output_tokens=params.max_output_tokens)
    decision = hooks.run_pre_call_hooks(hooks.PreCallContext(project, api_key, params.model, estimate, user))
    if not decision.allowed:
        raise CallRefused(decision.message or "A policy of this project refused the call.", "BudgetExceeded")
    breaker = CircuitBreaker.for_key(api_key) if project.circuit_breaker_enabled else None
    try:
        # On Redis the breaker's state is read in the rate limit's round trip.
        reservation = ratelimit.reserve(project=project, model=params.model, estimated_tokens=estimate,
                                        read_also=breaker.state_keys if breaker is not None else ())
    except ratelimit.RateLimited as exc:
        raise CallRefused(exc.message, "ProjectRateLimited", exc.retry_after) from exc
    if breaker is not None:
        try:
            breaker.before_call(probe_seconds=project.request_timeout_seconds * (project.max_retries + 1) + 5,
                                values=reservation.read)
        except BreakerOpen as exc:
            reservation.settle(0)
            raise CallRefused(exc.message, "CircuitOpen") from exc
    return reservation, breaker


def _succeeded(breaker: CircuitBreaker | None, reservation: ratelimit.Reservation, tokens: int | None) -> None:
    """After a reply: close the circuit and settle the tokens (one round trip on Redis)."""
    shared = ratelimit.shared_pipeline(breaker_cache()) if breaker is not None else None
    if shared is not None:
        breaker.record_success(pipeline=shared)
        reservation.settle(tokens, pipeline=shared[0])
        shared[0].execute()
        return
    if breaker is not None:
        breaker.record_success()
    reservation.settle(tokens)


# --- Errors ------------------------------------------------------------------------------


def _retry_after(exc) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        try:
            return float(headers[name]) / divisor
        except (KeyError, ValueError, TypeError):
            continue
    return None


def _retries_from_error(exc) -> int:
    """The SDK does not expose retries on errors; the last attempt's header carries them."""
    request = getattr(exc, "request", None)
    try:
        return int(request.headers.get("x-stainless-retry-count") or 0) if request is not None else 0
    except (ValueError, AttributeError):
        return 0


def _server_message(exc) -> str:
    """The upstream's own words, without the credential this call sent (an upstream may
    echo it, in any encoding) and without anything shaped like a secret."""
    body = getattr(exc, "body", None)
    text = body.get("message") if isinstance(body, dict) else None
    return scrub(str(text or getattr(exc, "message", "") or exc), exception_secrets(exc)).strip()


def explain_error(exc: Exception, *, api_key, model: str, settings: CallSettings, retries: int) -> tuple[str, str | None]:
    """(a message a person can act on, the offending parameter) for an SDK exception.

    Both are scrubbed of the credential the call sent, by value and by shape, before
    anything shows, logs or stores them: the parameter name comes from the upstream too.
    """
    message, param = _explain_error(exc, api_key=api_key, model=model, settings=settings, retries=retries)
    secrets = exception_secrets(exc)
    return scrub(message, secrets), (scrub(param, secrets) or None) if param is not None else None


def _explain_error(exc: Exception, *, api_key, model: str, settings: CallSettings, retries: int) -> tuple[str, str | None]:
    where = effective_base_url(api_key)
    server = _server_message(exc)
    tries = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
    if isinstance(exc, openai.AuthenticationError):
        return (f"The provider rejected key {api_key.hint} (401): {server} The key may be revoked, expired or "
                "mistyped: rotate it or paste the current value on the key page.", None)
    if isinstance(exc, openai.PermissionDeniedError):
        return (f"Key {api_key.hint} is not allowed to do this (403): {server} A restricted or read-only key "
                "needs write access to the Responses API; ask an organization owner to change its permissions.",
                None)
    if isinstance(exc, openai.RateLimitError):
        after = _retry_after(exc)
        wait = f" Retry after {math.ceil(after)} s." if after is not None else " Wait a minute and retry."
        if getattr(exc, "code", None) == "insufficient_quota":
            return (f"The organization has run out of quota (429): {server} Check billing on platform.openai.com.",
                    None)
        return (f"The provider rate-limited this call (429){tries}: {server}{wait} "
                "If it keeps happening, lower the project's traffic or ask for a higher tier.", None)
    if isinstance(exc, openai.BadRequestError):
        param = getattr(exc, "param", None)
        field_ = f" Parameter '{param}':" if param else ""
        return (f"The request was refused as invalid (400).{field_} {server} Change that field and try again.",
                param)
    if isinstance(exc, openai.NotFoundError):
        return (f"Model {model!r} does not exist at {where} or key {api_key.hint} has no access to it (404): "
                f"{server} Choose another model, or ask an owner to enable it for the project.", "model")
    if isinstance(exc, openai.APITimeoutError):
        return (f"No reply from {where} within the project's timeout of {settings.timeout:g} s{tries}. The "
                "provider may be slow or down: retry, shorten the prompt, or raise the project's request "
                "timeout.", None)
    if isinstance(exc, openai.APIConnectionError):
        return (f"Could not reach {where}{tries} ({server or 'connection error'}). Check the key's base URL and "
                "the network; the call may have been cut off.", None)
    if isinstance(exc, openai.InternalServerError):
        return (f"The provider failed with an internal error ({exc.status_code}){tries}: {server} "
                "This is on their side: try again later.", None)
    if isinstance(exc, openai.APIStatusError):
        return f"The provider answered {exc.status_code}{tries}: {server}", getattr(exc, "param", None)
    return f"The call failed ({type(exc).__name__}): {redact(str(exc))}", None


def _with_ids(message: str, server_request_id: str | None, client_request_id: str) -> str:
    rid = server_request_id or "none (no reply)"
    return f"{message} (request id {rid}; client request id {client_request_id})"


# --- Recording -----------------------------------------------------------------------------


def _ratelimit_headers(headers) -> dict[str, str]:
    if not headers:
        return {}
    return {h: headers[h] for h in RATELIMIT_HEADERS if h in headers}


def _record(outcome: CallOutcome, *, project, api_key, response=None, headers=None, source: str) -> None:
    """Write the usage record for this outcome (never raises: a failed write is logged)."""
    from usage.services import usage_record_create

    try:
        # usage_record_create is one transaction by itself (the record and its rollup).
        record, _ = usage_record_create(
            project=project, api_key=api_key, source=source, response=response,
            model=outcome.model, response_id=outcome.response_id,
            server_request_id=redact(outcome.server_request_id or ""),
            client_request_id=outcome.client_request_id, latency_ms=outcome.latency_ms,
            status=outcome.status if outcome.status != "refused" else "error",
            error_type=outcome.error_type, ratelimit_headers=_ratelimit_headers(headers),
            retries=outcome.retries,
            usage=(outcome.usage.as_usage_dict() if outcome.usage and response is None else None),
        )
        outcome.record = record
        transaction.on_commit(lambda: hooks.run_post_call_hooks(record))
    except Exception:  # the reply must still reach the user; the failure is logged loudly
        log.exception("usage record not written for client request %s", outcome.client_request_id)


def _log(outcome: CallOutcome, api_key) -> None:
    log.info("openai call key=%s model=%s status=%s error=%s request_id=%s client_request_id=%s "
             "retries=%s latency_ms=%s", api_key.hint, outcome.model, outcome.status, outcome.error_type or "-",
             redact(outcome.server_request_id or "-"), outcome.client_request_id, outcome.retries, outcome.latency_ms)


def _refused(exc: CallRefused, *, model: str, client_request_id: str) -> CallOutcome:
    return CallOutcome(ok=False, status="refused", model=model, message=_with_ids(exc.message, None, client_request_id),
                       error_type=exc.error_type, retry_after=exc.retry_after, client_request_id=client_request_id)


def _request_kwargs(params: GenerateParams, client_request_id: str) -> dict:
    kwargs: dict = {"model": params.model, "input": params.input, "store": False,
                    "extra_headers": {"X-Client-Request-Id": client_request_id}}
    if params.instructions:
        kwargs["instructions"] = params.instructions
    if params.temperature is not None:
        kwargs["temperature"] = params.temperature
    if params.max_output_tokens:
        kwargs["max_output_tokens"] = params.max_output_tokens
    if params.reasoning_effort:
        kwargs["reasoning"] = {"effort": params.reasoning_effort}
    return kwargs


def _failure(exc: Exception, *, api_key, params: GenerateParams, settings: CallSettings, cid: str,
             started: float, breaker: CircuitBreaker | None, retries: int | None = None) -> CallOutcome:
    retries = _retries_from_error(exc) if retries is None else retries
    message, param = explain_error(exc, api_key=api_key, model=params.model, settings=settings, retries=retries)
    # The request id is the upstream's header: scrubbed like its message before it is
    # shown, logged or stored on the usage record.
    rid = scrub(getattr(exc, "request_id", None), exception_secrets(exc)) or None
    if breaker is not None:
        if isinstance(exc, TRANSIENT_ERRORS):
            breaker.record_failure(type(exc).__name__)
        elif isinstance(exc, openai.APIStatusError):
            breaker.record_success()  # the upstream answered: it is not down
    return CallOutcome(ok=False, status="error", model=params.model, message=_with_ids(message, rid, cid),
                       error_type=type(exc).__name__, param=param, retry_after=_retry_after(exc),
                       server_request_id=rid, client_request_id=cid, retries=retries,
                       latency_ms=int((time.monotonic() - started) * 1000))


# --- Services ------------------------------------------------------------------------------


@dataclass
class _ModelsListCall:
    cid: str
    settings: CallSettings
    breaker: CircuitBreaker
    started: float


def _models_list_begin(api_key, *, secret_holder: list) -> _ModelsListCall | ModelsListResult:
    """Checks and decryption before ``GET /models``; the plaintext goes into
    ``secret_holder`` (a list the caller empties as soon as the client holds it)."""
    cid = new_client_request_id()
    if not api_key.is_active:
        return ModelsListResult(False, message=f"Key {api_key.hint} is {api_key.get_status_display().lower()}; "
                                               "only active keys can be tested.")
    settings = CallSettings.for_project(api_key.project)
    settings = CallSettings(min(settings.timeout, 20.0), settings.connect_timeout, min(settings.max_retries, 1))
    try:
        secret_holder.append(api_key_reveal_secret(api_key))  # plaintext: only for the client
    except SecretUnavailable as exc:
        return ModelsListResult(False, message=f"{exc} No request was sent.")
    return _ModelsListCall(cid, settings, CircuitBreaker.for_key(api_key), time.monotonic())


class _UnexpectedModelsReply(ValueError):
    """The upstream answered 2xx, but not with a model list (what is wrong with it)."""


def _json_kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _models_list_ids(raw, secrets: tuple[str, ...]) -> list[str]:
    """The model ids of a ``GET /models`` reply, checked here rather than by the SDK's
    parser, which on an odd body (``{"data": 5}``, ``[]``, HTML) raises TypeError or
    AttributeError, or returns something that fails later. The reason never quotes the
    body, and each id is scrubbed of the credential sent: an upstream may echo the key."""
    try:
        body = json.loads(raw.content)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        kind = (raw.headers.get("content-type") or "no content type").split(";")[0].strip()
        raise _UnexpectedModelsReply(f"the body is not JSON but {redact(kind)[:60]!r}") from exc
    if not isinstance(body, dict):
        raise _UnexpectedModelsReply(f"the JSON is {_json_kind(body)}, not an object with a 'data' list")
    data = body.get("data")
    if not isinstance(data, list):
        found = "missing" if "data" not in body else _json_kind(data)
        raise _UnexpectedModelsReply(f"'data' is {found}, not a list of models")
    ids = []
    for position, item in enumerate(data):
        model_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(model_id, str) or not model_id:
            raise _UnexpectedModelsReply(f"entry {position} of 'data' has no string 'id'")
        ids.append(scrub(model_id, secrets))
    return sorted(ids)


def _models_list_end(api_key, call: _ModelsListCall, *, raw=None, exc=None) -> ModelsListResult:
    refused = refusal_of(exc) if exc is not None else None
    if refused is not None:
        # Nothing left the server: not an upstream failure, so the breaker is not told.
        return ModelsListResult(False, message=(
            f"Could not reach {effective_base_url(api_key)}: the request was not sent, because {refused} "
            f"Otherwise change the key's base URL or endpoint to the provider's public address "
            f"(client request id {call.cid})."))
    if exc is not None:
        failure = _failure(exc, api_key=api_key, params=GenerateParams(model="(models list)", input=""),
                           settings=call.settings, cid=call.cid, started=call.started, breaker=call.breaker)
        return ModelsListResult(False, request_id=failure.server_request_id, message=failure.message)
    call.breaker.record_success()  # the upstream answered: it is up, whatever it said
    secrets = header_secrets(raw.http_request.headers)  # what this call sent, scrubbed from the reply
    request_id = scrub(raw.request_id, secrets) or None
    try:
        ids = _models_list_ids(raw, secrets)
    except _UnexpectedModelsReply as odd:
        return ModelsListResult(False, request_id=request_id, message=(
            f"{effective_base_url(api_key)} answered {raw.status_code} to GET /models, but not with a model "
            f"list: {odd}. Check the key's base URL: it must be the API root that serves /models, e.g. "
            f"https://llm.example.com/v1 (request id {request_id or 'none'}, client request id {call.cid})."))
    api_key_mark_used(api_key=api_key)
    return ModelsListResult(True, ids, request_id,
                            f"Connection works: {len(ids)} model(s) available to key {api_key.hint} "
                            f"(request id {request_id}).")


def models_list(*, api_key) -> ModelsListResult:
    """``GET /models`` with the key: the "Test connection" button. Never raises."""
    holder: list[str] = []
    call = _models_list_begin(api_key, secret_holder=holder)
    if isinstance(call, ModelsListResult):
        return call
    try:
        client = client_for_key(api_key, secret=holder.pop(), settings=call.settings)
        raw = client.models.with_raw_response.list(extra_headers={"X-Client-Request-Id": call.cid})
    except openai.APIError as exc:
        return _models_list_end(api_key, call, exc=exc)
    return _models_list_end(api_key, call, raw=raw)


async def amodels_list(*, api_key) -> ModelsListResult:
    """``models_list`` for async code (an async view, a task on an event loop): the call
    goes through the process's AsyncOpenAI client; database work runs in a thread."""
    from asgiref.sync import sync_to_async

    holder: list[str] = []
    call = await sync_to_async(_models_list_begin)(api_key, secret_holder=holder)
    if isinstance(call, ModelsListResult):
        return call
    try:
        client = async_client_for_key(api_key, secret=holder.pop(), settings=call.settings)
        raw = await client.models.with_raw_response.list(extra_headers={"X-Client-Request-Id": call.cid})
    except openai.APIError as exc:
        return await sync_to_async(_models_list_end)(api_key, call, exc=exc)
    return await sync_to_async(_models_list_end)(api_key, call, raw=raw)


@dataclass
class _Call:
    """A call cleared to go: what the checks reserved, and the per-key client."""

    reservation: Any
    breaker: Any
    settings: CallSettings
    client: Any
    started: float


@sensitive_variables("secret")
def _begin_call(*, api_key, project, params: GenerateParams, user, cid: str) -> _Call | CallOutcome:
    """The checks before a call, then the per-key client. A refusal comes back as a
    logged ``CallOutcome`` (nothing was sent, so nothing is recorded)."""
    try:
        reservation, breaker = _pre_call(api_key=api_key, project=project, params=params, user=user)
    except CallRefused as exc:
        outcome = _refused(exc, model=params.model, client_request_id=cid)
        _log(outcome, api_key)
        return outcome
    settings = CallSettings.for_project(project)
    started = time.monotonic()
    try:
        secret = api_key_reveal_secret(api_key)  # decrypted at call time, never logged
    except SecretUnavailable as exc:
        reservation.settle(0)
        if breaker is not None:
            breaker.release_probe()
        outcome = _refused(CallRefused(f"{exc} No request was sent.", "SecretUnavailable"),
                           model=params.model, client_request_id=cid)
        _log(outcome, api_key)
        return outcome
    client = client_for_key(api_key, secret=secret, settings=settings, project=project)
    return _Call(reservation, breaker, settings, client, started)


def generate(*, api_key, project, params: GenerateParams, user=None, source: str = SOURCE_PLAYGROUND) -> CallOutcome:
    """One non-streamed ``responses.create``; every outcome recorded and explained."""
    cid = new_client_request_id()
    call = _begin_call(api_key=api_key, project=project, params=params, user=user, cid=cid)
    if isinstance(call, CallOutcome):
        return call
    reservation, breaker, settings, started = call.reservation, call.breaker, call.settings, call.started
    try:
        raw = call.client.responses.with_raw_response.create(**_request_kwargs(params, cid))
        response = raw.parse()
    except openai.APIError as exc:
        outcome = _failure(exc, api_key=api_key, params=params, settings=settings, cid=cid,
                           started=started, breaker=breaker)
        reservation.settle(0)
        _record(outcome, project=project, api_key=api_key, headers=getattr(getattr(exc, "response", None),
                "headers", None), source=source)
        _log(outcome, api_key)
        return outcome
    usage = UsageCounts.from_sdk(response.usage)
    _succeeded(breaker, reservation, usage.total_tokens if usage else None)
    status = response.status or "completed"
    outcome = CallOutcome(
        ok=True, status=status, model=params.model, text=response.output_text, response_id=response.id,
        server_request_id=raw.request_id, client_request_id=cid, retries=raw.retries_taken,
        latency_ms=int((time.monotonic() - started) * 1000), usage=usage,
        message=_incomplete_message(response),
    )
    _record(outcome, project=project, api_key=api_key, response=response, headers=raw.headers, source=source)
    _log(outcome, api_key)
    return outcome


def _incomplete_message(response) -> str:
    details = getattr(response, "incomplete_details", None)
    if getattr(response, "status", None) == "incomplete" and details is not None:
        if details.reason == "max_output_tokens":
            return "The reply stopped at the max output tokens limit; raise it for a longer answer."
        return f"The reply is incomplete ({details.reason})."
    return ""


@dataclass
class StreamEvent:
    """What the streaming view sends the browser: ``start``, ``delta``, ``waiting`` or ``done``."""

    kind: str
    text: str = ""
    outcome: CallOutcome | None = None
    client_request_id: str = ""
    server_request_id: str | None = None


class _Upstream:
    """The SDK's blocking stream read on a thread of its own, handed over through a queue.

    ``responses.create`` blocks until the response headers arrive (a slow or busy model:
    seconds, up to the project's timeout) and a reasoning model may think a long time
    before its first delta. Read here, the generator is never stuck inside the SDK: it
    wakes every ``heartbeat`` seconds and can notice a Stop at any moment. This thread
    never touches the database; ``cancel`` makes it close the HTTP response (also one
    that arrives after the Stop) and end.
    """

    def __init__(self, create: Callable[[], Any]):
        self.items: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        threading.Thread(target=self._run, args=(create,), name="openai-stream", daemon=True).start()

    def _run(self, create: Callable[[], Any]) -> None:
        stream = None
        try:
            try:
                raw = create()
                stream = raw.parse()
            except openai.APIError as exc:
                self.items.put(("create_error", exc))
                return
            self.items.put(("opened", raw))
            try:
                for event in stream:
                    if self.cancel.is_set():
                        return
                    self.items.put(("event", event))
            except openai.APIError as exc:
                self.items.put(("stream_error", exc))
                return
            self.items.put(("end", None))
        except BaseException as exc:  # handed to the generator and re-raised there, never lost
            self.items.put(("crash", exc))
        finally:
            if stream is not None:
                stream.close()  # also a response that arrived after a Stop: frees the connection


def generate_stream(*, api_key, project, params: GenerateParams, user=None, source: str = SOURCE_PLAYGROUND,
                    client_request_id: str | None = None, heartbeat: float | None = None,
                    stop_requested: Callable[[], bool] | None = None) -> Iterator[StreamEvent]:
    """A streamed ``responses.create`` as a generator of StreamEvent.

    The last event is ``done`` with the outcome (recorded). A Stop, at any moment once the
    checks passed (before the response is created, before the first delta, mid-stream),
    writes exactly one ``incomplete`` record (``StreamStopped``) with what is known: the
    client request id always, the server request id and response id if they arrived, the
    text received, the output tokens counted from the deltas (one token each) and the
    prompt estimated at four characters per token (flagged ``usage_estimated``). A Stop is
    either the consumer closing the generator (the browser went away: recorded, nothing
    more is yielded) or ``stop_requested()`` turning true (the Stop button: recorded, then
    a ``done`` event with the outcome). With ``heartbeat`` (seconds) a ``waiting`` event
    comes at that interval while nothing arrives, so a server notices a client that left
    at its next write, not when the model finally answers. ``client_request_id`` lets the
    caller choose the id (a UUID it already showed); a new one otherwise.
    """
    cid = client_request_id or new_client_request_id()
    call = _begin_call(api_key=api_key, project=project, params=params, user=user, cid=cid)
    if isinstance(call, CallOutcome):
        yield StreamEvent("done", outcome=call, client_request_id=cid)
        return
    reservation, breaker, settings, started = call.reservation, call.breaker, call.settings, call.started
    upstream = _Upstream(lambda: call.client.responses.with_raw_response.create(
        stream=True, **_request_kwargs(params, cid)))
    raw = None
    rid: str | None = None
    parts: list[str] = []
    response_id: str | None = None
    final = None
    finished = False

    def stopped() -> CallOutcome:
        """Record the stop with what is known (see above); the upstream thread lets go."""
        upstream.cancel.set()
        outcome = CallOutcome(ok=False, status="incomplete", model=params.model, error_type="StreamStopped",
                              server_request_id=rid, client_request_id=cid,
                              retries=raw.retries_taken if raw is not None else 0,
                              latency_ms=int((time.monotonic() - started) * 1000))
        before = "before the model answered" if raw is None else (
            "before the first text arrived" if not parts else f"after {len(parts)} text part(s)")
        outcome.message = _with_ids(f"Stopped {before}: the call is recorded as incomplete"
                                    f"{' with the text so far' if parts else ''}.", rid, cid)
        _fill_partial(outcome, parts, params, response_id)
        reservation.settle(outcome.usage.total_tokens)
        if raw is None and breaker is not None:
            # No answer yet, so nothing learned about the upstream: a half-open probe this
            # call held goes back instead of blocking the key until it times out.
            breaker.release_probe()
        _record(outcome, project=project, api_key=api_key, headers=raw.headers if raw is not None else None,
                source=source)
        _log(outcome, api_key)
        return outcome

    checked = time.monotonic()
    try:
        while True:
            if stop_requested is not None and time.monotonic() - checked >= (heartbeat or 0.25):
                checked = time.monotonic()
                if stop_requested():
                    finished = True
                    yield StreamEvent("done", outcome=stopped(), client_request_id=cid, server_request_id=rid)
                    return
            try:
                kind, value = upstream.items.get(timeout=heartbeat)
            except queue.Empty:
                yield StreamEvent("waiting", client_request_id=cid, server_request_id=rid)
                continue
            if kind == "opened":
                raw, rid = value, value.request_id
                yield StreamEvent("start", client_request_id=cid, server_request_id=rid)
            elif kind == "event":
                etype = getattr(value, "type", "")
                if etype == "response.created":
                    response_id = value.response.id
                elif etype == "response.output_text.delta":
                    parts.append(value.delta)
                    yield StreamEvent("delta", text=value.delta)
                elif etype in ("response.completed", "response.incomplete", "response.failed"):
                    final = value.response
                elif etype == "error":
                    upstream.cancel.set()
                    finished = True
                    exc = openai.APIError(getattr(value, "message", "stream error"), raw.http_request, body=None)
                    yield _stream_broken(exc, raw=raw, parts=parts, response_id=response_id, api_key=api_key,
                                         project=project, params=params, settings=settings, cid=cid,
                                         started=started, breaker=breaker, reservation=reservation, source=source)
                    return
            elif kind == "create_error":
                finished = True
                outcome = _failure(value, api_key=api_key, params=params, settings=settings, cid=cid,
                                   started=started, breaker=breaker)
                reservation.settle(0)
                _record(outcome, project=project, api_key=api_key,
                        headers=getattr(getattr(value, "response", None), "headers", None), source=source)
                _log(outcome, api_key)
                yield StreamEvent("done", outcome=outcome, client_request_id=cid)
                return
            elif kind == "stream_error":
                finished = True
                yield _stream_broken(value, raw=raw, parts=parts, response_id=response_id, api_key=api_key,
                                     project=project, params=params, settings=settings, cid=cid,
                                     started=started, breaker=breaker, reservation=reservation, source=source)
                return
            elif kind == "crash":  # a failure outside the SDK's errors: goes up, the call recorded as stopped
                raise value
            else:  # "end"
                break
        finished = True
        latency = int((time.monotonic() - started) * 1000)
        if final is None:  # the stream ended without a terminal event: cut short upstream
            outcome = CallOutcome(ok=False, status="incomplete", model=params.model, error_type="StreamEnded",
                                  server_request_id=rid, client_request_id=cid, retries=raw.retries_taken,
                                  latency_ms=latency)
            outcome.message = _with_ids("The stream ended before the final event; the text so far is kept "
                                        "and recorded as incomplete.", rid, cid)
            _fill_partial(outcome, parts, params, response_id)
            # A cut stream is a transient upstream failure: it counts toward opening the
            # circuit (docs/playground.md), it does not prove the upstream healthy.
            if breaker is not None:
                breaker.record_failure("StreamEnded")
            reservation.settle(outcome.usage.total_tokens)
            _record(outcome, project=project, api_key=api_key, headers=raw.headers, source=source)
        else:
            usage = UsageCounts.from_sdk(final.usage)
            _succeeded(breaker, reservation, usage.total_tokens if usage else None)
            outcome = CallOutcome(
                ok=final.status in ("completed", "incomplete"), status=final.status or "completed",
                model=params.model, text="".join(parts) or final.output_text, response_id=final.id,
                server_request_id=rid, client_request_id=cid, retries=raw.retries_taken, latency_ms=latency,
                usage=usage, message=_incomplete_message(final),
            )
            _record(outcome, project=project, api_key=api_key, response=final, headers=raw.headers, source=source)
        _log(outcome, api_key)
        yield StreamEvent("done", outcome=outcome, client_request_id=cid, server_request_id=rid)
    finally:
        upstream.cancel.set()
        if not finished:  # the consumer stopped reading: the browser left, at any moment
            stopped()


def _stream_broken(exc: openai.APIError, *, raw, parts: list[str], response_id: str | None, api_key, project,
                   params: GenerateParams, settings: CallSettings, cid: str, started: float, breaker,
                   reservation, source: str) -> StreamEvent:
    """A stream that broke after it began: recorded as incomplete with what arrived."""
    outcome = _failure(exc, api_key=api_key, params=params, settings=settings, cid=cid,
                       started=started, breaker=breaker, retries=raw.retries_taken)
    rid = raw.request_id
    outcome.server_request_id = outcome.server_request_id or rid
    outcome.message = _with_ids(
        explain_error(exc, api_key=api_key, model=params.model, settings=settings,
                      retries=raw.retries_taken)[0] + f" The stream was cut after {len(parts)} text "
        "part(s); what arrived is kept and recorded as incomplete.", outcome.server_request_id, cid)
    _fill_partial(outcome, parts, params, response_id)
    reservation.settle(outcome.usage.total_tokens)
    _record(outcome, project=project, api_key=api_key, headers=raw.headers, source=source)
    _log(outcome, api_key)
    return StreamEvent("done", outcome=outcome, client_request_id=cid, server_request_id=rid)


def _fill_partial(outcome: CallOutcome, parts: list[str], params: GenerateParams, response_id: str | None) -> None:
    """What is known of a stream cut short (see generate_stream)."""
    outcome.status = "incomplete"
    outcome.text = "".join(parts)
    outcome.response_id = response_id
    prompt = max(1, math.ceil(len((params.instructions or "") + params.input) / 4))
    outcome.usage = UsageCounts(input_tokens=prompt, output_tokens=len(parts), total_tokens=prompt + len(parts))
    outcome.usage_estimated = True


@dataclass
class ClassifyResult:
    label: str | None
    outcome: CallOutcome


def classify(*, api_key, project, text: str, labels: list[str], model: str, user=None,
             source: str = SOURCE_PLAYGROUND) -> ClassifyResult:
    """Ask the model to pick one of ``labels`` for ``text``; ``label`` None if it did not."""
    if not labels:
        raise ValueError("classify needs at least one label")
    params = GenerateParams(
        model=model, input=text, temperature=0 if not _is_reasoning(model) else None,
        instructions=("Classify the user's text. Answer with exactly one of these labels and nothing else: "
                      + ", ".join(labels)),
    )
    outcome = generate(api_key=api_key, project=project, params=params, user=user, source=source)
    answer = outcome.text.strip().strip(".").lower() if outcome.ok else ""
    label = next((lab for lab in labels if lab.lower() == answer), None)
    if label is None and answer:
        label = next((lab for lab in labels if lab.lower() in answer.split()), None)
    return ClassifyResult(label, outcome)


def _is_reasoning(model: str) -> bool:
    from usage.models import CatalogModel

    return CatalogModel.objects.filter(model_id=model, supports_reasoning=True).exists()
