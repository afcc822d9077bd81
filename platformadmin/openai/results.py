"""What the client layer hands back: call parameters, outcomes, stream events, model lists.

Plain data, no I/O: the views, the result template and the services share these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from usage.pricing import Usage


@dataclass
class ModelsListResult:
    """What "Test connection" shows: ids on success, else a human explanation."""

    ok: bool
    model_ids: list[str] = field(default_factory=list)
    request_id: str | None = None
    message: str = ""


@dataclass
class GenerateParams:
    model: str
    input: str
    instructions: str = ""
    temperature: float | None = None
    max_output_tokens: int | None = None
    reasoning_effort: str | None = None


def usage_from_sdk(usage) -> Usage | None:
    """The SDK's Responses usage as usage's one count type (None when the reply had none).

    Taken as the upstream gave it (no consistency check): the reply already reached the user.
    """
    if usage is None:
        return None
    inp, out = usage.input_tokens_details, usage.output_tokens_details
    return Usage(
        input_tokens=usage.input_tokens,
        cached_input_tokens=getattr(inp, "cached_tokens", 0) or 0,
        output_tokens=usage.output_tokens,
        reasoning_tokens=getattr(out, "reasoning_tokens", 0) or 0,
        total_tokens=usage.total_tokens,
    )


def usage_as_dict(usage: Usage) -> dict:
    """``usage`` in the Responses API's shape (what usage_record_create reads without a response)."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


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
    usage: Usage | None = None
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


@dataclass
class StreamEvent:
    """What the streaming view sends the browser: ``start``, ``delta``, ``waiting`` or ``done``."""

    kind: str
    text: str = ""
    outcome: CallOutcome | None = None
    client_request_id: str = ""
    server_request_id: str | None = None
