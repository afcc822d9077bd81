"""A small OpenAI-compatible HTTP server for tests and the offline demo.

It speaks enough of the real API for the official SDK: ``POST /v1/responses`` (JSON and
server-sent events), ``POST /v1/chat/completions`` (JSON, or chunks with usage last when
``stream_options.include_usage``), ``POST /v1/embeddings``, ``GET /v1/models`` and
``GET /v1/models/{id}``, with an
``x-request-id`` on every reply, deterministic text and token counts derived from the
input, and usage with cached and reasoning details. Azure-style paths
(``/openai/...`` with an ``api-key`` header) are accepted too.

Faults are chosen by a token in the key or in the model name (see docs/playground.md)::

    fault-401      401 invalid_api_key          fault-403   403 insufficient permissions
    fault-404      404 model_not_found          fault-429   429 with retry-after
    fault-500      500 server_error              fault-flakyN 500 until the N-th retry
    fault-slow     replies after ``slow_seconds`` fault-cut  the stream stops mid-way
    fault-echo     a hostile upstream: 401 whose message and param echo the credential
                   received (bearer or ``api-key``) plainly, URL-encoded and in base64
    fault-echo200  the same credential inside a 200: extra model ids of ``GET /v1/models``

A model id not in the catalog (usage/data/openai-models.json) is a 404 as well.

The server counts TCP connections, requests and the ``x-stainless-retry-count``
values it saw (``stats()`` / ``reset()``; also ``GET /_simulator/stats`` and
``POST /_simulator/reset`` for other processes). Routes live in ``ROUTES``: the Admin
API paths a later issue needs are added there.

Standard library only, so it starts in a thread inside a test or as
``manage.py openai_simulator``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from .simulator_admin import AdminAPI
from .simulator_errors import SimulatorError

CATALOG_FILE = Path(__file__).resolve().parents[2] / "usage" / "data" / "openai-models.json"
FAULT_RE = re.compile(
    r"fault-(401|403|404|429|500|slow|cut|echo200|echo|flaky(\d+)|spendlimit|orgspendlimit)"
)
REASONING_TOKENS = {
    "none": 0,
    "minimal": 4,
    "low": 8,
    "medium": 16,
    "high": 32,
    "xhigh": 48,
    "max": 64,
}
VOCABULARY = (
    "the quick model answers every prompt with calm and careful words about budgets keys "
    "projects tokens usage rotation limits streams retries latency costs requests reasoning "
    "clients servers caches breakers simulators consoles dashboards alerts"
).split()


def _load_catalog() -> dict[str, bool]:
    """model id -> supports reasoning, from the catalog seed shipped with the project."""
    try:
        facts = json.loads(CATALOG_FILE.read_text())
        return {row["id"]: bool(row.get("reasoning")) for row in facts["models"]}
    except (OSError, ValueError, KeyError):  # the simulator still runs without it
        return {"gpt-5.4-mini": True, "gpt-4.1-mini": False}


def _flatten_text(value) -> str:
    """All the text in an ``input`` (a string or a list of messages / content parts)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_flatten_text(v) for v in value)
    if isinstance(value, dict):
        parts = [_flatten_text(value.get(k)) for k in ("content", "text") if k in value]
        return " ".join(p for p in parts if p)
    return str(value)


def simulated_reply(*, model: str, instructions: str, text: str) -> list[str]:
    """The deterministic words of the reply to this input (8 to 24 words)."""
    digest = hashlib.sha256(f"{model}\x00{instructions}\x00{text}".encode()).digest()
    count = 8 + digest[0] % 17
    words = [VOCABULARY[(digest[(i % 31) + 1] + i) % len(VOCABULARY)] for i in range(count)]
    words[0] = words[0].capitalize()
    words[-1] += "."
    return words


def simulated_usage_counts(
    *, instructions: str, text: str, effort: str | None
) -> tuple[int, int, int]:
    """(input tokens, cached tokens, reasoning tokens): about four characters per token."""
    input_tokens = max(1, math.ceil(len(instructions + text) / 4))
    cached = input_tokens // 4
    reasoning = REASONING_TOKENS.get(effort or "", 0) if effort else 0
    return input_tokens, cached, reasoning


def _check_response_params(body: dict, *, reasoning_model: bool) -> None:
    """The Responses API's own 400s for the parameters the console sends."""
    temperature = body.get("temperature")
    if temperature is not None and not (0 <= float(temperature) <= 2):
        raise SimulatorError(
            400,
            f"Invalid 'temperature': decimal above maximum value. Expected a value "
            f"<= 2, but got {temperature} instead.",
            type_="invalid_request_error",
            code="decimal_above_max_value",
            param="temperature",
        )
    max_out = body.get("max_output_tokens")
    if max_out is not None and int(max_out) < 16:
        raise SimulatorError(
            400,
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a "
            f"value >= 16, but got {max_out} instead.",
            type_="invalid_request_error",
            code="integer_below_min_value",
            param="max_output_tokens",
        )
    if (body.get("reasoning") or {}).get("effort") and not reasoning_model:
        raise SimulatorError(
            400,
            "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
            type_="invalid_request_error",
            code="unsupported_parameter",
            param="reasoning.effort",
        )


@dataclass
class _ResponseReply:
    """One Responses API reply: the words, the final body, and the pieces a stream sends."""

    words: list[str]
    input_tokens: int
    base: dict
    message: dict
    final: dict

    @classmethod
    def build(cls, body: dict, model: str) -> _ResponseReply:
        instructions = body.get("instructions") or ""
        text = _flatten_text(body.get("input"))
        effort = (body.get("reasoning") or {}).get("effort")
        max_out = body.get("max_output_tokens")
        words = simulated_reply(model=model, instructions=instructions, text=text)
        input_tokens, cached, reasoning = simulated_usage_counts(
            instructions=instructions, text=text, effort=effort
        )
        status, incomplete = "completed", None
        if max_out is not None and len(words) + reasoning > int(max_out):
            words = words[: max(0, int(max_out) - reasoning)]
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": len(words) + reasoning,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": input_tokens + len(words) + reasoning,
        }
        base = {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": int(time.time()),
            "model": model,
            "instructions": instructions or None,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "temperature": body.get("temperature"),
            "max_output_tokens": max_out,
            "reasoning": {"effort": effort, "summary": None} if effort else None,
            "service_tier": body.get("service_tier") or "default",
            "metadata": body.get("metadata") or {},
            "error": None,
            "incomplete_details": None,
        }
        message = {
            "type": "message",
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": " ".join(words), "annotations": []}],
        }
        final = {
            **base,
            "status": status,
            "incomplete_details": incomplete,
            "output": [message],
            "usage": usage,
            "completed_at": int(time.time()),
        }
        return cls(words, input_tokens, base, message, final)

    def stream(self, handler: _Handler, *, cut: bool, delta_delay: float) -> None:
        """The SSE events of a streamed reply; ``cut`` drops the connection halfway."""
        seq = iter(range(10_000))
        msg_id, full_text = self.message["id"], " ".join(self.words)
        text_at = {"item_id": msg_id, "output_index": 0, "content_index": 0}
        in_progress = {**self.base, "status": "in_progress", "output": [], "usage": None}
        handler.sse(
            {"type": "response.created", "sequence_number": next(seq), "response": in_progress}
        )
        handler.sse(
            {"type": "response.in_progress", "sequence_number": next(seq), "response": in_progress}
        )
        handler.sse(
            {
                "type": "response.output_item.added",
                "sequence_number": next(seq),
                "output_index": 0,
                "item": {**self.message, "status": "in_progress", "content": []},
            }
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        handler.sse(
            {
                "type": "response.content_part.added",
                "sequence_number": next(seq),
                **text_at,
                "part": part,
            }
        )
        cut_at = max(1, len(self.words) // 2) if cut else None
        for i, word in enumerate(self.words):
            if i == cut_at:
                handler.drop_connection()
                return
            delta = word if i == len(self.words) - 1 else word + " "
            handler.sse(
                {
                    "type": "response.output_text.delta",
                    "sequence_number": next(seq),
                    **text_at,
                    "delta": delta,
                    "logprobs": [],
                }
            )
            if delta_delay:
                time.sleep(delta_delay)
        handler.sse(
            {
                "type": "response.output_text.done",
                "sequence_number": next(seq),
                **text_at,
                "text": full_text,
                "logprobs": [],
            }
        )
        handler.sse(
            {
                "type": "response.content_part.done",
                "sequence_number": next(seq),
                **text_at,
                "part": {**part, "text": full_text},
            }
        )
        handler.sse(
            {
                "type": "response.output_item.done",
                "sequence_number": next(seq),
                "output_index": 0,
                "item": self.message,
            }
        )
        terminal = (
            "response.completed" if self.final["status"] == "completed" else "response.incomplete"
        )
        handler.sse({"type": terminal, "sequence_number": next(seq), "response": self.final})
        handler.end_chunks()


def _azure_to_v1(path: str) -> str:
    """Azure OpenAI's ``/openai/[deployments/{name}/][v1/]<path>`` as the ``/v1/<path>`` it serves."""
    m = re.match(r"^/openai(?:/deployments/(?P<dep>[^/]+))?(?:/v1)?(?P<rest>/.*)$", path)
    return "/v1" + (m.group("rest") if m else path[len("/openai") :])


def _json_body(raw: bytes):
    """The request's JSON (``{}`` when empty), or None when it does not parse."""
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return None


@dataclass
class SimulatorStats:
    connections: int = 0
    requests: int = 0
    retry_counts: list[int] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)


@dataclass
class Call:
    """One parsed request handed to a route."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict
    key: str
    match: re.Match
    retry_count: int


Route = tuple[str, re.Pattern, Callable]


class OpenAISimulator:
    """The server. ``start()`` runs it in a daemon thread; ``stop()`` shuts it down."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        delta_delay: float = 0.02,
        slow_seconds: float = 2.0,
        retry_after_ms: int = 20,
        quiet: bool = True,
    ):
        self.delta_delay = delta_delay
        self.slow_seconds = slow_seconds
        self.retry_after_ms = retry_after_ms
        self.quiet = quiet
        # Faults applied to every request (an outage), on top of those in keys / models.
        self.force_faults: set[str] = set()
        self.catalog = _load_catalog()
        self._lock = threading.Lock()
        self._stats = SimulatorStats()
        self.routes: list[Route] = [
            ("POST", re.compile(r"^/v1/responses$"), self.create_response),
            ("POST", re.compile(r"^/v1/chat/completions$"), self.create_chat_completion),
            ("POST", re.compile(r"^/v1/embeddings$"), self.create_embedding),
            ("GET", re.compile(r"^/v1/models$"), self.list_models),
            ("GET", re.compile(r"^/v1/models/(?P<model>[^/]+)$"), self.retrieve_model),
        ]
        # The Admin API (/v1/organization/...): one simulated organization per admin key.
        self.admin = AdminAPI(self, CATALOG_FILE)
        self.routes += self.admin.routes()
        handler = type("Handler", (_Handler,), {"simulator": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> OpenAISimulator:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="openai-simulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- counters ----------------------------------------------------------------
    def stats(self) -> SimulatorStats:
        with self._lock:
            return SimulatorStats(
                self._stats.connections,
                self._stats.requests,
                list(self._stats.retry_counts),
                list(self._stats.log),
            )

    def reset(self) -> None:
        with self._lock:
            self._stats = SimulatorStats()

    @property
    def connections(self) -> int:
        return self.stats().connections

    @property
    def requests(self) -> int:
        return self.stats().requests

    @property
    def retry_counts(self) -> list[int]:
        return self.stats().retry_counts

    @property
    def log(self) -> list[dict]:
        return self.stats().log

    def _count_connection(self) -> None:
        with self._lock:
            self._stats.connections += 1

    def _count_request(self, entry: dict) -> None:
        with self._lock:
            self._stats.requests += 1
            self._stats.retry_counts.append(entry["retry_count"])
            self._stats.log.append(entry)

    # -- faults --------------------------------------------------------------------
    def faults(self, *names: str) -> set[str]:
        found: set[str] = set(self.force_faults)
        for name in names:
            for m in FAULT_RE.finditer(name or ""):
                found.add(m.group(1))
        return found

    def _check_auth_faults(self, call: Call, faults: set[str]) -> None:
        if not call.key:
            raise SimulatorError(
                401,
                "You didn't provide an API key. You need to provide your API key "
                "in an Authorization header using Bearer auth.",
                type_="invalid_request_error",
                code="missing_api_key",
            )
        if "echo" in faults:  # hostile upstream: the console must scrub this before showing it
            auth = call.headers.get("Authorization") or call.headers.get("authorization") or ""
            raise SimulatorError(
                401,
                f"Incorrect API key provided: {call.key} (url-encoded: "
                f"{quote(call.key, safe='')}; base64: "
                f"{base64.b64encode(call.key.encode()).decode()}; header: {auth}).",
                type_="invalid_request_error",
                code="invalid_api_key",
                param=call.key,
            )
        if "401" in faults:
            hint = f"{call.key[:8]}****{call.key[-4:]}"
            raise SimulatorError(
                401,
                f"Incorrect API key provided: {hint}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                type_="invalid_request_error",
                code="invalid_api_key",
            )
        if "403" in faults:
            raise SimulatorError(
                403,
                "You have insufficient permissions for this operation. "
                "Missing scopes: api.responses.write.",
                type_="invalid_request_error",
                code="insufficient_permissions",
            )
        if "429" in faults:
            seconds = max(1, math.ceil(self.retry_after_ms / 1000))
            raise SimulatorError(
                429,
                "Rate limit reached for requests per min (RPM): Limit 3, Used 3, "
                f"Requested 1. Please try again in {seconds}s.",
                type_="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": str(seconds), "retry-after-ms": str(self.retry_after_ms)},
            )
        for marker, scope in (("spendlimit", "project"), ("orgspendlimit", "organization")):
            if marker in faults:  # OpenAI's hard spend limit (a budget pushed upstream)
                raise SimulatorError(
                    429,
                    f"You have exceeded the monthly spend limit of this {scope}.",
                    type_="insufficient_quota",
                    code=f"{scope}_spend_limit_exceeded",
                    headers={"retry-after-ms": str(self.retry_after_ms)},
                )
        flaky = next((f for f in faults if f.startswith("flaky")), None)
        if "500" in faults or (flaky and call.retry_count < int(flaky[5:])):
            raise SimulatorError(
                500,
                "The server had an error while processing your request. Sorry about that!",
                type_="server_error",
                code="server_error",
                headers={"retry-after-ms": str(self.retry_after_ms)},
            )
        if "slow" in faults:
            time.sleep(self.slow_seconds)

    def _check_model(self, model: str, faults: set[str]) -> bool:
        """Raise 404 for an unknown model; return whether it supports reasoning."""
        base = model.split("-fault-")[0]
        if "404" in faults or base not in self.catalog:
            raise SimulatorError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                type_="invalid_request_error",
                code="model_not_found",
                param="model",
            )
        return self.catalog[base]

    # -- routes ----------------------------------------------------------------------
    def list_models(self, call: Call, handler: _Handler) -> None:
        self._check_auth_faults(call, self.faults(call.key))
        data = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
            for m in sorted(self.catalog)
        ]
        if "echo200" in self.faults(call.key):  # hostile upstream: the credential as model ids
            data += [
                {"id": key_id, "object": "model", "created": 1_700_000_000, "owned_by": "echo"}
                for key_id in (call.key, f"echo-{quote(call.key, safe='')}")
            ]
        handler.send_json(200, {"object": "list", "data": data})

    def retrieve_model(self, call: Call, handler: _Handler) -> None:
        model = call.match.group("model")
        faults = self.faults(call.key, model)
        self._check_auth_faults(call, faults)
        self._check_model(model, faults)
        handler.send_json(
            200, {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
        )

    def create_response(self, call: Call, handler: _Handler) -> None:
        """``POST /v1/responses``: check the request, build the reply, send it plain or streamed."""
        model, faults, reasoning_model = self._model_request(call)
        _check_response_params(call.body, reasoning_model=reasoning_model)
        reply = _ResponseReply.build(call.body, model)
        extra = self._ratelimit_headers(reply.input_tokens)
        if "cut" not in faults:  # served in full: the Admin API's usage and costs count it
            self.admin.record_call(
                key=call.key,
                model=model,
                usage=reply.final["usage"],
                service_tier=call.body.get("service_tier"),
            )
        if not call.body.get("stream"):
            if "cut" in faults:  # no reply at all: the connection drops
                handler.drop_connection()
                return
            handler.send_json(200, reply.final, extra=extra)
            return
        handler.start_sse(extra=extra)
        reply.stream(handler, cut="cut" in faults, delta_delay=self.delta_delay)

    def _model_request(self, call: Call) -> tuple[str, set[str], bool]:
        """Validate what responses, chat completions and embeddings share: model, faults,
        catalog (the model, its faults, whether it is a reasoning model)."""
        model = call.body.get("model") or ""
        if not model:
            raise SimulatorError(
                400,
                "Missing required parameter: 'model'.",
                type_="invalid_request_error",
                code="missing_required_parameter",
                param="model",
            )
        faults = self.faults(call.key, model)
        self._check_auth_faults(call, faults)
        return model, faults, self._check_model(model, faults)

    def create_chat_completion(self, call: Call, handler: _Handler) -> None:
        """``POST /v1/chat/completions``: the same words and counts as the Responses API."""
        body = call.body
        model, faults, reasoning_model = self._model_request(call)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise SimulatorError(
                400,
                "Missing required parameter: 'messages'.",
                type_="invalid_request_error",
                code="missing_required_parameter",
                param="messages",
            )
        effort = body.get("reasoning_effort")
        if effort and not reasoning_model:
            raise SimulatorError(
                400,
                "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                type_="invalid_request_error",
                code="unsupported_parameter",
                param="reasoning_effort",
            )
        system = " ".join(
            _flatten_text(m)
            for m in messages
            if isinstance(m, dict) and m.get("role") in ("system", "developer")
        )
        text = " ".join(
            _flatten_text(m)
            for m in messages
            if isinstance(m, dict) and m.get("role") not in ("system", "developer")
        )
        words = simulated_reply(model=model, instructions=system, text=text)
        input_tokens, cached, reasoning = simulated_usage_counts(
            instructions=system, text=text, effort=effort
        )
        finish = "stop"
        max_out = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_out is not None and len(words) + reasoning > int(max_out):
            words, finish = words[: max(0, int(max_out) - reasoning)], "length"
        usage = {
            "prompt_tokens": input_tokens,
            "completion_tokens": len(words) + reasoning,
            "total_tokens": input_tokens + len(words) + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": model,
            "service_tier": body.get("service_tier") or "default",
            "system_fingerprint": "fp_simulator",
        }
        headers = self._ratelimit_headers(input_tokens)
        if not body.get("stream"):
            if "cut" in faults:
                handler.drop_connection()
                return
            message = {
                "role": "assistant",
                "content": " ".join(words),
                "refusal": None,
                "annotations": [],
            }
            handler.send_json(
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "usage": usage,
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                    ],
                },
                extra=headers,
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk = {**base, "object": "chat.completion.chunk"}
        if include_usage:
            chunk["usage"] = None
        handler.start_sse(extra=headers)
        handler.sse_data(
            {
                **chunk,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                        "logprobs": None,
                    }
                ],
            }
        )
        cut_at = max(1, len(words) // 2) if "cut" in faults else None
        for i, word in enumerate(words):
            if cut_at is not None and i == cut_at:
                handler.drop_connection()
                return
            delta = word if i == len(words) - 1 else word + " "
            handler.sse_data(
                {
                    **chunk,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": delta},
                            "finish_reason": None,
                            "logprobs": None,
                        }
                    ],
                }
            )
            if self.delta_delay:
                time.sleep(self.delta_delay)
        handler.sse_data(
            {
                **chunk,
                "choices": [{"index": 0, "delta": {}, "finish_reason": finish, "logprobs": None}],
            }
        )
        if include_usage:
            handler.sse_data({**chunk, "choices": [], "usage": usage})
        handler.sse_data("[DONE]")
        handler.end_chunks()

    def create_embedding(self, call: Call, handler: _Handler) -> None:
        """``POST /v1/embeddings``: a deterministic unit vector per input, tokens ~ chars / 4."""
        body = call.body
        model, faults, _ = self._model_request(call)
        raw = body.get("input")
        if raw is None or raw == "" or raw == []:
            raise SimulatorError(
                400,
                "Missing required parameter: 'input'.",
                type_="invalid_request_error",
                code="missing_required_parameter",
                param="input",
            )
        # A string, a list of strings, a list of token ids or a list of such lists.
        inputs = (
            [raw]
            if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int))
            else list(raw)
        )
        dimensions = int(body.get("dimensions") or 8)
        data, tokens = [], 0
        for i, item in enumerate(inputs):
            text = " ".join(map(str, item)) if isinstance(item, list) else str(item)
            tokens += len(item) if isinstance(item, list) else max(1, math.ceil(len(text) / 4))
            digest = hashlib.sha256(f"{model}\x00{text}".encode()).digest()
            vector = [(digest[j % 32] - 127.5) / 127.5 for j in range(dimensions)]
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            data.append(
                {"object": "embedding", "index": i, "embedding": [v / norm for v in vector]}
            )
        if "cut" in faults:
            handler.drop_connection()
            return
        if body.get("encoding_format") == "base64":
            for row in data:
                row["embedding"] = base64.b64encode(
                    struct.pack(f"<{dimensions}f", *row["embedding"])
                ).decode()
        handler.send_json(
            200,
            {
                "object": "list",
                "model": model,
                "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            extra=self._ratelimit_headers(tokens),
        )

    @staticmethod
    def _ratelimit_headers(tokens: int) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": "5000",
            "x-ratelimit-remaining-requests": "4999",
            "x-ratelimit-limit-tokens": "2000000",
            "x-ratelimit-remaining-tokens": str(2_000_000 - tokens),
            "x-ratelimit-reset-requests": "12ms",
            "x-ratelimit-reset-tokens": "0s",
            "openai-processing-ms": "1",
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a reused client pool shows as one connection
    simulator: OpenAISimulator
    server_version = "openai-simulator/1"
    wbufsize = -1  # buffered: headers and body leave in one segment at flush()

    def setup(self) -> None:
        super().setup()
        # No Nagle delay between a reply's segments (it would add ~40 ms with delayed ACKs).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.simulator._count_connection()

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        if not self.simulator.quiet:
            super().log_message(format, *args)

    # -- plumbing -----------------------------------------------------------------------
    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        """Read the request, log it, route it; a SimulatorError becomes the API's error body."""
        self.request_id = f"req_{uuid.uuid4().hex}"
        self._chunked = False
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path.startswith("/_simulator/"):
            return self._control(method, path)
        azure = path.startswith("/openai/")
        path = _azure_to_v1(path) if azure else path
        body = _json_body(raw)
        key = self._credential()
        retry_count = self._retry_count()
        self.simulator._count_request(
            self._log_entry(method, path, query, azure, key, body, retry_count)
        )
        try:
            if not isinstance(body, dict):
                raise SimulatorError(
                    400,
                    "We could not parse the JSON body of your request.",
                    type_="invalid_request_error",
                    code="invalid_json",
                )
            func, match = self._route(method, path)
            return func(
                Call(method, path, query, dict(self.headers), body, key, match, retry_count), self
            )
        except SimulatorError as exc:
            self.send_json(exc.status, exc.body(), extra=exc.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, method: str, path: str):
        """(handler, match) of the route table's first entry for this method and path, else 404."""
        for route_method, pattern, func in self.simulator.routes:
            match = pattern.match(path)
            if match and route_method == method:
                return func, match
        raise SimulatorError(404, f"Invalid URL ({method} {path})", type_="invalid_request_error")

    def _credential(self) -> str:
        """The key sent: ``Authorization: Bearer`` (OpenAI) or ``api-key`` (Azure)."""
        auth = self.headers.get("authorization") or ""
        return (
            auth[7:].strip()
            if auth.lower().startswith("bearer ")
            else (self.headers.get("api-key") or "")
        )

    def _retry_count(self) -> int:
        try:
            return int(self.headers.get("x-stainless-retry-count") or 0)
        except ValueError:
            return 0

    def _log_entry(
        self, method: str, path: str, query: dict, azure: bool, key: str, body, retry_count: int
    ) -> dict:
        """What the simulator's log keeps of a request (the tests read it)."""
        fields = body if isinstance(body, dict) else {}
        return {
            "method": method,
            "path": path,
            "azure": azure,
            "api_version": (query.get("api-version") or [""])[0],
            "retry_count": retry_count,
            "client_request_id": self.headers.get("x-client-request-id"),
            "organization": self.headers.get("openai-organization"),
            "project": self.headers.get("openai-project"),
            "auth": "api-key" if self.headers.get("api-key") else ("bearer" if key else ""),
            "model": fields.get("model"),
            "stream": bool(fields.get("stream")),
            "request_id": self.request_id,
        }

    def _control(self, method: str, path: str) -> None:
        if path == "/_simulator/stats" and method == "GET":
            s = self.simulator.stats()
            return self.send_json(
                200,
                {
                    "connections": s.connections,
                    "requests": s.requests,
                    "retry_counts": s.retry_counts,
                },
            )
        if path == "/_simulator/reset" and method == "POST":
            self.simulator.reset()
            self.simulator.admin.reset()
            return self.send_json(200, {"ok": True})
        self.send_json(
            404, {"error": {"message": "unknown control path", "type": "invalid_request_error"}}
        )

    def _headers(self, status: int, content_type: str, extra: dict[str, str] | None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("x-request-id", self.request_id)
        for name, value in (extra or {}).items():
            self.send_header(name, value)

    def send_json(self, status: int, payload: dict, *, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._headers(status, "application/json", extra)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def start_sse(self, *, extra: dict[str, str] | None = None) -> None:
        self._headers(200, "text/event-stream; charset=utf-8", extra)
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        self._chunked = True

    def sse(self, event: dict) -> None:
        data = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def sse_data(self, payload: dict | str) -> None:
        """One server-sent event with no ``event:`` line, as Chat Completions streams them."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        data = f"data: {text}\n\n".encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop_connection(self) -> None:
        """Close the socket mid-reply, as a network failure would."""
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True
