"""The ingestion API: ``POST /api/v1/usage`` and its OpenAPI description.

Status codes (each one distinct, see usage/openapi.json):
- 200 stored (after the commit): ``{"received", "created", "duplicates"}``;
- 400 bad input, naming the record index and the field (nothing is stored);
- 401 no token or an unknown one; 403 a revoked token or a project that is not the
  token's; 413 a body above ``USAGE_INGEST_MAX_BYTES``; 415 a body that is not
  ``application/json``; 429 above ``USAGE_INGEST_RATE_PER_MINUTE`` requests per token
  per minute, or above ``USAGE_INGEST_FAILED_AUTH_PER_MINUTE`` unknown tokens per client
  address per minute, with Retry-After.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from pathlib import Path

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from orgs.audit import client_ip
from platformadmin import cachecounter

from .middleware import api_view
from .parsing import FieldError
from .services import (
    build_record,
    ingestion_token_lookup,
    ingestion_token_touch,
    retention_cutoff,
    usage_records_ingest,
)

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"
MAX_ERRORS_REPORTED = 50
_PRINTABLE_TOKEN = re.compile(r"[\x21-\x7e]+")
FUTURE_TOLERANCE = timedelta(hours=24)


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def _error(
    status: int, message: str, *, code: str, errors: list | None = None, headers: dict | None = None
) -> JsonResponse:
    body: dict = {"error": {"code": code, "message": message}}
    if errors is not None:
        body["error"]["errors"] = errors
    response = JsonResponse(body, status=status)
    for k, v in (headers or {}).items():
        response[k] = v
    return response


def _bearer(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _window(kind: str, subject: str) -> cachecounter.Window:
    """This minute's window of the ingestion throttle ``kind`` for ``subject``."""
    return cachecounter.window(f"usage:ingest:{kind}:{subject}", seconds=60)


def _rate_limited(token_key: str) -> int | None:
    """Fixed one-minute window per token, counted in the shared cache.

    Returns the seconds to wait when over the limit, else None. The cache is the one
    every web process shares (Redis in production, a file cache by default).
    """
    limit = _setting("USAGE_INGEST_RATE_PER_MINUTE", 1200)
    if limit <= 0:
        return None
    window = _window("rate", token_key)
    if cachecounter.incr(window.key, timeout=120) > limit:
        return window.retry_after
    return None


def _auth_blocked(address: str) -> int | None:
    """Seconds to wait when this client address already failed too many token lookups
    this minute (``USAGE_INGEST_FAILED_AUTH_PER_MINUTE``), else None.

    Read before the lookup, so a guesser over the limit learns nothing more, not even
    whether a guess was right. Counted per address, not per token: a guess names no token.
    """
    limit = _setting("USAGE_INGEST_FAILED_AUTH_PER_MINUTE", 30)
    if limit <= 0:
        return None
    window = _window("authfail", address)
    if cachecounter.read(window.key) >= limit:
        return window.retry_after
    return None


def _auth_failed(address: str) -> None:
    """Count one failed token lookup for this client address."""
    if _setting("USAGE_INGEST_FAILED_AUTH_PER_MINUTE", 30) > 0:
        cachecounter.incr(_window("authfail", address).key, timeout=120)


def _is_json(content_type: str) -> bool:
    """``application/json``, parameters (``; charset=utf-8``) allowed."""
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json"


def _split_records(payload) -> tuple[list, object]:
    """(records, project) from a single record, a list, or {"records": [...]}."""
    if isinstance(payload, list):
        return payload, None
    if isinstance(payload, dict) and "records" in payload:
        records = payload["records"]
        if not isinstance(records, list):
            raise FieldError("records", "must be a list of records.")
        return records, payload.get("project")
    if isinstance(payload, dict):
        return [payload], payload.get("project")
    raise FieldError("body", 'must be a JSON object (one record or {"records": [...]}) or a list.')


def _draft(project, raw, *, now, cutoff):
    """One record of the body -> a RecordDraft (raises FieldError with a relative field).

    Two shapes, told apart by one key: with ``response`` (an object: ``model_dump()`` of
    a Response, ChatCompletion or embeddings response, or a stream's terminal event, whose
    ``response`` is the Response) the top-level ``model``/``status``/``service_tier``/
    ``usage`` override the response's own; without it the record is the response itself,
    or a bare report of a failed call (no ``usage``/``object``/``id``: status "error").
    """
    if type(raw) is not dict:
        raise FieldError("", 'must be a JSON object (a response, or {"response": {...}, ...}).')
    envelope = "response" in raw
    if envelope and type(raw["response"]) is not dict:
        raise FieldError(
            "response", "must be the response as a JSON object (response.model_dump())."
        )
    kwargs = {
        "response_id": raw.get("response_id"),
        "server_request_id": raw.get("server_request_id"),
        "client_request_id": raw.get("client_request_id"),
        "latency_ms": raw.get("latency_ms"),
        "error_type": raw.get("error_type"),
        "ratelimit_headers": raw.get("ratelimit_headers"),
        "retries": 0 if raw.get("retries") is None else raw["retries"],  # null = not given
        "occurred_at": raw.get("occurred_at"),
    }
    if envelope:
        status = raw.get("status")
        kwargs.update(
            model=raw.get("model"),
            status="completed" if status is None else status,
            service_tier=raw.get("service_tier"),
            usage=raw.get("usage"),
        )
        response = raw["response"]
    else:
        bare = not any(k in raw for k in ("usage", "object", "id"))
        status = raw.get("status")
        if bare and status is None:
            kwargs["status"] = "error"  # a failed call's report: no response came back
        response = raw
    try:
        draft = build_record(project=project, source="ingest", response=response, now=now, **kwargs)
    except FieldError as exc:
        if exc.field.startswith("response.") and not envelope:
            raise FieldError(exc.field.removeprefix("response."), exc.message) from exc
        raise
    if not draft.response_id:
        raise FieldError(
            "id",
            "a response id is required (the response's 'id', or 'response_id'): it is "
            "what makes a replay harmless. For embeddings, send a unique id of your own.",
        )
    if cutoff is not None and draft.occurred_at < cutoff:
        raise FieldError(
            "occurred_at",
            f"is older than the {settings.USAGE_RAW_RETENTION_DAYS}-day retention "
            "period; such records are no longer accepted (their first copy may already be purged).",
        )
    if draft.occurred_at > now + FUTURE_TOLERANCE:
        raise FieldError("occurred_at", "is more than a day in the future; send UTC times.")
    return draft


@api_view
@csrf_exempt
def ingest_usage(request: HttpRequest) -> HttpResponse:
    """Store one record or a batch of up to ``USAGE_INGEST_MAX_RECORDS`` for the token's project."""
    if request.method != "POST":
        response = _error(405, "Use POST.", code="method_not_allowed")
        response["Allow"] = "POST"
        return response
    raw_token = _bearer(request)
    if raw_token is None:
        return _error(
            401,
            "Send the project's ingestion token as 'Authorization: Bearer <token>'.",
            code="missing_token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    address = client_ip(request) or "unknown"
    wait = _auth_blocked(address)
    if wait is not None:
        return _error(
            429,
            f"Too many unknown ingestion tokens from this address; retry in {wait} s.",
            code="too_many_failed_tokens",
            headers={"Retry-After": str(wait)},
        )
    # A token is printable ASCII; anything else (a NUL, which PostgreSQL cannot even
    # compare) is an unknown token without a database round trip.
    token = ingestion_token_lookup(raw_token) if _PRINTABLE_TOKEN.fullmatch(raw_token) else None
    if token is None:
        # Check-then-count: concurrent guesses may pass the limit by a few; the next
        # request from the address sees the full count.
        _auth_failed(address)
        return _error(
            401,
            "Unknown ingestion token. Create one on the project's Ingestion tokens page.",
            code="unknown_token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if token.revoked_at is not None:
        return _error(
            403, "This ingestion token was revoked. Create a new one.", code="token_revoked"
        )
    wait = _rate_limited(str(token.public_id))
    if wait is not None:
        return _error(
            429,
            f"Too many requests for this token; retry in {wait} s.",
            code="rate_limited",
            headers={"Retry-After": str(wait)},
        )
    content_type = request.META.get("CONTENT_TYPE", "")
    if not _is_json(content_type):
        return _error(
            415,
            f"Send the body as JSON with 'Content-Type: application/json' "
            f"(got {content_type[:100]!r}).",
            code="unsupported_media_type",
        )
    max_bytes = _setting("USAGE_INGEST_MAX_BYTES", 4 * 1024 * 1024)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > max_bytes:
        return _error(
            413,
            f"The body is larger than {max_bytes} bytes; send smaller batches.",
            code="too_large",
        )
    # Read at most one byte past the limit (chunked bodies have no Content-Length).
    body = request.read(max_bytes + 1)
    if len(body) > max_bytes:
        return _error(
            413,
            f"The body is larger than {max_bytes} bytes; send smaller batches.",
            code="too_large",
        )
    try:
        payload = orjson.loads(body)  # strict JSON (no NaN/Infinity); ints up to 64 bits
    except (ValueError, UnicodeDecodeError):
        return _error(
            400,
            "The body is not valid JSON.",
            code="invalid_json",
            errors=[{"index": None, "field": "body", "message": "is not valid JSON."}],
        )
    try:
        records, project_ref = _split_records(payload)
    except FieldError as exc:
        return _error(
            400,
            str(exc),
            code="invalid",
            errors=[{"index": None, "field": exc.field, "message": exc.message}],
        )
    if project_ref is not None and type(project_ref) is not str:
        return _error(
            400,
            "project: must be a string (the project's public id).",
            code="invalid",
            errors=[{"index": None, "field": "project", "message": "must be a string."}],
        )
    project = token.project
    names = {str(project.public_id)} | (
        {project.openai_project_id} if project.openai_project_id else set()
    )
    if project_ref is not None and project_ref not in names:  # "" names no project
        return _error(
            403,
            "This token belongs to another project than the one named in 'project'.",
            code="wrong_project",
        )
    max_records = _setting("USAGE_INGEST_MAX_RECORDS", 1000)
    if not records:
        return _error(
            400,
            "records: send at least one record.",
            code="invalid",
            errors=[{"index": None, "field": "records", "message": "is empty."}],
        )
    if len(records) > max_records:
        return _error(
            400,
            f"records: at most {max_records} per request; split the batch.",
            code="too_many_records",
            errors=[
                {
                    "index": None,
                    "field": "records",
                    "message": f"has {len(records)} records; the limit is {max_records}.",
                }
            ],
        )
    now = timezone.now()
    cutoff = retention_cutoff(now)
    drafts, errors = [], []
    for i, raw in enumerate(records):
        try:
            drafts.append(_draft(project, raw, now=now, cutoff=cutoff))
        except FieldError as exc:
            path = f"records[{i}]" + (f".{exc.field}" if exc.field else "")
            errors.append({"index": i, "field": path, "message": exc.message})
            if len(errors) >= MAX_ERRORS_REPORTED:
                break
    if errors:
        first = errors[0]
        return _error(400, f"{first['field']}: {first['message']}", code="invalid", errors=errors)
    # Returns only after the transaction committed: a 2xx means the records are stored.
    try:
        result = usage_records_ingest(project=project, drafts=drafts)
    except FieldError as exc:  # an amount past what a rollup can hold; rolled back, nothing stored
        return _error(
            400,
            f"{exc.field}: {exc.message}",
            code="invalid",
            errors=[{"index": None, "field": exc.field, "message": exc.message}],
        )
    ingestion_token_touch(token=token, now=now)
    return JsonResponse(
        {"received": result.received, "created": result.created, "duplicates": result.duplicates},
        status=200,
    )


@cache
def _openapi_bytes() -> bytes:
    return OPENAPI_PATH.read_bytes()


@require_GET
def openapi_document(request: HttpRequest) -> HttpResponse:
    """The OpenAPI 3.1 description of the ingestion API."""
    return HttpResponse(_openapi_bytes(), content_type="application/json")
