"""``GET /models`` with a key: the "Test connection" button of the key page.

The reply is checked here (not by the SDK's parser) and every way it can go wrong becomes a
``ModelsListResult`` naming the fix; nothing raises to the view.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import openai

from keys.services import SecretUnavailable, api_key_mark_used, api_key_secret_for_call
from platformadmin.openai.breaker import CircuitBreaker
from platformadmin.openai.client import (
    CallSettings,
    client_for_key,
    effective_base_url,
    new_client_request_id,
    refusal_of,
)
from platformadmin.openai.errors import failure_outcome
from platformadmin.openai.results import GenerateParams, ModelsListResult
from platformadmin.redaction import header_secrets, redact, scrub


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
        return ModelsListResult(
            False,
            message=f"Key {api_key.hint} is {api_key.get_status_display().lower()}; "
            "only active keys can be tested.",
        )
    settings = CallSettings.for_project(api_key.project)
    settings = CallSettings(
        min(settings.timeout, 20.0), settings.connect_timeout, min(settings.max_retries, 1)
    )
    try:
        secret_holder.append(api_key_secret_for_call(api_key))  # plaintext: only for the client
    except SecretUnavailable as exc:
        return ModelsListResult(False, message=f"{exc} No request was sent.")
    return _ModelsListCall(cid, settings, CircuitBreaker.for_key(api_key), time.monotonic())


class _UnexpectedModelsReply(ValueError):
    """The upstream answered 2xx, but not with a model list (what is wrong with it)."""


def _json_kind(value) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), "a number")


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
        raise _UnexpectedModelsReply(
            f"the JSON is {_json_kind(body)}, not an object with a 'data' list"
        )
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
        return ModelsListResult(
            False,
            message=(
                f"Could not reach {effective_base_url(api_key)}: the request was not sent, because {refused} "
                f"Otherwise change the key's base URL or endpoint to the provider's public address "
                f"(client request id {call.cid})."
            ),
        )
    if exc is not None:
        failure = failure_outcome(
            exc,
            api_key=api_key,
            params=GenerateParams(model="(models list)", input=""),
            settings=call.settings,
            cid=call.cid,
            started=call.started,
            breaker=call.breaker,
        )
        return ModelsListResult(
            False, request_id=failure.server_request_id, message=failure.message
        )
    call.breaker.record_success()  # the upstream answered: it is up, whatever it said
    secrets = header_secrets(
        raw.http_request.headers
    )  # what this call sent, scrubbed from the reply
    request_id = scrub(raw.request_id, secrets) or None
    try:
        ids = _models_list_ids(raw, secrets)
    except _UnexpectedModelsReply as odd:
        return ModelsListResult(
            False,
            request_id=request_id,
            message=(
                f"{effective_base_url(api_key)} answered {raw.status_code} to GET /models, but not with a model "
                f"list: {odd}. Check the key's base URL: it must be the API root that serves /models, e.g. "
                f"https://llm.example.com/v1 (request id {request_id or 'none'}, client request id {call.cid})."
            ),
        )
    api_key_mark_used(api_key=api_key)
    return ModelsListResult(
        True,
        ids,
        request_id,
        f"Connection works: {len(ids)} model(s) available to key {api_key.hint} "
        f"(request id {request_id}).",
    )


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
