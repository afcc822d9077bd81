"""Writes of the usage app: usage records with their rollups, ingestion tokens, retention.

Every response is counted once: records are inserted with ON CONFLICT DO NOTHING on
``(project, response_id)`` and the hourly rollups are increased, in the same
transaction, by exactly the rows that were inserted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError, connection, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from keys.services import api_key_mark_used
from orgs.audit import audit_log

from . import rollup
from .budgets import budget_evaluation_after_commit
from .daily import daily_zone_for_write
from .db import pg_cursor
from .fields import MAX_AMOUNT
from .models import ROLLUP_MODELS, IngestionToken, UsageRecord
from .parsing import (
    FieldError,
    column_length,
    normalize_usage,
    parse_response,
    parse_timestamp,
    ratelimit_subset,
    text,
)
from .pricing import PriceBook, Usage

SOURCES = tuple(UsageRecord.Source.values)


# --- Building records -------------------------------------------------------------


@dataclass
class RecordDraft:
    """One validated record before pricing and insertion: its column values and usage.

    A plain dict rather than a model instance: building 1,000 model instances per
    request costs more than the whole INSERT.
    """

    row: dict[str, Any]
    usage: Usage

    @property
    def response_id(self) -> str | None:
        return self.row["response_id"]

    @property
    def occurred_at(self) -> datetime:
        return self.row["occurred_at"]


MAX_LATENCY_MS = 3_600_000  # one hour: no API call the console records waits longer
MAX_RETRIES = 100  # the SDK retries twice by default; more than 100 is a counting bug


def _clip(value: str | None, field: str, *, allow_empty: bool = True) -> str | None:
    """A string column's value, checked against the column's own ``max_length``.

    Named for its history: it used to cut values to length. A value that does not fit
    is now refused (FieldError naming the field), since a cut id no longer matches the
    response it names.
    """
    return text(value, field, column_length(field), allow_empty=allow_empty)


def _whole(value, field: str, maximum: int, unit: str) -> int:
    """A bounded whole number; booleans are refused (``true`` is not 1 retry)."""
    if type(value) is not int or not 0 <= value <= maximum:
        raise FieldError(field, f"must be a whole number of {unit} between 0 and {maximum}.")
    return value


def build_record(
    *,
    project,
    api_key=None,
    source: str,
    response=None,
    model: str | None = None,
    response_id: str | None = None,
    server_request_id: str | None = "",
    client_request_id: str | None = "",
    latency_ms: int | None = None,
    status: str | None = "completed",
    error_type: str | None = "",
    ratelimit_headers=None,
    service_tier: str | None = None,
    retries: int = 0,
    occurred_at=None,
    usage: Mapping | Usage | None = None,
    now: datetime | None = None,
) -> RecordDraft:
    """Validate and normalize one record (raises FieldError naming the bad field).

    Every string is checked against its column (type, length, no control characters)
    and refused rather than truncated; counts and times are bounded to what a real call
    can produce.
    """
    if source not in SOURCES:
        raise FieldError("source", f"must be one of {', '.join(SOURCES)}.")
    parsed = parse_response(response) if response is not None else None
    model = _clip(model, "model", allow_empty=False) or (parsed.model if parsed else None)
    if not model:
        raise FieldError(
            "model",
            "is required: the response's 'model', or 'model' beside it "
            "for a report without a response (e.g. an error).",
        )
    response_id = _clip(response_id, "response_id", allow_empty=False) or (
        parsed.response_id if parsed else None
    )
    server_request_id = _clip(server_request_id, "server_request_id") or _clip(
        parsed.server_request_id if parsed else "", "server_request_id"
    )
    client_request_id = _clip(client_request_id, "client_request_id") or ""
    status = _clip(status, "status", allow_empty=False) or "completed"
    error_type = _clip(error_type, "error_type") or ""
    if service_tier is not None:
        service_tier = _clip(service_tier, "service_tier", allow_empty=False)
    if isinstance(usage, Usage):
        norm = usage
    elif usage is not None:
        norm = normalize_usage(usage)
    else:
        norm = (parsed.usage if parsed else None) or Usage()
    # A response's own status is the truth (an "incomplete" response is not "completed").
    if parsed and parsed.status and status == "completed":
        status = parsed.status
    if error_type and status == "completed":
        status = "error"
    if latency_ms is not None:
        latency_ms = _whole(latency_ms, "latency_ms", MAX_LATENCY_MS, "milliseconds")
    retries = _whole(retries, "retries", MAX_RETRIES, "retries")
    when = parse_timestamp(occurred_at, "occurred_at") if occurred_at is not None else None
    when = when or (parsed.occurred_at if parsed else None) or now or timezone.now()
    tier = service_tier if service_tier is not None else (parsed.service_tier if parsed else None)
    row = {
        "organization_id": project.organization_id,
        "project_id": project.pk,
        "api_key_id": api_key.pk if api_key is not None else None,
        "source": source,
        "model": model,
        "response_id": response_id,
        "server_request_id": server_request_id,
        "client_request_id": client_request_id,
        "input_tokens": norm.input_tokens,
        "cached_input_tokens": norm.cached_input_tokens,
        "output_tokens": norm.output_tokens,
        "reasoning_tokens": norm.reasoning_tokens,
        "total_tokens": norm.total_tokens,
        "cost": None,
        "service_tier": tier or "",
        "latency_ms": latency_ms,
        "status": status,
        "error_type": error_type,
        "ratelimit_headers": ratelimit_subset(ratelimit_headers),
        "retries": retries,
        "occurred_at": when,
    }
    return RecordDraft(row, norm)


# --- Inserting records and rollups ------------------------------------------------


def _rollup_add(rows: Iterable[dict], zone: tzinfo) -> None:
    """Add these (newly inserted) rows to their hourly and daily rollups: one UPSERT per
    grain (SQLite and other backends; on PostgreSQL the insert statement itself does it,
    see ``_rollup_cte``). The buckets come from the one rollup rule (``usage.rollup``).

    INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n works on PostgreSQL and
    SQLite alike. Buckets are sorted, and the grains written in one order, so concurrent
    writers lock them in the same order (no deadlock), and PostgreSQL re-reads the
    committed row before adding, so concurrent increments are never lost.
    """
    rows = list(rows)
    for grain in rollup.GRAINS:
        _rollup_upsert(rollup.fold(rows, grain, zone), grain)


def _rollup_upsert(buckets: dict[tuple, tuple[int, list]], grain: rollup.Grain) -> None:
    if not buckets:
        return
    ops = connection.ops
    qn = ops.quote_name
    model = ROLLUP_MODELS[grain.name]
    table = qn(model._meta.db_table)
    # Integer units of the money field: the database adds them exactly (SQLite too).
    cost_to_db = model._meta.get_field("cost").get_db_prep_save
    bucket_to_db = model._meta.get_field(grain.column).get_db_prep_save
    columns = [grain.column, "organization_id", "project_id", "key_slot", "model"]
    columns += rollup.COUNTER_NAMES
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    params: list[Any] = []
    for key in sorted(buckets):
        project_id, key_slot, model_id, bucket = key
        org_id, numbers = buckets[key]
        if numbers[rollup.COST] > MAX_AMOUNT:
            raise FieldError("usage", ROLLUP_TOO_LARGE)
        numbers[rollup.COST] = cost_to_db(numbers[rollup.COST], connection)
        params += [
            bucket_to_db(bucket, connection),
            org_id,
            project_id,
            key_slot,
            model_id,
            *numbers,
        ]
    sql = (
        f"INSERT INTO {table} ({', '.join(qn(c) for c in columns)}) VALUES "
        + ", ".join([placeholders] * len(buckets))
        + _rollup_conflict(table, grain)
        + f" RETURNING {qn('cost')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        # SQLite turns an integer sum past 64 bits into REAL without an error: refuse it
        # (the transaction rolls back) instead of storing an inexact amount.
        if any(type(cost) is not int for (cost,) in cursor.fetchall()):
            raise FieldError("usage", ROLLUP_TOO_LARGE)


def _rollup_conflict(table: str, grain: rollup.Grain = rollup.HOUR) -> str:
    """ON CONFLICT clause adding every counter to the stored bucket (both backends)."""
    qn = connection.ops.quote_name
    updates = ", ".join(
        f"{qn(c)} = {table}.{qn(c)} + excluded.{qn(c)}" for c in rollup.COUNTER_NAMES
    )
    return (
        f" ON CONFLICT ({qn('project_id')}, {qn('key_slot')}, {qn('model')}, {qn(grain.column)})"
        f" DO UPDATE SET {updates}"
    )


ROLLUP_TOO_LARGE = (
    f"this hour's (or day's) total cost for the project, key and model would exceed "
    f"{MAX_AMOUNT} USD, the most a rollup holds; check the token counts."
)
NUMERIC_VALUE_OUT_OF_RANGE = "22003"  # PostgreSQL's SQLSTATE for a bigint past 64 bits


def _price(drafts: list[RecordDraft], organization_id: int) -> None:
    """Set each draft's cost; FieldError for a cost no money column can hold."""
    book = PriceBook(organization_id=organization_id, model_ids={d.row["model"] for d in drafts})
    for d in drafts:
        r = d.row
        cost = book.cost(
            model_id=r["model"],
            usage=d.usage,
            when=r["occurred_at"],
            service_tier=r["service_tier"],
        )
        if cost is not None and cost > MAX_AMOUNT:
            raise FieldError(
                "usage",
                f"these token counts cost {cost} USD at this model's price, more than "
                f"the {MAX_AMOUNT} USD a record can hold; check the token counts.",
            )
        r["cost"] = cost


# The one definition of the inserted columns, in insert order: each column with its
# PostgreSQL type (the element type of its unnest() array; MoneyField is integer units).
# Both the PostgreSQL statement and the portable INSERT ... VALUES are built from it.
RECORD_COLUMNS: dict[str, str] = {
    "organization_id": "bigint",
    "project_id": "bigint",
    "api_key_id": "bigint",
    "source": "varchar",
    "model": "varchar",
    "response_id": "varchar",
    "server_request_id": "varchar",
    "client_request_id": "varchar",
    "input_tokens": "bigint",
    "cached_input_tokens": "bigint",
    "output_tokens": "bigint",
    "reasoning_tokens": "bigint",
    "total_tokens": "bigint",
    "cost": "bigint",
    "service_tier": "varchar",
    "latency_ms": "integer",
    "status": "varchar",
    "error_type": "varchar",
    "ratelimit_headers": "jsonb",
    "retries": "smallint",
    "occurred_at": "timestamptz",
    "write_batch": "uuid",
    "created_at": "timestamptz",
}
# The same for every row of a write: PostgreSQL takes them once, not as arrays.
PER_WRITE_COLUMNS = ("write_batch", "created_at")
# Columns Django's field must prepare (integer money units, JSON, aware times, UUID).
PREPARED_COLUMNS = ("cost", "ratelimit_headers", "occurred_at", "write_batch", "created_at")


def _adapters() -> dict[str, Any]:
    """Per-column conversions to database values (Django's own field preparation)."""
    fields = {f: UsageRecord._meta.get_field(f) for f in PREPARED_COLUMNS}
    return {name: (lambda v, f=f: f.get_db_prep_save(v, connection)) for name, f in fields.items()}


def _returning() -> str:
    qn = connection.ops.quote_name
    return f" ON CONFLICT DO NOTHING RETURNING {qn('id')}, {qn('response_id')}"


def _insert_sql_postgresql(
    rows: list[dict], *, with_rollup: bool = False, zone: tzinfo | None = None
) -> tuple[str, list]:
    """INSERT ... SELECT FROM unnest(arrays): one parameter per column, whatever the
    batch size, so the statement stays short (psycopg caches its parsing) and PostgreSQL
    plans it once.

    With ``with_rollup``, the same statement also adds the rows it inserted (its RETURNING
    set, nothing else) to their hourly buckets: a data-modifying CTE, so the rollup is
    computed by PostgreSQL from exactly the new rows, in the same transaction, without a
    second round trip."""
    qn = connection.ops.quote_name
    per_row = [c for c in RECORD_COLUMNS if c not in PER_WRITE_COLUMNS]
    dumps = json.dumps
    cost_to_db = UsageRecord._meta.get_field("cost").get_db_prep_save
    # Placeholders in text order: the per-write values of the select list, then the arrays.
    params: list[Any] = [rows[0][c] for c in RECORD_COLUMNS if c in PER_WRITE_COLUMNS]
    for c in per_row:
        if c == "ratelimit_headers":
            params.append([dumps(r[c]) if r[c] else "{}" for r in rows])
        elif c == "cost":  # Decimal -> integer units, by the field (as the other path does)
            params.append([cost_to_db(r[c], connection) for r in rows])
        else:
            params.append([r[c] for r in rows])
    select = ", ".join(
        f"%s::{t}" if c in PER_WRITE_COLUMNS else f"t.{qn(c)}" for c, t in RECORD_COLUMNS.items()
    )
    arrays = ", ".join(f"%b::{RECORD_COLUMNS[c]}[]" for c in per_row)
    sql = (
        f"INSERT INTO {qn(UsageRecord._meta.db_table)} "
        f"({', '.join(qn(c) for c in RECORD_COLUMNS)}) "
        f"SELECT {select} FROM unnest({arrays}) AS t({', '.join(qn(c) for c in per_row)})"
        + _returning()
    )
    if with_rollup:
        sql = _rollup_cte(sql)
        # The zoned grains' one parameter each (the daily-rollup timezone), in text order.
        params += [getattr(zone, "key", "UTC") for g in rollup.GRAINS if g.zoned]
    return sql, params


def _rollup_cte(insert: str) -> str:
    """The insert wrapped in a CTE that rolls up exactly the rows it returned, into each
    grain's table (hourly and daily: one data-modifying CTE each).

    Aggregates come from the rollup rule (``usage.rollup.COUNTERS``, ``GRAINS``). Buckets
    are upserted in one order (``COLLATE "C"``, the order Python's sort gives the other
    path), and every writer runs this same statement (so the same plan locks the two
    tables in the same order), so concurrent writers never deadlock."""
    qn = connection.ops.quote_name
    returned = insert + ", " + ", ".join(qn(c) for c in rollup.SOURCE_COLUMNS)
    aggregates = ", ".join(c.sql_aggregate() for c in rollup.COUNTERS)
    parts = [f"WITH ins AS ({returned})"]
    for grain in rollup.GRAINS:
        table = qn(ROLLUP_MODELS[grain.name]._meta.db_table)
        columns = [grain.column, "organization_id", "project_id", "key_slot", "model"]
        columns += rollup.COUNTER_NAMES
        parts.append(
            f"roll_{grain.name} AS (INSERT INTO {table} ({', '.join(qn(c) for c in columns)})\n"
            f"  SELECT {grain.sql}, organization_id, project_id,\n"
            f"    COALESCE(api_key_id, {rollup.NO_KEY_SLOT}), model, {aggregates}\n"
            f"  FROM ins GROUP BY 1, organization_id, project_id, 4, model\n"
            f'  ORDER BY project_id, 4, model COLLATE "C", 1\n'
            f" {_rollup_conflict(table, grain)})"
        )
    return ",\n".join(parts) + "\nSELECT id, response_id FROM ins"


def _insert_sql_values(rows: list[dict]) -> tuple[str, list]:
    """Multi-row INSERT ... VALUES, for SQLite (and any other backend)."""
    qn = connection.ops.quote_name
    adapters = _adapters()
    params: list[Any] = []
    for r in rows:
        for c in RECORD_COLUMNS:
            v = r[c]
            conv = adapters.get(c)
            params.append(conv(v) if conv is not None and v is not None else v)
    placeholders = "(" + ", ".join(["%s"] * len(RECORD_COLUMNS)) + ")"
    sql = (
        f"INSERT INTO {qn(UsageRecord._meta.db_table)} "
        f"({', '.join(qn(c) for c in RECORD_COLUMNS)}) VALUES "
        + ", ".join([placeholders] * len(rows))
        + _returning()
    )
    return sql, params


def _insert(drafts: list[RecordDraft]) -> list[tuple[int, dict]]:
    """Price, insert (ON CONFLICT DO NOTHING) and roll up; return (pk, row) of the new rows.

    All drafts belong to one project. Call inside a transaction. ``RETURNING`` lists
    only the rows this statement inserted (PostgreSQL and SQLite alike): a concurrent
    insert of the same response id waits for the other transaction, then conflicts
    and is skipped, so every response is counted, and rolled up, exactly once.
    """
    if not drafts:
        return []
    organization_id = drafts[0].row["organization_id"]
    _price(drafts, organization_id)
    # The timezone the daily rollups are cut in, read FOR SHARE: a concurrent rebuild (a
    # billing timezone change) waits for this batch, or this batch for it (usage.daily).
    zone = daily_zone_for_write(organization_id=organization_id)
    batch = uuid.uuid4()
    now = timezone.now()
    seen: set[str] = set()
    rows: list[dict] = []
    for d in drafts:
        r = d.row
        rid = r["response_id"]
        if rid is not None:
            if rid in seen:
                continue  # the same response twice in one batch counts once
            seen.add(rid)
        r["write_batch"] = batch
        r["created_at"] = now
        rows.append(r)
    # Sorted by response id: concurrent batches take the unique-index locks in one
    # order, so they wait for each other instead of deadlocking.
    rows.sort(key=lambda r: (r["response_id"] is None, r["response_id"] or ""))
    if connection.vendor == "postgresql":
        # One statement: the insert, and the rollup of exactly the rows it inserted.
        sql, params = _insert_sql_postgresql(rows, with_rollup=True, zone=zone)
        try:
            with connection.wrap_database_errors, pg_cursor() as cursor:
                cursor.execute(sql, params)
                returned = cursor.fetchall()
        except DataError as exc:  # a rollup's cost past 64 bits (each record is checked)
            if getattr(exc.__cause__, "sqlstate", None) != NUMERIC_VALUE_OUT_OF_RANGE:
                raise
            raise FieldError("usage", ROLLUP_TOO_LARGE) from exc
        return _inserted(rows, returned)
    sql, params = _insert_sql_values(rows)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    new = _inserted(rows, returned)
    _rollup_add((row for _, row in new), zone)
    return new


def _inserted(rows: list[dict], returned: list[tuple]) -> list[tuple[int, dict]]:
    """(pk, row) of the rows RETURNING named: keyed rows by response id, unkeyed ones in order."""
    by_id = {r["response_id"]: r for r in rows if r["response_id"] is not None}
    unkeyed = iter([r for r in rows if r["response_id"] is None])
    return [(pk, by_id[rid] if rid is not None else next(unkeyed)) for pk, rid in returned]


@transaction.atomic
def usage_record_create(
    *,
    project,
    api_key=None,
    source: str,
    response=None,
    model: str | None = None,
    response_id: str | None = None,
    server_request_id: str = "",
    client_request_id: str = "",
    latency_ms: int | None = None,
    status: str = "completed",
    error_type: str = "",
    ratelimit_headers=None,
    service_tier: str | None = None,
    retries: int = 0,
    occurred_at=None,
    usage: dict | None = None,
) -> tuple[UsageRecord, bool]:
    """Record one model call: a response, an error (no response) or a stream cut short.

    Idempotent on ``(project, response_id)``: a second call with the same response id
    returns the stored record and ``created=False``, and changes no rollup. The hourly
    rollup is updated in the same transaction. Raises ``ValidationError`` naming the
    field on bad input.
    """
    try:
        draft = build_record(
            project=project,
            api_key=api_key,
            source=source,
            response=response,
            model=model,
            response_id=response_id,
            server_request_id=server_request_id,
            client_request_id=client_request_id,
            latency_ms=latency_ms,
            status=status,
            error_type=error_type,
            ratelimit_headers=ratelimit_headers,
            service_tier=service_tier,
            retries=retries,
            occurred_at=occurred_at,
            usage=usage,
        )
    except FieldError as exc:
        raise ValidationError({exc.field: exc.message}) from exc
    if api_key is not None and api_key.project_id != project.pk:
        raise ValidationError({"api_key": "This key belongs to another project."})
    try:
        new = _insert([draft])
    except FieldError as exc:  # a cost too large to store
        raise ValidationError({exc.field: exc.message}) from exc
    if new:
        if api_key is not None:
            api_key_mark_used(api_key=api_key, when=draft.occurred_at)
        budget_evaluation_after_commit(project=project)
        return UsageRecord.objects.get(pk=new[0][0]), True
    return UsageRecord.objects.get(project=project, response_id=draft.response_id), False


@dataclass(frozen=True)
class IngestResult:
    received: int
    created: int
    duplicates: int


@transaction.atomic
def usage_records_ingest(*, project, drafts: list[RecordDraft]) -> IngestResult:
    """Store a validated batch for one project; count what was new and what was a replay."""
    new = _insert(drafts)
    if new:  # a replay changes no spend: nothing to evaluate
        budget_evaluation_after_commit(project=project)
    return IngestResult(received=len(drafts), created=len(new), duplicates=len(drafts) - len(new))


# --- Ingestion tokens ---------------------------------------------------------------

TOKEN_PREFIX = "ingest_"
PREFIX_LENGTH = len(TOKEN_PREFIX) + 12


def _token_key() -> bytes:
    return (settings.SECRET_FINGERPRINT_KEY or ("ingestion-token:" + settings.SECRET_KEY)).encode()


@sensitive_variables("token")
def token_digest(token: str) -> str:
    """HMAC-SHA256 of the whole token (the only form it is stored in)."""
    return hmac.new(_token_key(), token.encode("utf-8"), hashlib.sha256).hexdigest()


@transaction.atomic
@sensitive_variables("token")
def ingestion_token_create(
    *, project, name: str, actor=None, request=None
) -> tuple[IngestionToken, str]:
    """Create a token; return it with its plaintext, which is never available again."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, e.g. the application using it."})
    if len(name) > 100:
        raise ValidationError({"name": "Use at most 100 characters."})
    prefix = TOKEN_PREFIX + secrets.token_hex(6)
    # Secret handling: the plaintext exists only in this frame and the one-time page.
    token = f"{prefix}_{secrets.token_urlsafe(32)}"
    row = IngestionToken.objects.create(
        project=project, name=name, prefix=prefix, digest=token_digest(token), created_by=actor
    )
    audit_log(
        action="usage.ingestion_token.create",
        actor=actor,
        project=project,
        target=row,
        request=request,
        detail={"name": name, "prefix": prefix},
    )
    return row, token


@transaction.atomic
def ingestion_token_revoke(*, token: IngestionToken, actor=None, request=None) -> IngestionToken:
    """Revoke a token (idempotent); it answers 403 from now on."""
    changed = IngestionToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=actor, updated_at=timezone.now()
    )
    token.refresh_from_db()
    if changed:
        audit_log(
            action="usage.ingestion_token.revoke",
            actor=actor,
            project=token.project,
            target=token,
            request=request,
            detail={"name": token.name, "prefix": token.prefix},
        )
    return token


@sensitive_variables("raw")
def ingestion_token_lookup(raw: str) -> IngestionToken | None:
    """The token row matching ``raw`` (revoked ones included), or None if unknown."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    prefix = raw[:PREFIX_LENGTH]  # "ingest_" + 12 hex; the secret part may contain "_"
    if raw[PREFIX_LENGTH : PREFIX_LENGTH + 1] != "_":
        return None
    # The prefix is only a lookup key; the comparison is on the HMAC, in constant time.
    # Read from the database on every request: a revoked token is refused at once.
    row = IngestionToken.objects.select_related("project").filter(prefix=prefix).first()
    if row is None or not hmac.compare_digest(row.digest, token_digest(raw)):
        return None
    return row


def ingestion_token_touch(*, token: IngestionToken, now: datetime | None = None) -> None:
    """Record use, at most once a minute per token (a write per request would be waste)."""
    now = now or timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        IngestionToken.objects.filter(pk=token.pk).update(last_used_at=now)


# --- Retention ------------------------------------------------------------------------


def retention_cutoff(now: datetime | None = None) -> datetime | None:
    days = getattr(settings, "USAGE_RAW_RETENTION_DAYS", 0) or 0
    if days <= 0:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def usage_records_purge(
    *, now: datetime | None = None, batch_size: int = 5000, max_batches: int | None = None
) -> int:
    """Delete raw records older than the retention period, in batches; rollups stay.

    Each batch is its own short transaction so the table is never locked for long.
    """
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return 0
    deleted = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        ids = list(
            UsageRecord.objects.filter(occurred_at__lt=cutoff)
            .order_by("occurred_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        with transaction.atomic():
            count, _ = UsageRecord.objects.filter(pk__in=ids).delete()
        deleted += count
        batches += 1
    return deleted
