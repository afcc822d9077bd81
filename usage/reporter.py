"""Report the usage of your own OpenAI calls to the console, in the background.

A single file with no dependency beyond the standard library (it never imports
Django), so an application can vendor it. Wrap your client once::

    from openai import OpenAI
    from reporter import UsageReporter, instrument

    reporter = UsageReporter("https://console.example.com/api/v1/usage", token="ingest_…")
    client = instrument(OpenAI(), reporter)
    client.responses.create(model="gpt-5.4-mini", input="Hello")   # reported in the background

What it guarantees:
- the application's call is never blocked or broken: reporting is a non-blocking put
  on a bounded queue, and every reporting error is swallowed (and counted);
- records are sent in batches by one background thread, retried with exponential
  backoff (honouring Retry-After) while the console is down or rate-limits, and flushed
  at exit (``atexit``, bounded by ``shutdown_timeout``);
- a record is dropped only when the queue is full, with a warning and ``dropped``
  counted; nothing accepted into the queue is lost while the process lives;
- replays are harmless: every record carries its response id, and the console is
  idempotent on it (embeddings and errors get a client-generated id, fixed at enqueue
  time, so a retried batch keeps the same ids).

Streams are reported from their final event (``response.completed`` /
``.incomplete`` / ``.failed``; for Chat Completions the chunk that carries usage,
which needs ``stream_options={"include_usage": True}``).
"""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["UsageReporter", "instrument"]

log = logging.getLogger("usage_reporter")

TERMINAL_EVENTS = {"response.completed", "response.incomplete", "response.failed"}
KEPT_FIELDS = ("id", "object", "model", "status", "service_tier", "created_at", "created", "usage")


def _dump(obj: Any) -> dict | None:
    """A small JSON-able dict of a response: ids, model, tier, time and usage only."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        data = dict(obj)
    else:
        dump = getattr(obj, "model_dump", None)
        if not callable(dump):
            return None
        data = dump(mode="json")
    return {k: data[k] for k in KEPT_FIELDS if k in data and data[k] is not None}


class UsageReporter:
    """A bounded queue and one sender thread posting batches to ``POST /api/v1/usage``."""

    def __init__(
        self, url: str, token: str, *, max_queue: int = 10_000, batch_size: int = 100,
        flush_interval: float = 1.0, timeout: float = 10.0, backoff_initial: float = 0.5,
        backoff_max: float = 30.0, shutdown_timeout: float = 5.0, register_atexit: bool = True,
    ) -> None:
        if batch_size < 1 or batch_size > 1000:
            raise ValueError("batch_size must be between 1 and 1000 (the API's limit).")
        self.url = url
        self._token = token  # secret: sent only in the Authorization header
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.shutdown_timeout = shutdown_timeout
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._in_flight = 0
        # Counters (read them to monitor the reporter).
        self.sent = 0  # records the console acknowledged (created or duplicate)
        self.created = 0
        self.duplicates = 0
        self.dropped = 0  # refused because the queue was full
        self.rejected = 0  # refused by the console as invalid (400): retrying cannot help
        self.failed_attempts = 0  # sends that will be retried
        self.reporting_errors = 0  # exceptions while building a record (never raised)
        self._thread = threading.Thread(target=self._run, name="usage-reporter", daemon=True)
        self._thread.start()
        if register_atexit:
            atexit.register(self.close)

    def __repr__(self) -> str:  # never shows the token
        return f"<UsageReporter url={self.url!r} queued={self._queue.qsize()} dropped={self.dropped}>"

    # --- enqueueing (called from the application's threads; never blocks) -------------

    def report(self, record: Mapping) -> bool:
        """Queue one record (the API's record format); False if dropped (queue full)."""
        if self._closing.is_set():
            return False
        record = dict(record)
        if not record.get("response_id") and not (record.get("response") or {}).get("id") \
                and not record.get("id"):
            record["response_id"] = f"rep_{uuid.uuid4().hex}"
        with self._lock:
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                self.dropped += 1
                dropped = self.dropped
            else:
                dropped = None
        if dropped is not None:
            if dropped == 1 or dropped % 100 == 0:
                log.warning("usage reporter queue full: %d record(s) dropped so far", dropped)
            return False
        if self._queue.qsize() >= self.batch_size:
            self._wake.set()
        return True

    def report_response(self, response: Any, *, latency_ms: int | None = None,
                        response_id: str | None = None, server_request_id: str = "",
                        client_request_id: str = "", retries: int = 0) -> bool:
        """Queue a response (SDK object or dict). Never raises."""
        try:
            dumped = _dump(response)
            if dumped is None or not dumped.get("usage"):
                return False
            record: dict[str, Any] = {"response": dumped}
            if response_id:
                record["response_id"] = response_id
            rid = server_request_id or getattr(response, "_request_id", None) or ""
            if rid:
                record["server_request_id"] = str(rid)
            if client_request_id:
                record["client_request_id"] = client_request_id
            if latency_ms is not None:
                record["latency_ms"] = max(0, int(latency_ms))
            if retries:
                record["retries"] = int(retries)
            return self.report(record)
        except Exception:  # reporting must never break the application
            self.reporting_errors += 1
            log.debug("usage reporter could not build a record", exc_info=True)
            return False

    def report_error(self, *, model: str | None, exc: BaseException, latency_ms: int | None = None) -> bool:
        """Queue a failed call (no usage) so the console sees error rates. Never raises."""
        try:
            if not model:
                return False
            record: dict[str, Any] = {
                "response_id": f"err_{uuid.uuid4().hex}", "model": str(model), "status": "error",
                "error_type": type(exc).__name__,
            }
            rid = getattr(exc, "request_id", None)
            if rid:
                record["server_request_id"] = str(rid)
            if latency_ms is not None:
                record["latency_ms"] = max(0, int(latency_ms))
            return self.report(record)
        except Exception:
            self.reporting_errors += 1
            return False

    # --- sending (the background thread) ------------------------------------------------

    @property
    def pending(self) -> int:
        """Records queued or being sent."""
        return self._queue.qsize() + self._in_flight

    def _take_batch(self) -> list[dict]:
        batch: list[dict] = []
        try:
            batch.append(self._queue.get(timeout=self.flush_interval))
        except queue.Empty:
            return batch
        # Wait briefly for a fuller batch unless asked to flush.
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                if self._wake.is_set() or self._closing.is_set() or time.monotonic() >= deadline:
                    break
                self._wake.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        return batch

    def _post(self, batch: list[dict]) -> tuple[int, dict, float | None]:
        body = json.dumps({"records": batch}, separators=(",", ":")).encode()
        req = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}",
                     "User-Agent": "console-usage-reporter/1"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, json.loads(resp.read() or b"{}"), None
        except urllib.error.HTTPError as err:
            retry_after = err.headers.get("Retry-After") if err.headers else None
            try:
                payload = json.loads(err.read() or b"{}")
            except ValueError:
                payload = {}
            try:
                wait = float(retry_after) if retry_after else None
            except ValueError:
                wait = None
            return err.code, payload, wait

    def _run(self) -> None:
        batch: list[dict] = []
        attempt = 0
        while True:
            if not batch:
                batch = self._take_batch()
                self._in_flight = len(batch)
                if not batch:
                    if self._closing.is_set() and self._queue.empty():
                        return
                    self._wake.clear()
                    continue
            try:
                status, payload, retry_after = self._post(batch)
            except Exception as exc:  # connection refused, timeout, DNS...
                status, payload, retry_after = 0, {"error": str(exc)}, None
            if 200 <= status < 300:
                self.sent += len(batch)
                self.created += int(payload.get("created", 0))
                self.duplicates += int(payload.get("duplicates", 0))
                self._done(batch)
                batch, attempt = [], 0
                continue
            if status in (400, 413, 422):
                # Invalid for the console: retrying the same bytes cannot succeed.
                self.rejected += len(batch)
                log.warning("usage reporter: %d record(s) rejected (%s): %s", len(batch), status,
                            (payload.get("error") or {}).get("message", "") if isinstance(payload, dict) else "")
                self._done(batch)
                batch, attempt = [], 0
                continue
            # 401/403 (token problem), 429, 5xx, network: keep the batch and retry.
            self.failed_attempts += 1
            delay = min(self.backoff_max, self.backoff_initial * 2 ** attempt)
            delay *= 1 - 0.25 * random.random()
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.backoff_max))
            attempt += 1
            if attempt == 1 or attempt % 10 == 0:
                log.warning("usage reporter: send failed (%s), retrying in %.1fs", status or "network", delay)
            if self._closing.is_set():
                remaining = self._close_deadline - time.monotonic()
                if remaining <= 0:
                    return  # giving up at exit; what is left shows in `pending`
                time.sleep(min(delay, remaining))
            else:
                self._closing.wait(delay)  # close() cuts the wait short

    def _done(self, batch: list[dict]) -> None:
        self._in_flight = 0
        for _ in batch:
            self._queue.task_done()

    # --- flushing and shutdown ---------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now; True when nothing is left within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.01)
        return True

    _close_deadline = float("inf")

    def close(self, timeout: float | None = None) -> bool:
        """Flush (at most ``timeout``, default ``shutdown_timeout``) and stop the thread."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        if self._closing.is_set():
            return self.pending == 0
        self._close_deadline = time.monotonic() + timeout
        ok = self.flush(timeout)
        self._closing.set()
        self._wake.set()
        self._thread.join(max(0.0, self._close_deadline - time.monotonic()) + 0.1)
        if not ok:
            log.warning("usage reporter: %d record(s) not sent at exit", self.pending)
        try:
            atexit.unregister(self.close)
        except Exception:
            pass
        return ok


# --- Wrapping a client ---------------------------------------------------------------------------


class _SyncStream:
    """Iterates a stream unchanged; reports the usage of its final event."""

    def __init__(self, stream, on_event):
        self._stream = stream
        self._on_event = on_event

    def __iter__(self):
        for event in self._stream:
            self._on_event(event)
            yield event

    def __enter__(self):
        self._stream.__enter__()
        return self

    def __exit__(self, *exc):
        return self._stream.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _AsyncStream:
    def __init__(self, stream, on_event):
        self._stream = stream
        self._on_event = on_event

    async def __aiter__(self):
        async for event in self._stream:
            self._on_event(event)
            yield event

    async def __aenter__(self):
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc):
        return await self._stream.__aexit__(*exc)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _stream_handler(reporter: UsageReporter, started: float, stream, kind: str):
    done = {"reported": False}

    def on_event(event) -> None:
        if done["reported"]:
            return
        try:
            rid = ""
            raw = getattr(stream, "response", None)
            if raw is not None:
                rid = raw.headers.get("x-request-id", "") if hasattr(raw, "headers") else ""
            latency = int((time.monotonic() - started) * 1000)
            if kind == "responses" and getattr(event, "type", None) in TERMINAL_EVENTS:
                done["reported"] = True
                reporter.report_response(event.response, latency_ms=latency, server_request_id=rid)
            elif kind == "chat" and getattr(event, "usage", None) is not None:
                done["reported"] = True
                reporter.report_response(event, latency_ms=latency, server_request_id=rid)
        except Exception:
            reporter.reporting_errors += 1

    return on_event


def _wrap(reporter: UsageReporter, original, kind: str):
    is_async = inspect.iscoroutinefunction(original)

    def after(result, started, kwargs):
        latency = int((time.monotonic() - started) * 1000)
        if kwargs.get("stream"):
            handler = _stream_handler(reporter, started, result, kind)
            return (_AsyncStream if is_async else _SyncStream)(result, handler)
        rid = f"emb_{uuid.uuid4().hex}" if kind == "embeddings" else None
        reporter.report_response(result, latency_ms=latency, response_id=rid)
        return result

    if is_async:
        @functools.wraps(original)
        async def async_wrapper(*args, **kwargs):
            started = time.monotonic()
            try:
                result = await original(*args, **kwargs)
            except Exception as exc:
                reporter.report_error(model=kwargs.get("model"), exc=exc,
                                      latency_ms=int((time.monotonic() - started) * 1000))
                raise
            return after(result, started, kwargs)

        return async_wrapper

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        try:
            result = original(*args, **kwargs)
        except Exception as exc:
            reporter.report_error(model=kwargs.get("model"), exc=exc,
                                  latency_ms=int((time.monotonic() - started) * 1000))
            raise
        return after(result, started, kwargs)

    return wrapper


def instrument(client, reporter: UsageReporter):
    """Report every ``responses.create``, ``chat.completions.create`` and
    ``embeddings.create`` of this ``OpenAI`` / ``AsyncOpenAI`` client. Returns the client.

    Clients derived later with ``with_options`` are separate objects: instrument them too.
    """
    targets = [("responses", "responses"), ("chat.completions", "chat"), ("embeddings", "embeddings")]
    for path, kind in targets:
        resource = client
        try:
            for part in path.split("."):
                resource = getattr(resource, part)
        except AttributeError:
            continue
        original = resource.create
        if getattr(original, "__usage_reporter__", False):
            continue
        wrapped = _wrap(reporter, original, kind)
        wrapped.__usage_reporter__ = True
        resource.create = wrapped
    return client
