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
- one bad record never keeps the others out:
  * a 400/422 that names records (``error.errors[].index``) drops exactly those
    (``rejected``, each logged with the console's reason) and sends the rest at once;
  * a 400/413/422 that names no record (the body as a whole) splits the batch in halves
    until the record the console refuses is alone; that one is dropped (``rejected``);
  * a 500 (any 5xx but 502/503/504) is retried ``max_attempts`` times with backoff, then
    the batch is split the same way; a record that still fails alone is dropped
    (``poisoned``) once the console has accepted another send since the split, which
    tells a record it cannot take from an outage. Without that evidence it is set aside
    behind its siblings and one probe batch from the queue, and retried;
  * 401/403/429/502/503/504 and network errors mean the console is unreachable or the
    token is wrong: every record would fail alike, so the batch is retried until it goes
    through (the queue bound caps memory meanwhile);
- a record is otherwise dropped only when the queue is full, with a warning and
  ``dropped`` counted;
- replays are harmless: every record carries its response id, and the console is
  idempotent on it (embeddings and errors get a client-generated id, fixed at enqueue
  time, so a retried batch keeps the same ids).

Streams are reported from their final event (``response.completed`` /
``.incomplete`` / ``.failed``; for Chat Completions the chunk that carries usage,
which needs ``stream_options={"include_usage": True}``). A stream that ends without it
is reported as ``status="incomplete"`` with what was seen (model, response id, request
ids, latency): ``error_type="stream_cut"`` when the stream broke or ended early,
``"stream_abandoned"`` when the application stopped reading it (``break``, ``close()``,
leaving the ``with`` block, or dropping it). A Chat Completions stream without
``include_usage`` that finishes normally carries no usage and is not reported.
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
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["UsageReporter", "instrument"]

log = logging.getLogger("usage_reporter")

TERMINAL_EVENTS = {"response.completed", "response.incomplete", "response.failed"}
START_EVENTS = {"response.created", "response.in_progress", "response.queued"}
REFUSED_STATUSES = (400, 413, 422)  # the console cannot take these bytes: never resent as they are
OUTAGE_STATUSES = (
    502,
    503,
    504,
)  # a proxy in front of a console that is down: not the records' fault
CLIENT_REQUEST_ID_HEADER = "x-client-request-id"
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


def _client_request_id(kwargs: Mapping) -> str:
    """The ``X-Client-Request-Id`` the application set in ``extra_headers``, if any."""
    headers = kwargs.get("extra_headers")
    if not isinstance(headers, Mapping):
        return ""
    for name, value in headers.items():
        if (
            isinstance(name, str)
            and name.lower() == CLIENT_REQUEST_ID_HEADER
            and isinstance(value, str)
        ):
            return value
    return ""


def _error_message(payload: Any) -> str:
    """The console's ``error.message`` (for the log line of a refused batch)."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "")
    return str(error or "")


def _named_errors(payload: Any, size: int) -> dict[int, dict]:
    """index -> error for the records a 400 names (``error.errors[].index``)."""
    error = payload.get("error") if isinstance(payload, dict) else None
    errors = error.get("errors") if isinstance(error, dict) else None
    named: dict[int, dict] = {}
    for item in errors if isinstance(errors, list) else ():
        if not isinstance(item, dict):
            continue
        index = item.get("index")
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < size:
            named.setdefault(index, item)
    return named


def _count(payload: Mapping, key: str) -> int:
    """A count from the console's reply, 0 if it is missing or not a number."""
    value = payload.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _record_id(record: Mapping, index: int) -> str:
    """How a log line names a record: its response id, else its place in the batch."""
    response = record.get("response")
    rid = (
        record.get("response_id")
        or (response.get("id") if isinstance(response, Mapping) else None)
        or record.get("id")
    )
    return str(rid) if rid else f"#{index}"


@dataclass
class _Chunk:
    """Records being delivered together.

    ``since`` is the reporter's success count when the chunk was made: a success after it
    is evidence that the console works, so a lone record it keeps failing on is the
    record's fault, not an outage.
    """

    records: list[dict]
    since: int
    attempts: int = 0
    set_aside: bool = False


class UsageReporter:
    """A bounded queue and one sender thread posting batches to ``POST /api/v1/usage``."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        max_queue: int = 10_000,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        shutdown_timeout: float = 5.0,
        register_atexit: bool = True,
        max_attempts: int = 5,
    ) -> None:
        if batch_size < 1 or batch_size > 1000:
            raise ValueError("batch_size must be between 1 and 1000 (the API's limit).")
        if max_attempts < 1:
            raise ValueError(
                "max_attempts must be 1 or more (sends of a batch on a 500 before it is split)."
            )
        self.url = url
        self._token = token  # secret: sent only in the Authorization header
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.shutdown_timeout = shutdown_timeout
        self.max_attempts = max_attempts
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        # Chunks taken from the queue and not yet delivered or dropped (sender thread only).
        self._work: deque[_Chunk] = deque()
        self._held = 0
        self._successes = 0
        self._streak = 0  # consecutive failed sends: the backoff exponent
        # Counters (read them to monitor the reporter).
        self.sent = 0  # records the console acknowledged (created or duplicate)
        self.created = 0
        self.duplicates = 0
        self.dropped = 0  # refused because the queue was full
        self.rejected = 0  # refused by the console as invalid (400/413/422): retrying cannot help
        self.poisoned = (
            0  # a lone record the console kept failing on (500) while others went through
        )
        self.failed_attempts = 0  # sends that will be retried
        self.reporting_errors = 0  # exceptions while building a record (never raised)
        self._thread = threading.Thread(target=self._run, name="usage-reporter", daemon=True)
        self._thread.start()
        if register_atexit:
            atexit.register(self.close)

    def __repr__(self) -> str:  # never shows the token
        return (
            f"<UsageReporter url={self.url!r} queued={self._queue.qsize()} dropped={self.dropped}>"
        )

    # --- enqueueing (called from the application's threads; never blocks) -------------

    def report(self, record: Mapping) -> bool:
        """Queue one record (the API's record format); False if dropped (queue full)."""
        if self._closing.is_set():
            return False
        record = dict(record)
        if (
            not record.get("response_id")
            and not (record.get("response") or {}).get("id")
            and not record.get("id")
        ):
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

    def report_response(
        self,
        response: Any,
        *,
        latency_ms: int | None = None,
        response_id: str | None = None,
        server_request_id: str = "",
        client_request_id: str = "",
        retries: int = 0,
    ) -> bool:
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

    def report_error(
        self,
        *,
        model: str | None,
        exc: BaseException,
        latency_ms: int | None = None,
        client_request_id: str = "",
    ) -> bool:
        """Queue a failed call (no usage) so the console sees error rates. Never raises."""
        try:
            rid = getattr(exc, "request_id", None)
            return self.report_outcome(
                model=model,
                status="error",
                error_type=type(exc).__name__,
                response_id=f"err_{uuid.uuid4().hex}",
                latency_ms=latency_ms,
                server_request_id=str(rid) if rid else "",
                client_request_id=client_request_id,
            )
        except Exception:  # reporting must never break the application
            self.reporting_errors += 1
            return False

    def report_outcome(
        self,
        *,
        model: str | None,
        status: str,
        error_type: str,
        response_id: str | None = None,
        latency_ms: int | None = None,
        server_request_id: str = "",
        client_request_id: str = "",
    ) -> bool:
        """Queue a call that has no usage to show (an error, a cut stream). Never raises."""
        try:
            if not model:
                return False
            record: dict[str, Any] = {
                # A client-made id, fixed now, so a resent batch stays a replay.
                "response_id": response_id
                or f"{'err' if status == 'error' else 'inc'}_{uuid.uuid4().hex}",
                "model": str(model),
                "status": status,
                "error_type": error_type,
            }
            if server_request_id:
                record["server_request_id"] = str(server_request_id)
            if client_request_id:
                record["client_request_id"] = str(client_request_id)
            if latency_ms is not None:
                record["latency_ms"] = max(0, int(latency_ms))
            return self.report(record)
        except Exception:  # reporting must never break the application
            self.reporting_errors += 1
            return False

    # --- sending (the background thread) ------------------------------------------------

    @property
    def pending(self) -> int:
        """Records queued or being sent."""
        return self._queue.qsize() + self._held

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
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._token}",
                "User-Agent": "console-usage-reporter/1",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
            try:
                payload = json.loads(raw or b"{}")
            except (
                ValueError
            ):  # a 2xx is a 2xx: the records are stored, only the counts are unknown
                payload = {}
            return status, payload if isinstance(payload, dict) else {}, None
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
            return err.code, payload if isinstance(payload, dict) else {}, wait

    def _hold(self, chunk: _Chunk, *, front: bool = False) -> None:
        if front:
            self._work.appendleft(chunk)
        else:
            self._work.append(chunk)
        self._held += len(chunk.records)

    def _release(self, records: list[dict]) -> None:
        """These records are settled (delivered or dropped): ``flush`` stops waiting on them."""
        self._held -= len(records)
        for _ in records:
            self._queue.task_done()

    def _split(self, chunk: _Chunk, *, attempts: int) -> None:
        """Replace the chunk at the front by its two halves (first half first)."""
        self._work.popleft()
        self._held -= len(chunk.records)
        middle = len(chunk.records) // 2
        for part in (chunk.records[middle:], chunk.records[:middle]):
            self._hold(_Chunk(part, since=self._successes, attempts=attempts), front=True)

    def _run(self) -> None:
        while True:
            if not self._work:
                batch = self._take_batch()
                if not batch:
                    if self._closing.is_set() and self._queue.empty():
                        return
                    self._wake.clear()
                    continue
                self._hold(_Chunk(batch, since=self._successes))
            chunk = self._work[0]
            try:
                status, payload, retry_after = self._post(chunk.records)
            except Exception as exc:  # connection refused, timeout, DNS... (retried below)
                status, payload, retry_after = 0, {"error": str(exc)}, None
            if 200 <= status < 300:
                self._delivered(chunk, payload)
                continue
            if status in REFUSED_STATUSES:
                self._refused(chunk, status, payload)
                continue
            self.failed_attempts += 1
            if status >= 500 and status not in OUTAGE_STATUSES:
                # Maybe a record the console cannot take: a bounded number of tries, then isolate it.
                chunk.attempts += 1
                if chunk.attempts >= self.max_attempts and self._isolate(chunk, status, payload):
                    continue
            # 401/403 (token problem), 429, 502-504, network: keep the batch and retry.
            if not self._back_off(status, retry_after):
                return

    def _delivered(self, chunk: _Chunk, payload: dict) -> None:
        self._work.popleft()
        self.sent += len(chunk.records)
        self.created += _count(payload, "created")
        self.duplicates += _count(payload, "duplicates")
        self._successes += 1
        self._streak = 0
        self._release(chunk.records)

    def _refused(self, chunk: _Chunk, status: int, payload: dict) -> None:
        """A 400/413/422: drop exactly the records named, or split until the bad one is alone."""
        named = _named_errors(payload, len(chunk.records)) if status != 413 else {}
        if named:
            for i, item in sorted(named.items()):
                log.warning(
                    "usage reporter: record %s rejected (%s): %s %s",
                    _record_id(chunk.records[i], i),
                    status,
                    item.get("field", ""),
                    item.get("message", ""),
                )
            dropped = [chunk.records[i] for i in sorted(named)]
            chunk.records = [r for i, r in enumerate(chunk.records) if i not in named]
            chunk.attempts = 0
            self.rejected += len(dropped)
            self._release(dropped)
            if not chunk.records:
                self._work.popleft()
            return
        if len(chunk.records) > 1:
            self._split(chunk, attempts=0)  # the body as a whole was refused: look for the record
            return
        self._work.popleft()
        self.rejected += 1
        log.warning(
            "usage reporter: record %s rejected (%s): %s",
            _record_id(chunk.records[0], 0),
            status,
            _error_message(payload),
        )
        self._release(chunk.records)

    def _isolate(self, chunk: _Chunk, status: int, payload: dict) -> bool:
        """After ``max_attempts`` 500s: split, drop a lone record, or set it aside.

        Returns True when the next send may follow at once (something changed).
        """
        if len(chunk.records) > 1:
            # Each half gets one try before it is split again: the search takes ~2·log2(n) sends.
            self._split(chunk, attempts=self.max_attempts - 1)
            return True
        if self._successes > chunk.since:
            # The console took other records since this one was isolated: the record is the problem.
            self._work.popleft()
            self.poisoned += 1
            log.warning(
                "usage reporter: record %s dropped after %d server errors (%s) while other records "
                "were accepted: %s",
                _record_id(chunk.records[0], 0),
                chunk.attempts,
                status,
                _error_message(payload),
            )
            self._release(chunk.records)
            return True
        # No evidence yet (maybe an outage): let the others go first, and probe with one
        # fresh batch if nothing else is left to try (at most one batch beyond the first).
        chunk.set_aside = True
        self._work.rotate(-1)
        if all(c.set_aside for c in self._work) and self._held <= self.batch_size:
            probe: list[dict] = []
            while len(probe) < self.batch_size:
                try:
                    probe.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if probe:
                self._hold(_Chunk(probe, since=self._successes), front=True)
        return False

    def _back_off(self, status: int, retry_after: float | None) -> bool:
        """Wait before the next send; False when closing and the time is up."""
        delay = min(self.backoff_max, self.backoff_initial * 2 ** min(self._streak, 30))
        delay *= 1 - 0.25 * random.random()
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        self._streak += 1
        if self._streak == 1 or self._streak % 10 == 0:
            log.warning(
                "usage reporter: send failed (%s), retrying in %.1fs", status or "network", delay
            )
        if self._closing.is_set():
            remaining = self._close_deadline - time.monotonic()
            if remaining <= 0:
                return False  # giving up at exit; what is left shows in `pending`
            time.sleep(min(delay, remaining))
        else:
            self._closing.wait(delay)  # close() cuts the wait short
        return True

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


class _StreamWatch:
    """What a stream has shown so far, and its one report (final event, or incomplete)."""

    def __init__(
        self, reporter: UsageReporter, kind: str, kwargs: Mapping, started: float, stream: Any
    ):
        self.reporter = reporter
        self.kind = kind
        self.started = started
        self.stream = stream
        self.model = kwargs.get("model")
        self.response_id: str | None = None
        self.client_request_id = _client_request_id(kwargs)
        self.include_usage = bool((kwargs.get("stream_options") or {}).get("include_usage"))
        self.done = False

    def _server_request_id(self) -> str:
        raw = getattr(self.stream, "response", None)
        headers = getattr(raw, "headers", None)
        return str(headers.get("x-request-id", "") or "") if headers is not None else ""

    def _latency(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def event(self, event: Any) -> None:
        if self.done:
            return
        try:
            if self.kind == "responses":
                kind = getattr(event, "type", None)
                response = getattr(event, "response", None)
                if response is not None:
                    self.response_id = getattr(response, "id", None) or self.response_id
                    self.model = getattr(response, "model", None) or self.model
                if kind in TERMINAL_EVENTS:
                    self.done = True
                    if not self.reporter.report_response(
                        response,
                        latency_ms=self._latency(),
                        server_request_id=self._server_request_id(),
                        client_request_id=self.client_request_id,
                    ):
                        # A failed response may carry no usage: still count the call.
                        error = getattr(response, "error", None)
                        self._report(
                            status=getattr(response, "status", None) or "failed",
                            error_type=str(getattr(error, "code", None) or "response_failed"),
                        )
                elif kind == "error":
                    self.done = True
                    self._report(
                        status="failed",
                        error_type=str(getattr(event, "code", None) or "stream_error"),
                    )
            elif self.kind == "chat":
                self.response_id = getattr(event, "id", None) or self.response_id
                self.model = getattr(event, "model", None) or self.model
                if getattr(event, "usage", None) is not None:
                    self.done = True
                    self.reporter.report_response(
                        event,
                        latency_ms=self._latency(),
                        server_request_id=self._server_request_id(),
                        client_request_id=self.client_request_id,
                    )
                elif not self.include_usage and any(
                    getattr(c, "finish_reason", None) for c in getattr(event, "choices", None) or ()
                ):
                    self.done = True  # finished, but no usage was asked for: nothing to report
        except Exception:  # reporting must never break the application's stream
            self.reporter.reporting_errors += 1

    def end(self, error_type: str) -> None:
        """The stream is over; without its final event, report what is known."""
        if self.done:
            return
        self.done = True
        self._report(status="incomplete", error_type=error_type)

    def _report(self, *, status: str, error_type: str) -> None:
        try:
            self.reporter.report_outcome(
                model=self.model,
                status=status,
                error_type=error_type,
                response_id=self.response_id,
                latency_ms=self._latency(),
                server_request_id=self._server_request_id(),
                client_request_id=self.client_request_id,
            )
        except Exception:  # reporting must never break the application's stream
            self.reporter.reporting_errors += 1


class _WatchedStream:
    """What the sync and async stream wrappers share: the wrapped stream, its watch, the
    count kept when the stream is dropped, every other attribute passed through."""

    def __init__(self, stream: Any, watch: _StreamWatch):
        self._stream = stream
        self._watch = watch
        self._iterator = None

    def __del__(self):
        # Dropped unread (or half read): still count the call. Never raises, even at exit.
        watch = self.__dict__.get("_watch")
        if watch is not None:
            watch.end("stream_abandoned")

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _SyncStream(_WatchedStream):
    """Iterates a stream unchanged; reports its final event, or that it ended without one."""

    def _events(self):
        try:
            for event in self._stream:
                self._watch.event(event)
                yield event
        except GeneratorExit:  # the application stopped iterating (break, or dropped the iterator)
            self._watch.end("stream_abandoned")
            raise
        except BaseException:  # the connection failed mid-stream: the application sees the error
            self._watch.end("stream_cut")
            raise
        self._watch.end("stream_cut")  # ended cleanly but before the final event

    def __iter__(self):
        return self._events()

    def __next__(self):
        if self._iterator is None:
            self._iterator = self._events()
        return next(self._iterator)

    def close(self) -> None:
        self._watch.end("stream_abandoned")
        self._stream.close()

    def __enter__(self):
        self._stream.__enter__()
        return self

    def __exit__(self, *exc):
        self._watch.end("stream_abandoned")
        return self._stream.__exit__(*exc)


class _AsyncStream(_WatchedStream):
    """The ``async`` twin of ``_SyncStream``."""

    async def _events(self):
        try:
            async for event in self._stream:
                self._watch.event(event)
                yield event
        except GeneratorExit:  # aclose() by the application or the event loop's finalizer
            self._watch.end("stream_abandoned")
            raise
        except BaseException:  # the connection failed mid-stream (or the task was cancelled)
            self._watch.end("stream_cut")
            raise
        self._watch.end("stream_cut")

    def __aiter__(self):
        return self._events()

    async def __anext__(self):
        if self._iterator is None:
            self._iterator = self._events()
        return await self._iterator.__anext__()

    async def close(self) -> None:
        self._watch.end("stream_abandoned")
        await self._stream.close()

    async def __aenter__(self):
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc):
        self._watch.end("stream_abandoned")
        return await self._stream.__aexit__(*exc)


def _is_async(method: Any) -> bool:
    """Whether an SDK method returns a coroutine.

    ``AsyncCompletions.create`` is wrapped by a plain function (``required_args``), so
    ``inspect.iscoroutinefunction`` says False for it; the function it wraps tells.
    """
    return inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(
        inspect.unwrap(method)
    )


def _wrap(reporter: UsageReporter, original, kind: str):
    is_async = _is_async(original)

    def failed(exc: BaseException, started: float, kwargs: Mapping) -> None:
        reporter.report_error(
            model=kwargs.get("model"),
            exc=exc,
            latency_ms=int((time.monotonic() - started) * 1000),
            client_request_id=_client_request_id(kwargs),
        )

    def after(result, started: float, kwargs: Mapping):
        try:
            if kwargs.get("stream"):
                watch = _StreamWatch(reporter, kind, kwargs, started, result)
                return (_AsyncStream if is_async else _SyncStream)(result, watch)
            latency = int((time.monotonic() - started) * 1000)
            rid = f"emb_{uuid.uuid4().hex}" if kind == "embeddings" else None
            reporter.report_response(
                result,
                latency_ms=latency,
                response_id=rid,
                client_request_id=_client_request_id(kwargs),
            )
        except Exception:  # reporting must never break the application: hand back the result as is
            reporter.reporting_errors += 1
        return result

    if is_async:

        @functools.wraps(original)
        async def async_wrapper(*args, **kwargs):
            started = time.monotonic()
            try:
                result = await original(*args, **kwargs)
            except Exception as exc:
                failed(exc, started, kwargs)
                raise
            return after(result, started, kwargs)

        return async_wrapper

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        try:
            result = original(*args, **kwargs)
        except Exception as exc:
            failed(exc, started, kwargs)
            raise
        return after(result, started, kwargs)

    return wrapper


INSTRUMENTED = (
    ("responses", "responses"),
    ("chat.completions", "chat"),
    ("embeddings", "embeddings"),
)


def instrument(client, reporter: UsageReporter):
    """Report every ``responses.create``, ``chat.completions.create`` and
    ``embeddings.create`` of this ``OpenAI`` / ``AsyncOpenAI`` client. Returns the client.

    Clients derived later with ``with_options`` are separate objects: instrument them too.
    """
    for path, kind in INSTRUMENTED:
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
