"""Turning what the SDK returns (or its JSON) into one normalized record.

Accepted shapes, as an SDK object or its ``model_dump()`` dict:
- a Responses API ``Response`` (non-streaming, or ``event.response`` of a stream's
  terminal event; the whole terminal event is accepted too);
- a Chat Completions ``ChatCompletion`` (``prompt_tokens`` / ``completion_tokens`` /
  ``prompt_tokens_details.cached_tokens`` / ``completion_tokens_details.reasoning_tokens``);
- an embeddings ``CreateEmbeddingResponse`` (``prompt_tokens`` / ``total_tokens``; no id).

Every problem raises ``FieldError`` naming the field, so the API can answer 400 with
``records[i].<field>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from .pricing import Usage

MAX_TOKENS = 10**12  # a sanity bound: no single response uses a trillion tokens
TERMINAL_EVENTS = {"response.completed", "response.incomplete", "response.failed"}


class FieldError(ValueError):
    """A bad value in a named field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class ParsedResponse:
    """What a response tells us; every value may still be overridden by the caller."""

    response_id: str | None = None
    model: str | None = None
    status: str | None = None
    service_tier: str | None = None
    occurred_at: datetime | None = None
    server_request_id: str = ""
    usage: Usage | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def as_dict(response: Any, *, field_name: str = "response") -> dict:
    """An SDK object (pydantic ``model_dump``) or a mapping, as a plain dict (a dict is
    returned as is, not copied: treat the result as read-only)."""
    if response is None:
        return {}
    if type(response) is dict:
        return response  # read only: no copy
    if isinstance(response, Mapping):
        return dict(response)
    dump = getattr(response, "model_dump", None)
    if callable(dump):
        return dump()
    raise FieldError(field_name, "expected an SDK response object or its JSON object.")


def _int(value: Any, name: str, key: str = "") -> int:
    """A token count; the field's name (``name.key``) is only built for an error."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:  # the common case, first
        return value
    if value is None:
        return 0
    field = f"{name}.{key}" if key else name
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise FieldError(field, "must be a whole number of tokens.")
    if value < 0 or value > MAX_TOKENS:
        raise FieldError(field, f"must be between 0 and {MAX_TOKENS}.")
    return value


def _details(usage: Mapping, key: str, name: str) -> Mapping:
    value = usage.get(key) or {}
    if type(value) is not dict and not isinstance(value, Mapping):
        raise FieldError(f"{name}.{key}", "must be an object.")
    return value


def normalize_usage(usage: Any, *, name: str = "usage") -> Usage | None:
    """One ``Usage`` from a Responses, Chat Completions or embeddings usage object."""
    if usage is None:
        return None
    if type(usage) is not dict and not isinstance(usage, Mapping):
        dump = getattr(usage, "model_dump", None)
        if not callable(dump):
            raise FieldError(name, "must be an object with token counts.")
        usage = dump()
    if "input_tokens" in usage or "output_tokens" in usage:  # Responses API
        inp = _int(usage.get("input_tokens"), name, "input_tokens")
        out = _int(usage.get("output_tokens"), name, "output_tokens")
        cached = _int(_details(usage, "input_tokens_details", name).get("cached_tokens"),
                      name, "input_tokens_details.cached_tokens")
        reasoning = _int(_details(usage, "output_tokens_details", name).get("reasoning_tokens"),
                         name, "output_tokens_details.reasoning_tokens")
    elif "prompt_tokens" in usage or "completion_tokens" in usage:  # Chat / embeddings
        inp = _int(usage.get("prompt_tokens"), name, "prompt_tokens")
        out = _int(usage.get("completion_tokens"), name, "completion_tokens")
        cached = _int(_details(usage, "prompt_tokens_details", name).get("cached_tokens"),
                      name, "prompt_tokens_details.cached_tokens")
        reasoning = _int(
            _details(usage, "completion_tokens_details", name).get("reasoning_tokens"),
            name, "completion_tokens_details.reasoning_tokens",
        )
    elif not usage:
        return Usage()
    else:
        raise FieldError(
            name, "expected input_tokens/output_tokens (Responses API) or "
            "prompt_tokens/completion_tokens (Chat Completions, embeddings).",
        )
    if cached > inp:
        raise FieldError(f"{name}.cached_tokens", "cannot exceed the input tokens.")
    if reasoning > out:
        raise FieldError(f"{name}.reasoning_tokens", "cannot exceed the output tokens.")
    total = usage.get("total_tokens")
    total = inp + out if total is None else _int(total, name, "total_tokens")
    return Usage(inp, cached, out, reasoning, total)


def parse_timestamp(value: Any, name: str) -> datetime | None:
    """Unix seconds (int or float) or an ISO 8601 string with a timezone, as aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise FieldError(name, "must carry a timezone (UTC).")
        return value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise FieldError(name, "is not a valid Unix timestamp.") from exc
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            raise FieldError(name, "must be Unix seconds or ISO 8601, e.g. 2026-06-01T12:00:00Z.")
        if parsed.tzinfo is None:
            raise FieldError(name, "must carry a timezone, e.g. 2026-06-01T12:00:00Z.")
        return parsed.astimezone(UTC)
    raise FieldError(name, "must be Unix seconds or an ISO 8601 string.")


def _str(value: Any, name: str, key: str, max_length: int) -> str | None:
    """A string field; its name (``name.key``) is only built for an error."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(f"{name}.{key}", "must be a string.")
    if len(value) > max_length:
        raise FieldError(f"{name}.{key}", f"must be at most {max_length} characters.")
    return value


def parse_response(response: Any, *, name: str = "response") -> ParsedResponse:
    """Read id, model, status, tier, time and usage from any supported response shape."""
    request_id = getattr(response, "_request_id", None) or ""
    data = as_dict(response, field_name=name)
    if data.get("type") in TERMINAL_EVENTS and isinstance(data.get("response"), Mapping):
        data = dict(data["response"])  # a stream's terminal event: the full Response inside
        name = f"{name}.response"
    obj = data.get("object")
    created = data.get("created_at") if "created_at" in data else data.get("created")
    parsed = ParsedResponse(
        response_id=_str(data.get("id"), name, "id", 200) or None,
        model=_str(data.get("model"), name, "model", 100) or None,
        status=_str(data.get("status"), name, "status", 32) or None,
        service_tier=_str(data.get("service_tier"), name, "service_tier", 32) or None,
        occurred_at=parse_timestamp(created, f"{name}.created_at"),
        server_request_id=request_id,
        usage=normalize_usage(data.get("usage"), name=f"{name}.usage"),
        extra={"object": obj},
    )
    if obj == "chat.completion" and parsed.status is None:
        parsed.status = "completed"
    return parsed


def ratelimit_subset(headers: Any, *, name: str = "ratelimit_headers") -> dict[str, str]:
    """Only the ``x-ratelimit-*`` headers, names lower-cased, values as strings."""
    if not headers:
        return {}
    items = headers.items() if hasattr(headers, "items") else None
    if items is None:
        raise FieldError(name, "must be an object of header names to values.")
    out: dict[str, str] = {}
    for key, value in items:
        key = str(key).lower()
        if key.startswith("x-ratelimit-"):
            out[key[:100]] = str(value)[:200]
    return out
