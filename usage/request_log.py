"""Reads of raw usage records for the request log and its CSV export.

The request log is the one dashboard page that reads ``UsageRecord`` itself (the overview
and drill-downs read rollups). Two rules keep it fast at ten million records:

- **Keyset pagination** on ``(occurred_at desc, id desc)``: a page is "the next 50 rows
  after this position", never ``OFFSET``, and nothing counts the range (``COUNT(*)`` over
  30 days of records is the query that takes a database down).
- **Every filter rides an index** (migration 0006): the scope (organization, or a project)
  leads an index that also holds ``(occurred_at, id)``; a key filter has its own such index;
  an id search is an equality on the ``(project, response_id)`` unique key or on the
  partial indexes of the two request ids.

Callers (``platformadmin/dashboard/request_log.py``) resolve the filter values through
``orgs.access`` first: a ``LogQuery`` only ever holds ids the viewer may see.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core import signing
from django.db.models import Q, QuerySet

from . import rollup
from .models import UsageRecord

PAGE_SIZE = 50
# The CSV reads this many rows per round trip (a server-side cursor on PostgreSQL), so a
# 30-day export at ten million records holds one chunk in memory, never the range.
EXPORT_CHUNK_SIZE = 2000
SEARCH_MAX_LENGTH = 200  # the id columns' max_length: a longer value cannot match

STATUS_COMPLETED = "completed"
STATUS_ERROR = "error"
STATUS_INCOMPLETE = "incomplete"
STATUS_UNPRICED = "unpriced"
STATUS_CHOICES = (
    (STATUS_COMPLETED, "Completed"),
    (STATUS_ERROR, "Errors"),
    (STATUS_INCOMPLETE, "Incomplete (cut short)"),
    (STATUS_UNPRICED, "Unpriced"),
)

_CURSOR_SALT = "usage.request_log.cursor"
OLDER, NEWER = "o", "n"


class CursorError(ValueError):
    """A cursor that this console did not write (edited, cut, or from another install)."""


@dataclass(frozen=True)
class Cursor:
    """A position in the log: the record at ``(occurred_at, pk)`` and which way to read."""

    occurred_at: datetime
    pk: int
    direction: str = OLDER

    def encode(self) -> str:
        """Opaque in the URL: signed, so a hand-made position is refused, not obeyed."""
        # Whole microseconds as an integer (a float timestamp would round them).
        delta = self.occurred_at - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        raw = f"{self.direction}{micros}.{self.pk}"
        signed = signing.Signer(salt=_CURSOR_SALT).sign(raw)
        return base64.urlsafe_b64encode(signed.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        if not value or len(value) > 200:
            raise CursorError("too long or empty")
        try:
            padded = value + "=" * (-len(value) % 4)
            signed = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
            raw = signing.Signer(salt=_CURSOR_SALT).unsign(signed)
            direction, rest = raw[0], raw[1:]
            micros_text, pk_text = rest.split(".")
            micros, pk = int(micros_text), int(pk_text)
            when = _from_micros(micros)
        except (
            binascii.Error,
            UnicodeError,
            signing.BadSignature,
            ValueError,
            IndexError,
            OverflowError,
            OSError,
        ) as exc:
            raise CursorError(str(exc)) from exc
        if direction not in (OLDER, NEWER) or pk <= 0:
            raise CursorError("bad direction or id")
        return cls(occurred_at=when, pk=pk, direction=direction)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True)
class LogQuery:
    """What the log shows: one organization over ``[start, end)``, narrowed by filters.

    ``project_ids`` are the organization's projects this viewer may read (all of them for
    an organization member, only their own for a project member): the scope is applied to
    every query (and lets an id search use the response id's unique key); the filters
    only narrow it further.
    """

    organization_id: int
    start: datetime
    end: datetime
    project_ids: tuple[int, ...]
    project_id: int | None = None
    api_key_id: int | None = None
    model: str = ""
    status: str = ""
    source: str = ""
    search: str = ""


def _search_q(value: str, project_ids: tuple[int, ...]) -> Q:
    """An exact id match in any of the three id columns, each through an index.

    A response id is unique per project: ``project_id IN (...) AND response_id = ?`` is an
    equality on the unique key's columns (so it needs no index of its own); each request
    id has a partial index without the empty values, whose condition is repeated here so
    the planner sees that the index applies.
    """
    return (
        Q(project_id__in=project_ids, response_id=value)
        | (Q(server_request_id=value) & ~Q(server_request_id=""))
        | (Q(client_request_id=value) & ~Q(client_request_id=""))
    )


def _status_q(status: str) -> Q:
    """The log's status filter, by the rollup's own rule of what counts as an error: an
    incomplete call is shown apart (as on the usage pages), never among the errors."""
    if status == STATUS_COMPLETED:
        return ~rollup.IS_ERROR.q() & ~rollup.incomplete_q()
    if status == STATUS_ERROR:
        return rollup.IS_ERROR.q() & ~rollup.incomplete_q()
    if status == STATUS_INCOMPLETE:
        return rollup.incomplete_q()
    if status == STATUS_UNPRICED:
        return rollup.IS_UNPRICED.q()
    raise ValueError(f"unknown status filter {status!r}")


def request_log_records(*, query: LogQuery) -> QuerySet[UsageRecord]:
    """The records of the view, unordered and unpaginated (both come next)."""
    qs = UsageRecord.objects.filter(
        organization_id=query.organization_id,
        occurred_at__gte=query.start,
        occurred_at__lt=query.end,
    )
    qs = qs.filter(project_id__in=query.project_ids)
    if query.project_id is not None:
        qs = qs.filter(project_id=query.project_id)
    if query.api_key_id is not None:
        qs = qs.filter(api_key_id=query.api_key_id)
    if query.model:
        qs = qs.filter(model=query.model)
    if query.source:
        qs = qs.filter(source=query.source)
    if query.status:
        qs = qs.filter(_status_q(query.status))
    if query.search:
        qs = qs.filter(_search_q(query.search, query.project_ids))
    return qs


# What a log row shows: the key's name and hint, never its sealed secret.
_ROW_FIELDS = (
    "id",
    "occurred_at",
    "project_id",
    "project__name",
    "project__public_id",
    "api_key_id",
    "api_key__name",
    "api_key__hint",
    "api_key__public_id",
    "source",
    "model",
    "service_tier",
    "status",
    "error_type",
    "response_id",
    "server_request_id",
    "client_request_id",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost",
    "latency_ms",
    "retries",
)


@dataclass
class LogPage:
    """One page of the log, newest first, with the cursors of its neighbours (None when
    there is nothing that way)."""

    rows: list[dict] = field(default_factory=list)
    older: Cursor | None = None
    newer: Cursor | None = None
    is_first: bool = True  # read without a cursor (the newest records)


def _after(cursor: Cursor) -> Q:
    """Rows strictly past ``cursor`` in its direction, on ``(occurred_at, id)``.

    The extra ``occurred_at <=`` (or ``>=``) bound is implied by the OR, but spelled out it
    becomes an index condition, so the scan starts at the cursor instead of filtering
    from the range's edge.
    """
    t, pk = cursor.occurred_at, cursor.pk
    if cursor.direction == OLDER:
        return Q(occurred_at__lte=t) & (Q(occurred_at__lt=t) | Q(id__lt=pk))
    return Q(occurred_at__gte=t) & (Q(occurred_at__gt=t) | Q(id__gt=pk))


def _rows(qs: QuerySet, *, newest_first: bool, limit: int) -> list[dict]:
    order = ("-occurred_at", "-id") if newest_first else ("occurred_at", "id")
    return list(qs.order_by(*order).values(*_ROW_FIELDS)[:limit])


def _position(row: dict, direction: str) -> Cursor:
    return Cursor(occurred_at=row["occurred_at"], pk=row["id"], direction=direction)


def request_log_page(
    *, query: LogQuery, cursor: Cursor | None = None, size: int = PAGE_SIZE
) -> LogPage:
    """One page: one query (``size + 1`` rows tell whether there is more that way).

    Reading "newer" walks up in ascending order and turns the rows round; when it reaches
    the top (fewer than a page left), the first page is shown instead, so the newest page
    is always a full one.
    """
    qs = request_log_records(query=query)
    if cursor is None or cursor.direction == OLDER:
        rows = _rows(qs.filter(_after(cursor)) if cursor else qs, newest_first=True, limit=size + 1)
        more = len(rows) > size
        rows = rows[:size]
        return LogPage(
            rows=rows,
            older=_position(rows[-1], OLDER) if more else None,
            newer=_position(rows[0], NEWER) if cursor is not None and rows else None,
            is_first=cursor is None,
        )
    rows = _rows(qs.filter(_after(cursor)), newest_first=False, limit=size + 1)
    if len(rows) <= size:  # the top: show the first page (full) rather than a short one
        return request_log_page(query=query, cursor=None, size=size)
    rows = rows[:size][::-1]
    return LogPage(
        rows=rows,
        older=_position(rows[-1], OLDER),
        newer=_position(rows[0], NEWER),
        is_first=False,
    )


def request_log_record(*, organization_id: int, record_id: int, project_ids=None) -> UsageRecord:
    """One record of the organization (and of ``project_ids`` when given), or
    ``UsageRecord.DoesNotExist``: the id in the URL is internal, so the scope, not the id,
    decides what may be shown."""
    qs = UsageRecord.objects.filter(organization_id=organization_id, pk=record_id)
    if project_ids is not None:
        qs = qs.filter(project_id__in=project_ids)
    return qs.select_related("project").get()


# --- CSV ------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    ("occurred_at", "occurred at"),
    ("project__name", "project"),
    ("api_key__name", "key"),
    ("api_key__hint", "key hint"),
    ("model", "model"),
    ("service_tier", "service tier"),
    ("source", "source"),
    ("status", "status"),
    ("error_type", "error type"),
    ("input_tokens", "input tokens"),
    ("cached_input_tokens", "cached input tokens"),
    ("output_tokens", "output tokens"),
    ("reasoning_tokens", "reasoning tokens"),
    ("total_tokens", "total tokens"),
    ("cost", "cost (USD)"),
    ("latency_ms", "latency (ms)"),
    ("retries", "retries"),
    ("response_id", "response id"),
    ("server_request_id", "server request id"),
    ("client_request_id", "client request id"),
)
TOKEN_COLUMNS = (
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)


@dataclass
class ExportTotals:
    """Sums of the rows streamed so far: exact (``Decimal`` cost, integer tokens)."""

    requests: int = 0
    unpriced_requests: int = 0
    cost: Decimal = Decimal(0)
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_COLUMNS, 0))

    def add(self, row: tuple) -> None:
        self.requests += 1
        cost = row[_COST_AT]
        if cost is None:
            self.unpriced_requests += 1
        else:
            self.cost += cost
        tokens = self.tokens
        for name, at in _TOKENS_AT:
            tokens[name] += row[at]


_NAMES = [name for name, _ in EXPORT_COLUMNS]
_COST_AT = _NAMES.index("cost")
_TOKENS_AT = tuple((name, _NAMES.index(name)) for name in TOKEN_COLUMNS)


def request_log_export_rows(*, query: LogQuery) -> Iterator[tuple]:
    """Every record of the view, newest first, as tuples in ``EXPORT_COLUMNS`` order,
    read in chunks (constant memory whatever the range)."""
    qs = request_log_records(query=query).order_by("-occurred_at", "-id")
    names = [name for name, _ in EXPORT_COLUMNS]
    return qs.values_list(*names).iterator(chunk_size=EXPORT_CHUNK_SIZE)
