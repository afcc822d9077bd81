"""The service layer over the OpenAI SDK: generate (plain or streamed), list models.

Everything else in the console calls these functions, never the SDK. A call goes:
checks (platformadmin/openai/checks.py: key usable, model allowed, pre-call hook, the
project's RPM/TPM limit, circuit breaker) → decrypt the secret → per-key client on the
shared pool → ``responses.create`` → one finishing path for every outcome (``_finish``:
settle the rate limit → write the usage record → settle the hooks' holds,
e.g. a budget reservation → log once).

Every failure becomes a ``CallOutcome`` with a message a person can act on and the
request ids; nothing raises to the view. Outcomes are logged with both request ids,
never with the secret.
"""

from __future__ import annotations

import asyncio
import functools
import math
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
from asgiref.sync import sync_to_async
from django.views.decorators.debug import sensitive_variables

from keys.services import SecretUnavailable, api_key_secret_for_call
from platformadmin.openai import hooks, ratelimit
from platformadmin.openai.breaker import CircuitBreaker
from platformadmin.openai.checks import (
    NOT_RESPONSES_MODELS,
    REASONING_EFFORTS,
    models_for_project,
    pre_call,
)
from platformadmin.openai.client import (
    CallSettings,
    async_client_for_key,
    client_for_key,
    new_client_request_id,
)
from platformadmin.openai.errors import explain_error, failure_outcome, with_ids
from platformadmin.openai.listing import models_list
from platformadmin.openai.recording import log_outcome, record_call
from platformadmin.openai.results import (
    CallOutcome,
    CallRefused,
    GenerateParams,
    ModelsListResult,
    StreamEvent,
    usage_from_sdk,
)
from usage.pricing import Usage

# The service layer's public names, for the views, tasks, commands and tests.
__all__ = [
    "NOT_RESPONSES_MODELS",
    "REASONING_EFFORTS",
    "SOURCE_PLAYGROUND",
    "CallOutcome",
    "GenerateParams",
    "ModelsListResult",
    "StreamEvent",
    "agenerate_stream",
    "explain_error",
    "generate",
    "generate_stream",
    "models_for_project",
    "models_list",
]

SOURCE_PLAYGROUND = "playground"


def _refused(exc: CallRefused, *, model: str, client_request_id: str) -> CallOutcome:
    return CallOutcome(
        ok=False,
        status="refused",
        model=model,
        message=with_ids(exc.message, None, client_request_id),
        error_type=exc.error_type,
        retry_after=exc.retry_after,
        client_request_id=client_request_id,
    )


def _request_kwargs(params: GenerateParams, client_request_id: str) -> dict:
    kwargs: dict = {
        "model": params.model,
        "input": params.input,
        "store": False,
        "extra_headers": {"X-Client-Request-Id": client_request_id},
    }
    if params.instructions:
        kwargs["instructions"] = params.instructions
    if params.temperature is not None:
        kwargs["temperature"] = params.temperature
    if params.max_output_tokens:
        kwargs["max_output_tokens"] = params.max_output_tokens
    if params.reasoning_effort:
        kwargs["reasoning"] = {"effort": params.reasoning_effort}
    return kwargs


@dataclass
class _Call:
    """A call cleared to go: who makes it, what the checks reserved, and the per-key client."""

    api_key: Any
    project: Any
    params: GenerateParams
    cid: str
    source: str
    reservation: ratelimit.Reservation
    breaker: CircuitBreaker | None
    settings: CallSettings
    client: Any
    started: float
    # What the pre-call hooks hold for this call (a budget reservation), settled in _finish.
    holds: hooks.PreCallResult = field(default_factory=lambda: hooks.PreCallResult(True))

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def failure(self, exc: Exception, *, retries: int | None = None) -> CallOutcome:
        return failure_outcome(
            exc,
            api_key=self.api_key,
            params=self.params,
            settings=self.settings,
            cid=self.cid,
            started=self.started,
            breaker=self.breaker,
            retries=retries,
        )


def _finish(
    call: _Call, outcome: CallOutcome, *, tokens: int | None, response=None, headers=None
) -> CallOutcome:
    """The one way every call that was sent ends: settle the rate limit's tokens, write the
    usage record, settle what the hooks hold (after the record: its cost is in the spend
    before the budget reservation stops counting), log the outcome once."""
    call.reservation.settle(tokens)
    record_call(
        outcome,
        project=call.project,
        api_key=call.api_key,
        response=response,
        headers=headers,
        source=call.source,
    )
    call.holds.settle(outcome)
    log_outcome(outcome, call.api_key)
    return outcome


def _error_headers(exc: Exception):
    return getattr(getattr(exc, "response", None), "headers", None)


@sensitive_variables("secret")
def _begin_call(
    *,
    api_key,
    project,
    params: GenerateParams,
    user,
    cid: str,
    source: str,
    make_client: Callable[..., Any] = client_for_key,
) -> _Call | CallOutcome:
    """The checks before a call, then the per-key client (``make_client``: the sync one, or
    the async stream's). A refusal comes back as a logged ``CallOutcome`` (nothing was
    sent, so nothing is recorded)."""
    try:
        reservation, breaker, holds = pre_call(
            api_key=api_key, project=project, params=params, user=user
        )
    except CallRefused as exc:
        outcome = _refused(exc, model=params.model, client_request_id=cid)
        log_outcome(outcome, api_key)
        return outcome
    settings = CallSettings.for_project(project)
    started = time.monotonic()
    try:
        secret = api_key_secret_for_call(api_key)  # decrypted at call time, never logged
    except SecretUnavailable as exc:
        reservation.settle(0)
        holds.release()
        if breaker is not None:
            breaker.release_probe()
        outcome = _refused(
            CallRefused(f"{exc} No request was sent.", "SecretUnavailable"),
            model=params.model,
            client_request_id=cid,
        )
        log_outcome(outcome, api_key)
        return outcome
    client = make_client(api_key, secret=secret, settings=settings, project=project)
    return _Call(
        api_key,
        project,
        params,
        cid,
        source,
        reservation,
        breaker,
        settings,
        client,
        started,
        holds=holds,
    )


def _answered(call: _Call, response, *, raw, streamed_text: str | None = None) -> CallOutcome:
    """A reply with a terminal status: the circuit closes; finished with its usage. A
    streamed reply (``streamed_text``: the deltas joined) is ok only if completed or
    incomplete; a plain one is ok whatever its status says."""
    usage = usage_from_sdk(response.usage)
    if call.breaker is not None:
        call.breaker.record_success()
    status = response.status or "completed"
    outcome = CallOutcome(
        ok=streamed_text is None or status in ("completed", "incomplete"),
        status=status,
        model=call.params.model,
        text=streamed_text or response.output_text,
        response_id=response.id,
        server_request_id=raw.request_id,
        client_request_id=call.cid,
        retries=raw.retries_taken,
        latency_ms=call.elapsed_ms(),
        usage=usage,
        message=_incomplete_message(response),
    )
    return _finish(
        call,
        outcome,
        tokens=usage.total_tokens if usage else None,
        response=response,
        headers=raw.headers,
    )


def generate(
    *, api_key, project, params: GenerateParams, user=None, source: str = SOURCE_PLAYGROUND
) -> CallOutcome:
    """One non-streamed ``responses.create``; every outcome recorded and explained."""
    cid = new_client_request_id()
    call = _begin_call(
        api_key=api_key, project=project, params=params, user=user, cid=cid, source=source
    )
    if isinstance(call, CallOutcome):
        return call
    try:
        raw = call.client.responses.with_raw_response.create(**_request_kwargs(params, cid))
        response = raw.parse()
    except openai.APIError as exc:
        return _finish(call, call.failure(exc), tokens=0, headers=_error_headers(exc))
    return _answered(call, response, raw=raw)


def _incomplete_message(response) -> str:
    details = getattr(response, "incomplete_details", None)
    if getattr(response, "status", None) == "incomplete" and details is not None:
        if details.reason == "max_output_tokens":
            return "The reply stopped at the max output tokens limit; raise it for a longer answer."
        return f"The reply is incomplete ({details.reason})."
    return ""


class _Upstream:
    """The SDK's blocking stream read on a thread of its own, handed over through a queue.

    ``responses.create`` blocks until the response headers arrive (a slow or busy model:
    seconds, up to the project's timeout) and a reasoning model may think a long time
    before its first delta. Read here, the generator is never stuck inside the SDK: it
    wakes every ``heartbeat`` seconds and can notice a Stop at any moment. This thread
    never touches the database; ``stop`` makes it close the HTTP response (also one
    that arrives after the Stop) and end. The sync path (WSGI, workers); ASGI uses
    ``_AsyncUpstream``.
    """

    def __init__(self, create: Callable[[], Any]):
        self.items: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        threading.Thread(
            target=self._run, args=(create,), name="openai-stream", daemon=True
        ).start()

    def stop(self) -> None:
        self.cancel.set()

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


class _AsyncUpstream:
    """``_Upstream`` for the event loop: ``AsyncOpenAI``'s stream read by a task, handed
    over through an ``asyncio.Queue`` (no thread). ``stop`` cancels the task, which closes
    the HTTP response (or abandons the request not yet answered)."""

    def __init__(self, create: Callable[[], Awaitable[Any]]):
        self.items: asyncio.Queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(create), name="openai-stream")

    async def _run(self, create: Callable[[], Awaitable[Any]]) -> None:
        stream = None
        try:
            try:
                raw = await create()
                stream = raw.parse()
            except openai.APIError as exc:
                self.items.put_nowait(("create_error", exc))
                return
            self.items.put_nowait(("opened", raw))
            try:
                async for event in stream:
                    self.items.put_nowait(("event", event))
            except openai.APIError as exc:
                self.items.put_nowait(("stream_error", exc))
                return
            self.items.put_nowait(("end", None))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the generator and re-raised there, never lost
            self.items.put_nowait(("crash", exc))
        finally:
            if stream is not None:
                await stream.close()

    def stop(self) -> None:
        self._task.cancel()


@dataclass
class _StreamSoFar:
    """What a stream has delivered: the raw response once open, the text parts, the ids."""

    raw: Any = None
    parts: list[str] = field(default_factory=list)
    response_id: str | None = None
    final: Any = None

    @property
    def rid(self) -> str | None:
        return self.raw.request_id if self.raw is not None else None

    @property
    def retries(self) -> int:
        return self.raw.retries_taken if self.raw is not None else 0

    @property
    def headers(self):
        return self.raw.headers if self.raw is not None else None

    def fill_partial(self, outcome: CallOutcome, params: GenerateParams) -> None:
        """What is known of a stream cut short (see generate_stream)."""
        outcome.status = "incomplete"
        outcome.text = "".join(self.parts)
        outcome.response_id = self.response_id
        prompt = max(1, math.ceil(len((params.instructions or "") + params.input) / 4))
        outcome.usage = Usage(
            input_tokens=prompt,
            output_tokens=len(self.parts),
            total_tokens=prompt + len(self.parts),
        )
        outcome.usage_estimated = True


def _stopped(call: _Call, so_far: _StreamSoFar) -> CallOutcome:
    """A Stop (the button, or the reader gone; the caller stopped the upstream): recorded
    with what is known."""
    outcome = CallOutcome(
        ok=False,
        status="incomplete",
        model=call.params.model,
        error_type="StreamStopped",
        server_request_id=so_far.rid,
        client_request_id=call.cid,
        retries=so_far.retries,
        latency_ms=call.elapsed_ms(),
    )
    parts = so_far.parts
    before = (
        "before the model answered"
        if so_far.raw is None
        else ("before the first text arrived" if not parts else f"after {len(parts)} text part(s)")
    )
    outcome.message = with_ids(
        f"Stopped {before}: the call is recorded as incomplete"
        f"{' with the text so far' if parts else ''}.",
        so_far.rid,
        call.cid,
    )
    so_far.fill_partial(outcome, call.params)
    if so_far.raw is None and call.breaker is not None:
        # No answer yet, so nothing learned about the upstream: a half-open probe this
        # call held goes back instead of blocking the key until it times out.
        call.breaker.release_probe()
    return _finish(call, outcome, tokens=outcome.usage.total_tokens, headers=so_far.headers)


def _broken(call: _Call, so_far: _StreamSoFar, exc: openai.APIError) -> CallOutcome:
    """A stream that broke after it began: recorded as incomplete with what arrived."""
    outcome = call.failure(exc, retries=so_far.retries)
    outcome.server_request_id = outcome.server_request_id or so_far.rid
    outcome.message = with_ids(
        explain_error(
            exc,
            api_key=call.api_key,
            model=call.params.model,
            settings=call.settings,
            retries=so_far.retries,
        )[0]
        + f" The stream was cut after {len(so_far.parts)} text "
        "part(s); what arrived is kept and recorded as incomplete.",
        outcome.server_request_id,
        call.cid,
    )
    so_far.fill_partial(outcome, call.params)
    return _finish(call, outcome, tokens=outcome.usage.total_tokens, headers=so_far.headers)


def _ended(call: _Call, so_far: _StreamSoFar) -> CallOutcome:
    """The stream's end: answered with its terminal event, or cut short upstream without one."""
    if so_far.final is not None:
        return _answered(call, so_far.final, raw=so_far.raw, streamed_text="".join(so_far.parts))
    outcome = CallOutcome(
        ok=False,
        status="incomplete",
        model=call.params.model,
        error_type="StreamEnded",
        server_request_id=so_far.rid,
        client_request_id=call.cid,
        retries=so_far.retries,
        latency_ms=call.elapsed_ms(),
    )
    outcome.message = with_ids(
        "The stream ended before the final event; the text so far is kept "
        "and recorded as incomplete.",
        so_far.rid,
        call.cid,
    )
    so_far.fill_partial(outcome, call.params)
    # A cut stream is a transient upstream failure: it counts toward opening the circuit
    # (docs/playground.md), it does not prove the upstream healthy.
    if call.breaker is not None:
        call.breaker.record_failure("StreamEnded")
    return _finish(call, outcome, tokens=outcome.usage.total_tokens, headers=so_far.headers)


Finisher = Callable[[], CallOutcome]


def _step(
    call: _Call, so_far: _StreamSoFar, kind: str, value
) -> tuple[StreamEvent | None, Finisher | None]:
    """One item from the upstream (thread or task alike): an event to pass on, or the
    finishing step that ends the call. The finisher writes the usage record, so the sync
    generator calls it and the async one runs it in ``sync_to_async``; nothing else here
    touches the database."""
    if kind == "opened":
        so_far.raw = value
        return StreamEvent("start", client_request_id=call.cid, server_request_id=so_far.rid), None
    if kind == "event":
        etype = getattr(value, "type", "")
        if etype == "response.created":
            so_far.response_id = value.response.id
        elif etype == "response.output_text.delta":
            so_far.parts.append(value.delta)
            return StreamEvent("delta", text=value.delta), None
        elif etype in ("response.completed", "response.incomplete", "response.failed"):
            so_far.final = value.response
        elif etype == "error":
            exc = openai.APIError(
                getattr(value, "message", "stream error"), so_far.raw.http_request, body=None
            )
            return None, functools.partial(_broken, call, so_far, exc)
        return None, None
    if kind == "create_error":
        return None, lambda: _finish(
            call, call.failure(value), tokens=0, headers=_error_headers(value)
        )
    if kind == "stream_error":
        return None, functools.partial(_broken, call, so_far, value)
    if kind == "crash":  # a failure outside the SDK's errors: goes up, the call recorded as stopped
        raise value
    return None, functools.partial(_ended, call, so_far)  # "end"


def _stop_due(last_checked: float, heartbeat: float | None) -> bool:
    return time.monotonic() - last_checked >= (heartbeat or 0.25)


def generate_stream(
    *,
    api_key,
    project,
    params: GenerateParams,
    user=None,
    source: str = SOURCE_PLAYGROUND,
    client_request_id: str | None = None,
    heartbeat: float | None = None,
    stop_requested: Callable[[], bool] | None = None,
    announce: bool = False,
) -> Iterator[StreamEvent]:
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
    caller choose the id (a UUID it already showed); a new one otherwise. With ``announce``
    the first event is ``accepted`` (the id a Stop names), sent once the call is under way,
    so a reader who leaves right after it still leaves a record.

    Every exit ends in ``_finish`` exactly once: the loop runs until an outcome exists, and
    the ``finally`` records a Stop when the consumer left (or a crash went up) without one.
    """
    cid = client_request_id or new_client_request_id()
    call = _begin_call(
        api_key=api_key, project=project, params=params, user=user, cid=cid, source=source
    )
    if isinstance(call, CallOutcome):
        if announce:
            yield StreamEvent("accepted", client_request_id=cid)
        yield StreamEvent("done", outcome=call, client_request_id=cid)
        return
    upstream = _Upstream(
        lambda: call.client.responses.with_raw_response.create(
            stream=True, **_request_kwargs(params, cid)
        )
    )
    so_far = _StreamSoFar()
    outcome: CallOutcome | None = None
    checked = time.monotonic()
    try:
        if announce:
            yield StreamEvent("accepted", client_request_id=cid)
        while outcome is None:
            if stop_requested is not None and _stop_due(checked, heartbeat):
                checked = time.monotonic()
                if stop_requested():
                    upstream.stop()
                    outcome = _stopped(call, so_far)
                    break
            try:
                kind, value = upstream.items.get(timeout=heartbeat)
            except queue.Empty:
                yield StreamEvent("waiting", client_request_id=cid, server_request_id=so_far.rid)
                continue
            event, finisher = _step(call, so_far, kind, value)
            if finisher is not None:
                upstream.stop()
                outcome = finisher()
            elif event is not None:
                yield event
    finally:
        upstream.stop()
        if (
            outcome is None
        ):  # the consumer stopped reading (the browser left, at any moment) or a crash
            _stopped(call, so_far)
    yield StreamEvent("done", outcome=outcome, client_request_id=cid, server_request_id=so_far.rid)


async def agenerate_stream(
    *,
    api_key,
    project,
    params: GenerateParams,
    user=None,
    source: str = SOURCE_PLAYGROUND,
    client_request_id: str | None = None,
    heartbeat: float | None = None,
    stop_requested: Callable[[], Awaitable[bool]] | None = None,
    announce: bool = False,
) -> AsyncIterator[StreamEvent]:
    """``generate_stream`` on ``AsyncOpenAI`` for an ASGI server: the same checks, events,
    Stop semantics and finishing path (``_begin_call``, ``_step``, ``_stopped``), the
    database work in ``sync_to_async``, the upstream read by a task on the event loop,
    so no thread waits on the model. ``stop_requested`` is awaited.
    """
    cid = client_request_id or new_client_request_id()
    make_client = functools.partial(async_client_for_key, loop=asyncio.get_running_loop())
    call = await sync_to_async(_begin_call)(
        api_key=api_key,
        project=project,
        params=params,
        user=user,
        cid=cid,
        source=source,
        make_client=make_client,
    )
    if isinstance(call, CallOutcome):
        if announce:
            yield StreamEvent("accepted", client_request_id=cid)
        yield StreamEvent("done", outcome=call, client_request_id=cid)
        return
    upstream = _AsyncUpstream(
        lambda: call.client.responses.with_raw_response.create(
            stream=True, **_request_kwargs(params, cid)
        )
    )
    so_far = _StreamSoFar()
    outcome: CallOutcome | None = None
    checked = time.monotonic()
    try:
        if announce:
            yield StreamEvent("accepted", client_request_id=cid)
        while outcome is None:
            if stop_requested is not None and _stop_due(checked, heartbeat):
                checked = time.monotonic()
                if await stop_requested():
                    upstream.stop()
                    outcome = await sync_to_async(_stopped)(call, so_far)
                    break
            try:
                kind, value = await asyncio.wait_for(upstream.items.get(), timeout=heartbeat)
            except TimeoutError:
                yield StreamEvent("waiting", client_request_id=cid, server_request_id=so_far.rid)
                continue
            event, finisher = _step(call, so_far, kind, value)
            if finisher is not None:
                upstream.stop()
                outcome = await sync_to_async(finisher)()
            elif event is not None:
                yield event
    finally:
        upstream.stop()
        if outcome is None:  # the reader left (Django cancelled or closed the iterator) or a crash
            await sync_to_async(_stopped)(call, so_far)
    yield StreamEvent("done", outcome=outcome, client_request_id=cid, server_request_id=so_far.rid)
