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

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from .models import UsageRecord
from .pricing import Usage

MAX_TOKENS = 10**12  # a sanity bound: no single response uses a trillion tokens
TERMINAL_EVENTS = {"response.completed", "response.incomplete", "response.failed"}
# Characters refused in every stored string: C0/C1 controls (NUL included, which
# PostgreSQL cannot store), and the invisible ones that make an id display as another
# (zero-width, bidi embeddings and isolates, line/paragraph separators, BOM). The same
# class is the ``pattern`` of each string in usage/openapi.json.
FORBIDDEN_CHARS = r"\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_FORBIDDEN = re.compile(f"[{FORBIDDEN_CHARS}]")
MAX_HEADERS = 64  # ratelimit_headers entries (OpenAI sends six x-ratelimit-* headers)
MAX_HEADER_NAME = 100
MAX_HEADER_VALUE = 200


def column_length(name: str) -> int:
    """The ``max_length`` of a UsageRecord column: a longer value is refused, never cut."""
    return UsageRecord._meta.get_field(name).max_length


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


def text(value: Any, field: str, max_length: int, *, allow_empty: bool = False) -> str | None:
    """A string field as stored: type, length and characters checked, never truncated.

    ``None`` means "not given". An empty string is refused unless ``allow_empty`` (the
    blank columns: request ids, error type), so a client cannot send "" for an id and
    have another value silently take its place.
    """
    if value is None:
        return None
    if type(value) is not str:
        raise FieldError(field, f"must be a string, not {_json_type(value)}.")
    if not value and not allow_empty:
        raise FieldError(field, "must not be empty; leave the field out instead.")
    if len(value) > max_length:
        raise FieldError(
            field,
            f"must be at most {max_length} characters (it has {len(value)}); "
            "values are never truncated, send a shorter one.",
        )
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise FieldError(
            field,
            f"must not contain control or invisible characters "
            f"(U+{ord(bad.group()):04X} at position {bad.start()}).",
        )
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


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
    value = usage.get(key)
    if value is None:
        return {}
    if type(value) is not dict and not isinstance(value, Mapping):
        raise FieldError(f"{name}.{key}", "must be an object (or null).")
    return value


# Every count a usage object may carry, by family; all are type-checked whichever
# family the object turns out to be (a wrong type is never ignored).
_COUNTS = ("input_tokens", "output_tokens", "prompt_tokens", "completion_tokens", "total_tokens")
_DETAILS = (
    ("input_tokens_details", "cached_tokens"),
    ("output_tokens_details", "reasoning_tokens"),
    ("prompt_tokens_details", "cached_tokens"),
    ("completion_tokens_details", "reasoning_tokens"),
)


def normalize_usage(usage: Any, *, name: str = "usage") -> Usage | None:
    """One ``Usage`` from a Responses, Chat Completions or embeddings usage object.

    ``total_tokens``, when given, must equal input + output: a total that disagrees
    with its parts means one of them is wrong, and guessing which would store a lie.
    """
    if usage is None:
        return None
    if type(usage) is not dict and not isinstance(usage, Mapping):
        dump = getattr(usage, "model_dump", None)
        if not callable(dump):
            raise FieldError(name, "must be an object with token counts.")
        usage = dump()
    counts = {key: _int(usage.get(key), name, key) for key in _COUNTS}
    details = {
        (group, key): _int(_details(usage, group, name).get(key), name, f"{group}.{key}")
        for group, key in _DETAILS
    }
    if "input_tokens" in usage or "output_tokens" in usage:  # Responses API
        inp, out = counts["input_tokens"], counts["output_tokens"]
        group_in, group_out = "input_tokens_details", "output_tokens_details"
    elif "prompt_tokens" in usage or "completion_tokens" in usage:  # Chat / embeddings
        inp, out = counts["prompt_tokens"], counts["completion_tokens"]
        group_in, group_out = "prompt_tokens_details", "completion_tokens_details"
    elif not usage:
        return Usage()
    else:
        raise FieldError(
            name,
            "expected input_tokens/output_tokens (Responses API) or "
            "prompt_tokens/completion_tokens (Chat Completions, embeddings).",
        )
    cached = details[(group_in, "cached_tokens")]
    reasoning = details[(group_out, "reasoning_tokens")]
    if cached > inp:
        raise FieldError(
            f"{name}.{group_in}.cached_tokens", f"cannot exceed the input tokens ({inp})."
        )
    if reasoning > out:
        raise FieldError(
            f"{name}.{group_out}.reasoning_tokens", f"cannot exceed the output tokens ({out})."
        )
    if usage.get("total_tokens") is not None and counts["total_tokens"] != inp + out:
        raise FieldError(
            f"{name}.total_tokens",
            f"must equal input + output tokens ({inp} + {out} = {inp + out}), "
            f"not {counts['total_tokens']}; leave it out to have it computed.",
        )
    return Usage(inp, cached, out, reasoning, inp + out)


EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)  # no OpenAI API response is older


def parse_timestamp(value: Any, name: str) -> datetime | None:
    """Unix seconds (int or float) or an ISO 8601 string with a timezone, as aware UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise FieldError(name, "must carry a timezone (UTC).")
        when = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            when = datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise FieldError(name, "is not a valid Unix timestamp.") from exc
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            raise FieldError(name, "must be Unix seconds or ISO 8601, e.g. 2026-06-01T12:00:00Z.")
        if parsed.tzinfo is None:
            raise FieldError(name, "must carry a timezone, e.g. 2026-06-01T12:00:00Z.")
        when = parsed
    else:
        raise FieldError(
            name, f"must be Unix seconds or an ISO 8601 string, not {_json_type(value)}."
        )
    try:
        when = when.astimezone(UTC)  # an offset can carry year 1 or 9999 out of range
    except (OverflowError, ValueError) as exc:
        raise FieldError(name, "is out of range once converted to UTC.") from exc
    if when < EARLIEST:
        raise FieldError(
            name,
            f"is before {EARLIEST:%Y-%m-%d}; send the time of the call "
            "(Unix seconds or ISO 8601 with a timezone).",
        )
    return when


def parse_response(response: Any, *, name: str = "response") -> ParsedResponse:
    """Read id, model, status, tier, time and usage from any supported response shape."""
    request_id = getattr(response, "_request_id", None) or ""
    data = as_dict(response, field_name=name)
    kind = data.get("type")
    if type(kind) is str and kind in TERMINAL_EVENTS and isinstance(data.get("response"), Mapping):
        data = dict(data["response"])  # a stream's terminal event: the full Response inside
        name = f"{name}.response"
    obj = text(data.get("object"), f"{name}.object", 100)
    created_at = parse_timestamp(data.get("created_at"), f"{name}.created_at")
    created = parse_timestamp(data.get("created"), f"{name}.created")
    parsed = ParsedResponse(
        response_id=text(data.get("id"), f"{name}.id", column_length("response_id")),
        model=text(data.get("model"), f"{name}.model", column_length("model")),
        status=text(data.get("status"), f"{name}.status", column_length("status")),
        service_tier=text(
            data.get("service_tier"), f"{name}.service_tier", column_length("service_tier")
        ),
        occurred_at=created_at or created,
        server_request_id=request_id,
        usage=normalize_usage(data.get("usage"), name=f"{name}.usage"),
        extra={"object": obj},
    )
    if obj == "chat.completion" and parsed.status is None:
        parsed.status = "completed"
    return parsed


def ratelimit_subset(headers: Any, *, name: str = "ratelimit_headers") -> dict[str, str]:
    """Only the ``x-ratelimit-*`` headers, names lower-cased; every entry checked (names
    and values are strings without control characters), none truncated."""
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) or hasattr(headers, "items") else None
    if items is None:
        raise FieldError(name, "must be an object of header names to string values.")
    items = list(items)
    if len(items) > MAX_HEADERS:
        raise FieldError(name, f"must have at most {MAX_HEADERS} headers; send only x-ratelimit-*.")
    out: dict[str, str] = {}
    for key, value in items:
        key = text(key, f"{name}", MAX_HEADER_NAME)
        text(value, f"{name}.{key}", MAX_HEADER_VALUE, allow_empty=True)
        if key.lower().startswith("x-ratelimit-"):
            out[key.lower()] = value
    return out
