"""Benchmark of the usage dashboard's reads on PostgreSQL (not a test).

    .venv/bin/python benchmarks/dashboard.py --sizes 10k,1m,10m [--keep] [--repeat 30]

For each size N:

1. creates (or, with ``--keep``, reuses when it already holds N records) the database
   ``bench_dashboard_<size>``, migrates it and creates 3 organizations (billing timezones
   UTC, Europe/Berlin, America/New_York), 40 projects, 400 API keys and an owner per
   organization through the ORM;
2. seeds N usage records with one ``COPY`` (psycopg's ``cursor.copy``): 90 days in time
   order, traffic skewed across organizations, projects and keys, 15 models (one of them
   not in the catalog: unpriced, cost NULL), ~3 % errors, ~1 % incomplete streams,
   cached and reasoning tokens, request ids on every row; the indexes are dropped during
   the load and rebuilt after it (what a bulk load does), then VACUUM ANALYZE;
3. builds the rollups from the raw table in SQL with the aggregates of the one rollup rule
   (``usage.rollup.COUNTERS``; the daily ones cut in each organization's billing timezone,
   ``usage.rollup.GRAINS``), exactly what ingestion would have written;
4. measures the server time (Django's test client through the real URL resolver,
   middleware and views, signed in as the largest organization's owner, warm, time
   frozen at the end of the seeded data) of the overview (30 days, and 90 days), a project
   drill-down, a key drill-down, the request log's first page and a search by server
   request id: p50 / p95 over ``--repeat`` requests (and, from a few more requests with
   Django's query capture on, which the timed ones leave off: it formats and times every
   statement, a cost the server does not pay, the queries and their SQL time); and the
   30-day CSV exports (the request log's raw rows, the overview's rollups), once each, in
   a subprocess: seconds, rows, and peak RSS (``ru_maxrss``) against the same process's
   RSS before the export.

Prints one table. Pages whose URL does not exist yet are shown as "n/a".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
sys.path.insert(0, str(ROOT))

DAYS = 90
ORGS = (  # name, slug, billing timezone, share of traffic, projects
    ("Acme", "bench-acme", "America/New_York", 0.6, 20),
    ("Globex", "bench-globex", "Europe/Berlin", 0.3, 12),
    ("Initech", "bench-initech", "UTC", 0.1, 8),
)
KEYS_PER_PROJECT = 10
UNPRICED_MODEL = "ft:gpt-4.1-mini:bench:support-v2"  # not in the catalog: cost NULL
ERROR_TYPES = ("rate_limit_exceeded", "server_error", "invalid_request_error")
RATELIMIT = json.dumps(
    {
        "x-ratelimit-limit-requests": "5000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-reset-requests": "12ms",
    }
)
SIZES = {"k": 1_000, "m": 1_000_000}


def parse_size(text: str) -> int:
    text = text.strip().lower()
    if text[-1:] in SIZES:
        return int(float(text[:-1]) * SIZES[text[-1]])
    return int(text)


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def bench_env(dsn: str, var_dir: str) -> dict[str, str]:
    """The console's environment for a benchmark process (a throwaway key ring: the
    benchmark's keys are fake and its database is dropped or kept only for re-runs)."""
    return {
        **os.environ,
        "DATABASE_URL": dsn,
        "DEBUG": "false",
        "CONSOLE_READ_DOTENV": "false",
        "SECRET_KEY": "benchmark-only-" + "b" * 40,
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        # A fixed, obviously fake ring so a kept database can be read again.
        "FIELD_ENCRYPTION_KEYS": "v1:YmVuY2htYXJrLW9ubHktZmFrZS1rZXktMzJieXRlcyE=",
        "CONSOLE_VAR_DIR": var_dir,
        "CACHE_URL": "locmemcache://",
        "ALLOWED_HOSTS": "testserver",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "platformadmin.settings",
    }


def django_setup() -> None:
    import django

    django.setup()


# --- Seeding (child process, Django set up on the benchmark database) ---------------


def _setup_tenants() -> dict:
    """Organizations, projects, keys and owners through the ORM; their ids for the COPY."""
    from django.contrib.auth import get_user_model

    from keys.services import api_key_create_unaudited
    from orgs.models import Organization, OrganizationMembership, Project

    user_model = get_user_model()
    keys: list[tuple[int, int, int]] = []  # (organization id, project id, key id)
    weights: list[float] = []
    zones: dict[int, str] = {}
    for org_index, (name, slug, tz, share, n_projects) in enumerate(ORGS):
        org = Organization.objects.create(name=name, slug=slug, billing_timezone=tz)
        zones[org.pk] = tz
        owner = user_model.objects.create_user(username=f"owner-{slug}", password=None)
        OrganizationMembership.objects.create(user=owner, organization=org, role="owner")
        # Zipf-like skew: project p gets 1/(p+1) of its organization's traffic, key k of
        # a project 1/(k+1) of the project's.
        p_weights = [1 / (p + 1) for p in range(n_projects)]
        p_total = sum(p_weights)
        for p in range(n_projects):
            project = Project.objects.create(organization=org, name=f"{name} project {p + 1:02d}")
            k_weights = [1 / (k + 1) for k in range(KEYS_PER_PROJECT)]
            k_total = sum(k_weights)
            for k in range(KEYS_PER_PROJECT):
                key = api_key_create_unaudited(
                    organization=org,
                    project=project,
                    name=f"key {k + 1:02d}",
                    secret=f"sk-proj-benchfake{org_index:02d}{p:03d}{k:03d}" + "x" * 24,
                )
                keys.append((org.pk, project.pk, key.pk))
                weights.append(share * p_weights[p] / p_total * k_weights[k] / k_total)
    return {"keys": keys, "weights": weights, "zones": zones}


def _templates(models: list[str], anchor: datetime) -> dict[str, list[tuple]]:
    """Per model, 2048 (usage columns, cost units) combinations priced by the cost engine
    (so costs are what ingestion would have stored)."""
    from usage.fields import money_to_units
    from usage.pricing import PriceBook, Usage

    rng = random.Random(5)
    book = PriceBook(organization_id=None, model_ids=models)
    out: dict[str, list[tuple]] = {}
    for model in models:
        rows = []
        for _ in range(2048):
            inp = int(rng.lognormvariate(6.5, 1.0)) + 1
            cached = rng.choice((0, 0, inp // 4, inp // 2, (inp * 9) // 10))
            outp = int(rng.lognormvariate(5.0, 1.0)) + 1
            reasoning = rng.choice((0, 0, outp // 3, (outp * 2) // 3))
            tier = rng.choice(("default", "default", "default", "flex"))
            usage = Usage(inp, cached, outp, reasoning, inp + outp)
            cost = book.cost(model_id=model, usage=usage, when=anchor, service_tier=tier)
            units = "\\N" if cost is None else str(money_to_units(cost))
            rows.append((inp, cached, outp, reasoning, inp + outp, units, tier))
        out[model] = rows
    return out


def _lines(n: int, tenants: dict, templates: dict, start: datetime, batch: str, created: str):
    """COPY text lines, in time order, in chunks of 20,000 rows."""
    rng = random.Random(11)
    keys = tenants["keys"]
    # A 65,536-slot table turns 16 random bits into a key chosen by its weight.
    total = sum(tenants["weights"])
    slots: list[int] = []
    for i, w in enumerate(tenants["weights"]):
        slots += [i] * max(1, round(w / total * 65536))
    slots = (slots + slots[: 65536 - len(slots)])[:65536] if len(slots) < 65536 else slots[:65536]
    priced = [m for m in templates if m != UNPRICED_MODEL]
    key_models = []
    for i in range(len(keys)):
        m = len(priced)
        mine = [priced[i % m], priced[(i * 5 + 3) % m]]
        mine.append(UNPRICED_MODEL if i % 3 == 0 else priced[(i * 3 + 7) % m])
        key_models.append(mine)
    span = DAYS * 86400
    base = int(start.timestamp())
    last_minute = -1
    prefix = ""
    chunk: list[str] = []
    getrandbits = rng.getrandbits
    for i in range(n):
        at = base + (i * span) // n
        minute = at // 60
        if minute != last_minute:
            last_minute = minute
            prefix = time.strftime("%Y-%m-%d %H:%M", time.gmtime(minute * 60))
        bits = getrandbits(64)
        key_index = slots[bits & 0xFFFF]
        org_id, project_id, key_id = keys[key_index]
        pick = (bits >> 16) & 0xFF  # model: 70 % / 25 % / 5 %
        model = key_models[key_index][0 if pick < 179 else 1 if pick < 243 else 2]
        inp, cached, outp, reasoning, total_tokens, cost, tier = templates[model][
            (bits >> 24) & 0x7FF
        ]
        fate = (bits >> 35) & 0x3FF  # errors ~3 %, incomplete ~1 %
        req = f"req_{getrandbits(96):024x}"
        client = f"cli_{i:010d}" if (bits >> 45) & 3 == 0 else ""
        occurred = f"{prefix}:{at % 60:02d}.{(bits >> 47) & 0xFFFF:06d}+00"
        latency = 150 + ((bits >> 20) & 0x1FFF)
        if fate < 31:
            status, error_type, rid = "failed", ERROR_TYPES[fate % 3], "\\N"
            inp = cached = outp = reasoning = total_tokens = 0
            cost = "0"
        elif fate < 41:
            status, error_type, rid = "incomplete", "stream_interrupted", f"resp_{i:012x}"
        else:
            status, error_type, rid = "completed", "", f"resp_{i:012x}"
        headers = RATELIMIT if fate % 8 == 0 else "{}"
        chunk.append(
            f"{org_id}\t{project_id}\t{key_id}\tingest\t{model}\t{rid}\t{req}\t{client}\t"
            f"{inp}\t{cached}\t{outp}\t{reasoning}\t{total_tokens}\t{cost}\t{tier}\t"
            f"{latency}\t{status}\t{error_type}\t{headers}\t0\t{occurred}\t{batch}\t{created}\n"
        )
        if len(chunk) == 20_000:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


COPY_COLUMNS = (
    "organization_id, project_id, api_key_id, source, model, response_id, server_request_id, "
    "client_request_id, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, "
    "total_tokens, cost, service_tier, latency_ms, status, error_type, ratelimit_headers, "
    "retries, occurred_at, write_batch, created_at"
)


def rollup_tables() -> list[tuple[str, str, str, bool]]:
    """(table, bucket column, its SQL from occurred_at, zoned: the SQL takes the
    organization's daily-rollup timezone) of every rollup grain the one rule maintains
    (``usage.rollup.GRAINS``)."""
    from usage import rollup
    from usage.models import ROLLUP_MODELS

    return [(ROLLUP_MODELS[g.name]._meta.db_table, g.column, g.sql, g.zoned) for g in rollup.GRAINS]


def build_rollups(conn, zones: dict[int, str]) -> None:
    """The rollups from the raw table, in SQL with the aggregates of the one rollup rule
    (``usage.rollup.COUNTERS``; the daily ones cut in each organization's billing
    timezone, ``usage.rollup.GRAINS``), written in time order as ingestion writes them
    (a bucket's row is created when its first record arrives), and the zone of each
    organization's daily rollups as its first batch would have recorded it."""
    from usage import rollup

    aggregates = ", ".join(c.sql_aggregate() for c in rollup.COUNTERS)
    counters = ", ".join(rollup.COUNTER_NAMES)
    conn.execute("TRUNCATE usage_usagedailyzone")
    for org_id, tz in zones.items():
        conn.execute(
            "INSERT INTO usage_usagedailyzone (organization_id, zone) VALUES (%s, %s)",
            (org_id, tz),
        )
    for table, column, bucket, zoned in rollup_tables():
        conn.execute(f"TRUNCATE {table}")
        for org_id, tz in zones.items() if zoned else [(None, None)]:
            conn.execute(
                f"INSERT INTO {table} ({column}, organization_id, project_id, key_slot,"
                f" model, {counters}) SELECT {bucket}, organization_id, project_id,"
                f" COALESCE(api_key_id, {rollup.NO_KEY_SLOT}), model, {aggregates}"
                " FROM usage_usagerecord"
                + (" WHERE organization_id = %s" if zoned else "")
                + " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
                (tz, org_id) if zoned else None,
            )


def child_reroll(dsn: str) -> None:
    """Rebuild the rollups of a kept database from its raw records (after a change of the
    rollup tables), add the budgets if it has none, VACUUM ANALYZE."""
    django_setup()
    from orgs.models import Organization

    zones = dict(Organization.objects.values_list("pk", "billing_timezone"))
    _budgets()
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        build_rollups(conn, zones)
        conn.execute("VACUUM ANALYZE usage_usagehourly")
        conn.execute("VACUUM ANALYZE usage_usagedaily")
    print(json.dumps({"rollups": time.perf_counter() - t0}))


def _budgets() -> None:
    """A monthly budget for each organization and for its first project (what a governed
    console has; the overview and the project page show them), idempotent."""
    from orgs.models import Organization, Project
    from usage.models import Budget

    for org in Organization.objects.filter(slug__startswith="bench-"):
        first = Project.objects.filter(organization=org).order_by("pk").first()
        Budget.objects.get_or_create(
            organization=org, project=None, defaults={"amount": Decimal("250000")}
        )
        Budget.objects.get_or_create(
            organization=org, project=first, defaults={"amount": Decimal("50000")}
        )


def child_seed(n: int, dsn: str) -> None:
    django_setup()
    from django.db import connection

    from usage.models import CatalogModel

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    tenants = _setup_tenants()
    _budgets()
    anchor = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = anchor - timedelta(days=DAYS)
    models = list(  # 14 models with a token price (input and output), by id
        CatalogModel.objects.filter(
            prices__organization__isnull=True,
            prices__input_per_mtok__isnull=False,
            prices__output_per_mtok__isnull=False,
        )
        .distinct()
        .order_by("model_id")
        .values_list("model_id", flat=True)[:14]
    )
    templates = _templates([*models, UNPRICED_MODEL], anchor)
    connection.close()
    timings["tenants"] = time.perf_counter() - t0
    batch = "6a1d1c5e-0000-4000-8000-000000000001"  # one write batch for the whole seed
    created = anchor.strftime("%Y-%m-%d %H:%M:%S+00")
    with psycopg.connect(dsn, autocommit=True) as conn:
        index_defs = [
            (name, sql)
            for name, sql in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'usage_usagerecord'"
                " AND indexname NOT LIKE '%%_pkey'"
            ).fetchall()
        ]
        for name, _ in index_defs:
            conn.execute(f'DROP INDEX "{name}"')
        t0 = time.perf_counter()
        with conn.transaction():
            # The seeded rows reference rows created above: skip the per-row FK triggers.
            conn.execute("SET LOCAL session_replication_role = replica")
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY usage_usagerecord ({COPY_COLUMNS}) FROM STDIN") as copy,
            ):
                for block in _lines(n, tenants, templates, start, batch, created):
                    copy.write(block)
        timings["copy"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        for _, sql in index_defs:
            conn.execute(sql)
        timings["indexes"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_rollups(conn, tenants["zones"])
        timings["rollups"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        timings["vacuum"] = time.perf_counter() - t0
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_meta (records bigint, anchor timestamptz, "
            "seeded_at timestamptz DEFAULT now())"
        )
        conn.execute("TRUNCATE bench_meta")
        conn.execute("INSERT INTO bench_meta (records, anchor) VALUES (%s, %s)", (n, anchor))
        sizes = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ["usage_usagerecord", *(t for t, _, _, _ in rollup_tables())]
        }
        bytes_ = conn.execute("SELECT pg_total_relation_size('usage_usagerecord')").fetchone()[0]
    print(json.dumps({"timings": timings, "rows": sizes, "record_bytes": bytes_}))


# --- Measuring (child process) ----------------------------------------------------------


def _url(name: str, **candidates) -> str | None:
    """The URL of a dashboard page with the parameters its pattern names, or None."""
    from django.urls import NoReverseMatch, get_resolver, reverse

    resolver = get_resolver()
    if "dashboard" not in resolver.namespace_dict:
        return None
    _, ns = resolver.namespace_dict["dashboard"]
    for possibility, _pattern, _defaults, _converters in ns.reverse_dict.getlist(name):
        for _fmt, params in possibility:
            try:
                return reverse(f"dashboard:{name}", kwargs={p: candidates[p] for p in params})
            except (KeyError, NoReverseMatch):
                continue
    return None


def _pages() -> tuple[dict[str, str | None], object, datetime]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from keys.models import APIKey
    from orgs.models import Organization, Project

    with connection.cursor() as cur:
        cur.execute("SELECT anchor FROM bench_meta")
        (anchor,) = cur.fetchone()
    org = Organization.objects.get(slug=ORGS[0][1])
    owner = get_user_model().objects.get(username=f"owner-{org.slug}")
    project = Project.objects.filter(organization=org).order_by("pk").first()
    key = APIKey.objects.filter(project=project).order_by("pk").first()
    with connection.cursor() as cur:  # a request id from the middle of the data
        cur.execute(
            "SELECT server_request_id FROM usage_usagerecord WHERE organization_id = %s"
            " AND occurred_at < %s ORDER BY occurred_at DESC LIMIT 1",
            [org.pk, anchor - timedelta(days=20)],
        )
        (request_id,) = cur.fetchone()
    ids = {"org_id": org.public_id, "project_id": project.public_id, "key_id": key.public_id}
    local = anchor.astimezone(UTC)
    start90 = (local - timedelta(days=89)).date().isoformat()
    end90 = local.date().isoformat()

    def at(name: str, query: str) -> str | None:
        url = _url(name, **ids)
        return None if url is None else f"{url}?{query}"

    pages = {
        "overview 30d": at("overview", "range=30d"),
        "overview 90d": at("overview", f"range=custom&start={start90}&end={end90}"),
        "project 30d": at("project", "range=30d"),
        "key 30d": at("key", "range=30d"),
        "request log": at("request-log", ""),
        "search request id": at("request-log", f"q={request_id}"),
        "csv log 30d": at("request-log-csv", "range=30d"),
        "csv usage 30d": at("overview-csv", "range=30d"),
    }
    return pages, owner, anchor


def child_measure(repeat: int) -> None:
    import time_machine
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    django_setup()
    pages, owner, anchor = _pages()
    results: dict[str, dict] = {}
    with time_machine.travel(anchor + timedelta(minutes=30), tick=True):
        client = Client()
        client.force_login(owner)
        for name, url in pages.items():
            if name.startswith("csv"):
                continue
            if url is None:
                results[name] = {"url": None}
                continue
            times, cpu = [], []
            status = None
            for i in range(repeat + 3):
                t0, c0 = time.perf_counter(), time.process_time()
                response = client.get(url)
                body = b"".join(response) if response.streaming else response.content
                elapsed, used = time.perf_counter() - t0, time.process_time() - c0
                status = response.status_code
                if i >= 3:  # the first three warm caches and connections
                    times.append(elapsed)
                    cpu.append(used)
            # The queries and their SQL time from separate requests: capturing them wraps
            # every cursor call (SQL text formatted, timed), which the server does not pay.
            db = []
            for _ in range(max(3, repeat // 5)):
                with CaptureQueriesContext(connection) as queries:
                    client.get(url)
                db.append(sum(float(q["time"]) for q in queries.captured_queries))
            times.sort()
            results[name] = {
                "url": url,
                "status": status,
                "bytes": len(body),
                "queries": len(queries.captured_queries),
                "p50": statistics.median(times) * 1000,
                "p95": times[max(0, round(0.95 * len(times)) - 1)] * 1000,
                # Where the time goes on a shared machine: this process's CPU (Python,
                # templates, charts) and the wall time of its SQL statements.
                "cpu_p50": statistics.median(cpu) * 1000,
                "db_p50": statistics.median(db) * 1000,
            }
    results["load"] = {"loadavg": os.getloadavg()[0]}
    for name in pages:
        if name.startswith("csv"):
            results[name] = {"url": pages[name]}
    print(json.dumps(results))


def child_csv(url: str) -> None:
    import time_machine
    from django.test import Client

    django_setup()
    _, owner, anchor = _pages()
    with time_machine.travel(anchor + timedelta(minutes=30), tick=True):
        client = Client()
        client.force_login(owner)
        client.get(url.replace("range=30d", "range=today"))  # warm imports and connection
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        response = client.get(url)
        rows = size = 0
        for chunk in response if response.streaming else [response.content]:
            size += len(chunk)
            rows += chunk.count(b"\n")
        elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "status": response.status_code,
                "streaming": response.streaming,
                "seconds": elapsed,
                "rows": rows,
                "bytes": size,
                "rss_before_mb": before / 1024,
                "rss_peak_mb": peak / 1024,
            }
        )
    )


# --- Orchestration ------------------------------------------------------------------------


def run_child(args: list[str], env: dict) -> dict:
    res = subprocess.run(
        [PY, __file__, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def manage(env: dict, *command: str) -> None:
    res = subprocess.run(
        [PY, "manage.py", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode:
        sys.exit(res.stdout + res.stderr)


def seeded_size(dsn: str) -> int | None:
    try:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT records FROM bench_meta").fetchone()
            return row[0] if row else None
    except psycopg.Error:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10k,1m,10m", help="comma-separated, e.g. 10k,1m,10m")
    ap.add_argument("--keep", action="store_true", help="reuse a database already seeded")
    ap.add_argument("--repeat", type=int, default=30, help="requests per page (after 3 warm)")
    ap.add_argument("--no-csv", action="store_true", help="skip the CSV export")
    ap.add_argument(
        "--reroll",
        action="store_true",
        help="with --keep: rebuild the kept databases' rollups from their raw records",
    )
    ap.add_argument(
        "--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL"
    )
    ap.add_argument("--db-prefix", default="bench_dashboard")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--records", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child == "seed":
        return child_seed(args.records, os.environ["DATABASE_URL"])
    if args.child == "measure":
        return child_measure(args.repeat)
    if args.child == "csv":
        return child_csv(args.url)
    if args.child == "reroll":
        return child_reroll(os.environ["DATABASE_URL"])

    var_dir = tempfile.mkdtemp(prefix="console-bench-dashboard-")
    table: dict[int, dict] = {}
    for n in [parse_size(s) for s in args.sizes.split(",")]:
        db = f"{args.db_prefix}_{size_label(n)}"
        dsn = f"{args.server}/{db}"
        env = bench_env(dsn, var_dir)
        if not Path(var_dir, "staticfiles").exists():  # the manifest DEBUG=false serves from
            manage(env, "collectstatic", "--noinput", "-v", "0")
        if not (args.keep and seeded_size(dsn) == n):
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}"')
                conn.execute(f'CREATE DATABASE "{db}"')
            print(f"[{size_label(n)}] migrating {db} ...", flush=True)
            manage(env, "migrate", "--noinput", "-v", "0")
            print(f"[{size_label(n)}] seeding {n:,} records ...", flush=True)
            t0 = time.perf_counter()
            seed = run_child(["--child", "seed", "--records", str(n)], env)
            seed["total"] = time.perf_counter() - t0
            print(f"[{size_label(n)}] seeded: {json.dumps(seed)}", flush=True)
        else:
            # A kept database gets the migrations added since (0007 fills daily rollups).
            print(f"[{size_label(n)}] reusing {db}; migrating ...", flush=True)
            manage(env, "migrate", "--noinput", "-v", "0")
            if args.reroll:
                rerolled = run_child(["--child", "reroll"], env)
                print(f"[{size_label(n)}] rollups rebuilt: {json.dumps(rerolled)}", flush=True)
        # The daily rollups are filled by a migration after the seed's VACUUM ANALYZE:
        # without statistics PostgreSQL estimated 65 rows for 13K (a sort where a hash
        # aggregate belongs). Autovacuum would get there; a benchmark must not wait.
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE usage_usagedaily, usage_usagehourly")
        measured = run_child(["--child", "measure", "--repeat", str(args.repeat)], env)
        for name in [name for name in measured if name.startswith("csv")]:
            csv_url = measured[name]["url"]
            if csv_url and not args.no_csv:
                measured[name] = run_child(["--child", "csv", "--url", csv_url], env)
        table[n] = measured
        print(f"[{size_label(n)}] {json.dumps(measured)}", flush=True)
    print_table(table)


def print_table(table: dict[int, dict]) -> None:
    sizes = sorted(table)
    names = list(next(iter(table.values())))
    head = f"{'page':<20}" + "".join(f"{size_label(n):>28}" for n in sizes)
    print(
        "\nserver time p50/p95 ms (p50 of the app's CPU ms 'c' and of its SQL wall ms 'd');"
        " CSV: seconds, rows, peak RSS (+ growth during the export); load: 1-min load average"
    )
    print(head)
    print("-" * len(head))
    for name in names:
        cells = []
        for n in sizes:
            r = table[n].get(name, {})
            if r.get("url", "") is None:
                cells.append("n/a")
            elif "p50" in r:
                flag = "" if r["status"] == 200 else f" [{r['status']}]"
                cells.append(
                    f"{r['p50']:.0f}/{r['p95']:.0f} ({r['cpu_p50']:.0f}c {r['db_p50']:.0f}d){flag}"
                )
            elif "loadavg" in r:
                cells.append(f"{r['loadavg']:.1f}")
            elif "seconds" in r:
                cells.append(
                    f"{r['seconds']:.1f}s {r['rows']:,}r {r['rss_peak_mb']:.0f}MB"
                    f" (+{r['rss_peak_mb'] - r['rss_before_mb']:.0f})"
                )
            else:
                cells.append("-")
        print(f"{name:<20}" + "".join(f"{c:>28}" for c in cells))


if __name__ == "__main__":
    main()
