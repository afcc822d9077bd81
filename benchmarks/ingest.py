"""Benchmark of the ingestion API on PostgreSQL (not a test).

    .venv/bin/python benchmarks/ingest.py --records 100000 [--batch 100] [--clients 8] [--workers 2]
    .venv/bin/python benchmarks/ingest.py --records 100000 --budgets 5 [--rounds 4]

``--budgets N``: side by side in one run, N budgets configured (the organization's, the
project's and N - 2 other projects') against none, with a Celery worker evaluating what
the ingestion queues; see ``compare_budgets``.

1. creates a throwaway database (default ``console_bench``), migrates it, creates an
   organization, a project and an ingestion token;
2. starts uvicorn on it (``--workers`` processes) and posts N synthetic Responses-API
   records in batches of ``--batch`` from ``--clients`` threads over keep-alive
   connections; reports records/s and the p50/p95/max latency per batch;
3. empties the usage tables and loads the same N rows with a raw psycopg ``COPY`` into
   the same table; prints COPY rows/s and the ratio API / COPY;
4. stops the server and drops the database (``--keep`` keeps it).

Client and server share the machine: the client pre-encodes every body before the
clock starts so it takes as little CPU as possible from the server.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import importlib.util
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
sys.path.insert(0, str(ROOT))  # for the money unit's one definition (no Django set-up needed)

from usage.fields import money_to_units, quantize_money, units_to_money  # noqa: E402

MODELS = {  # model: (input, cached, output) per 1M tokens, as seeded
    "gpt-5.5": (Decimal(5), Decimal("0.5"), Decimal(30)),
    "gpt-5.4-mini": (Decimal("0.75"), Decimal("0.075"), Decimal("4.5")),
    "gpt-4.1-nano": (Decimal("0.1"), Decimal("0.025"), Decimal("0.4")),
}


def synthetic(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    models = list(MODELS)
    for i in range(n):
        inp = rng.randint(50, 5000)
        cached = rng.randint(0, inp // 2)
        outp = rng.randint(10, 2000)
        reasoning = rng.randint(0, outp // 2)
        out.append(
            {
                "id": f"resp_bench_{i:09d}_{rng.getrandbits(32):08x}",
                "object": "response",
                "created_at": (now - timedelta(seconds=rng.randint(0, 6 * 3600))).timestamp(),
                "status": "completed",
                "model": models[i % len(models)],
                "service_tier": "default",
                "usage": {
                    "input_tokens": inp,
                    "input_tokens_details": {"cached_tokens": cached},
                    "output_tokens": outp,
                    "output_tokens_details": {"reasoning_tokens": reasoning},
                    "total_tokens": inp + outp,
                },
            }
        )
    return out


def as_reporter_sends(records: list[dict], seed: int = 11) -> list[dict]:
    """The envelopes usage/reporter.py sends: the whole ``model_dump()`` of a Response (a
    short output message and the fields an SDK object carries) with request id and latency."""
    rng = random.Random(seed)
    out = []
    for r in records:
        response = {
            **r,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": None,
            "metadata": {},
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": "medium", "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "user": None,
            "output": [
                {
                    "id": "msg_" + r["id"][5:],
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {
                            "type": "output_text",
                            "annotations": [],
                            "text": "A short answer of a few words.",
                        }
                    ],
                }
            ],
        }
        out.append(
            {
                "response": response,
                "server_request_id": f"req_{rng.getrandbits(64):016x}",
                "latency_ms": rng.randint(200, 9000),
            }
        )
    return out


def cpu_seconds(server_pid: int, db: str) -> dict[str, float]:
    """CPU seconds used so far by the web server (uvicorn and its workers), this database's
    PostgreSQL backends and this client (Linux /proc); other processes are not counted."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"server": 0.0, "postgres": 0.0}
    marker = f" {db} ".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / tick
        if int(pid) == server_pid or int(fields[1]) == server_pid:
            out["server"] += used
        elif cmd.startswith(b"postgres:") and marker in cmd:
            # Backends of this database (the API keeps its connections for the whole run).
            out["postgres"] += used
    t = os.times()
    out["client"] = t.user + t.system
    # Every process on the machine (the other two helpers' test runs included), and idle.
    cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in cpu]
    out["machine busy"] = (sum(ticks) - ticks[3] - ticks[4]) / tick  # minus idle and iowait
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], env: dict, **kw) -> str:
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    return res.stdout


SETUP = """
from orgs.models import Organization, Project
from usage.services import ingestion_token_create
org = Organization.objects.create(name="Bench", slug="bench")
project = Project.objects.create(organization=org, name="bench")
_, token = ingestion_token_create(project=project, name="bench")
print(token, org.pk, project.pk)
"""


BUDGETS_SETUP = """
from decimal import Decimal
from orgs.models import Organization, Project
from usage.models import Budget
org = Organization.objects.get(slug="bench")
project = Project.objects.get(organization=org, name="bench")
n = {n}
Budget.objects.create(organization=org, amount=Decimal(10**7), is_active=False)
if n > 1:
    Budget.objects.create(organization=org, project=project, amount=Decimal(10**6), is_active=False)
for i in range(n - 2):
    other = Project.objects.create(organization=org, name=f"other {{i}}")
    Budget.objects.create(organization=org, project=other, amount=Decimal(1000), is_active=False)
# A flag left in a shared cache by an earlier run (same ids: a new database) would hold
# back this run's first evaluations.
from django.core.cache import cache
from usage.budgets import evaluation_flag
cache.delete_many([evaluation_flag(pk) for pk in Budget.objects.values_list("pk", flat=True)])
print(Budget.objects.count())
"""


def compare_budgets(
    port: int,
    token: str,
    bodies: list[bytes],
    *,
    clients: int,
    rounds: int,
    dsn: str,
    server_pid: int,
    db: str,
) -> tuple[float, list[float], int]:
    """Ingest in 2 x ``rounds`` equal slices, alternating without budgets and with them
    (A B B A A B B A ...: neither side always goes first, as the machine warms or other
    work comes and goes), toggling ``is_active`` on the budgets between slices; print
    records/s of each slice, the median of each side, and the CPU per batch of the web
    server and this database's backends (steadier than records/s on a shared machine).
    (seconds, latencies, created)."""
    size = -(-len(bodies) // (2 * rounds))
    slices = [bodies[i : i + size] for i in range(0, len(bodies), size)]
    order = [(False, True) if r % 2 == 0 else (True, False) for r in range(rounds)]
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    total, lat, created = 0.0, [], 0
    for chunk, with_budgets in zip(slices, [w for pair in order for w in pair], strict=False):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE usage_budget SET is_active = %s", [with_budgets])
        before = cpu_seconds(server_pid, db)
        elapsed, chunk_lat, chunk_created = post_batches(port, token, chunk, clients)
        after = cpu_seconds(server_pid, db)
        used = sum(after[k] - before[k] for k in ("server", "postgres")) / len(chunk) * 1000
        cpu[with_budgets].append(used)
        records = chunk_created
        rates[with_budgets].append(records / elapsed)
        total, created = total + elapsed, created + chunk_created
        lat += chunk_lat
        side = "with budgets" if with_budgets else "no budgets  "
        print(
            f"    {side}: {records / elapsed:,.0f} records/s ({len(chunk)} batches; "
            f"web + PostgreSQL CPU {used:.1f} ms a batch)",
            flush=True,
        )
    without, with_ = statistics.median(rates[False]), statistics.median(rates[True])
    print(
        f"  side by side (median of {rounds} slices each): no budgets {without:,.0f} records/s, "
        f"with budgets {with_:,.0f} records/s: {with_ / without:.3f} "
        f"({'within' if with_ >= 0.9 * without else 'NOT within'} 10 %)"
    )
    cpu_without, cpu_with = statistics.median(cpu[False]), statistics.median(cpu[True])
    print(
        f"        web + PostgreSQL CPU per batch (median): no budgets {cpu_without:.1f} ms, "
        f"with budgets {cpu_with:.1f} ms ({cpu_with / cpu_without - 1:+.1%})"
    )
    with psycopg.connect(dsn) as conn:
        alerts, evaluated = conn.execute(
            "SELECT (SELECT count(*) FROM usage_budgetalert), "
            "count(*) FILTER (WHERE last_evaluated_at IS NOT NULL) FROM usage_budget"
        ).fetchone()
    print(f"        budgets evaluated by the worker: {evaluated}, alerts: {alerts}")
    return total, lat, created


def post_batches(
    port: int, token: str, bodies: list[bytes], clients: int
) -> tuple[float, list[float], int]:
    """Send the pre-encoded bodies from ``clients`` threads; (seconds, latencies, created)."""
    latencies: list[float] = []
    created = [0]
    lock = threading.Lock()
    index = [0]
    errors: list[str] = []
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        local_lat, local_created = [], 0
        while True:
            with lock:
                i = index[0]
                index[0] += 1
            if i >= len(bodies):
                break
            t0 = time.perf_counter()
            conn.request("POST", "/api/v1/usage", body=bodies[i], headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            local_lat.append(time.perf_counter() - t0)
            if resp.status != 200:
                errors.append(f"{resp.status} {data[:200]!r}")
                break
            local_created += json.loads(data)["created"]
        conn.close()
        with lock:
            latencies.extend(local_lat)
            created[0] += local_created

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        sys.exit(f"API errors: {errors[:3]}")
    return elapsed, latencies, created[0]


def copy_rows(dsn: str, records: list[dict], org_id: int, project_id: int) -> float:
    """The same rows (cost computed here, stored as the column's integer units of 1e-10 USD)
    through COPY into usage_usagerecord; seconds."""
    cols = [
        "organization_id",
        "project_id",
        "source",
        "model",
        "response_id",
        "server_request_id",
        "client_request_id",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "total_tokens",
        "cost",
        "service_tier",
        "status",
        "error_type",
        "ratelimit_headers",
        "retries",
        "occurred_at",
        "write_batch",
        "created_at",
        "latency_ms",
    ]
    batch = uuid.uuid4()
    now = datetime.now(UTC)
    rows = []
    for r in records:
        meta = r if "response" in r else {}  # the reporter's envelope
        r = r.get("response", r)
        u = r["usage"]
        p = MODELS[r["model"]]
        cached = u["input_tokens_details"]["cached_tokens"]
        cost = (
            (u["input_tokens"] - cached) * p[0] + cached * p[1] + u["output_tokens"] * p[2]
        ) / 1_000_000
        rows.append(
            (
                org_id,
                project_id,
                "ingest",
                r["model"],
                r["id"],
                meta.get("server_request_id", ""),
                "",
                u["input_tokens"],
                cached,
                u["output_tokens"],
                u["output_tokens_details"]["reasoning_tokens"],
                u["total_tokens"],
                money_to_units(quantize_money(cost)),
                r["service_tier"],
                "completed",
                "",
                "{}",
                0,
                datetime.fromtimestamp(r["created_at"], tz=UTC),
                batch,
                now,
                meta.get("latency_ms"),
            )
        )
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE usage_usagerecord, usage_usagehourly")
        conn.commit()
        start = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY usage_usagerecord ({', '.join(cols)}) FROM STDIN") as cp,
        ):
            for row in rows:
                cp.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - start
        (count,) = conn.execute("SELECT count(*) FROM usage_usagerecord").fetchone()
    assert count == len(records), count
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument(
        "--interface",
        choices=["asgi", "wsgi"],
        default="asgi",
        help="asgi: platformadmin.asgi (how the console runs); wsgi: platformadmin.wsgi",
    )
    ap.add_argument(
        "--shape",
        choices=["minimal", "reporter"],
        default="minimal",
        help="minimal: bare Response JSON with usage; reporter: what usage/reporter.py "
        "sends (the whole model_dump() in an envelope with request id and latency)",
    )
    ap.add_argument(
        "--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL"
    )
    ap.add_argument("--db", default="console_bench")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument(
        "--budgets",
        type=int,
        default=0,
        help="side by side: this many budgets configured (a worker evaluating) against none",
    )
    ap.add_argument("--rounds", type=int, default=4, help="--budgets: slices per side")
    args = ap.parse_args()

    admin_dsn = f"{args.server}/postgres"
    dsn = f"{args.server}/{args.db}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db}"')
        conn.execute(f'CREATE DATABASE "{args.db}"')
    var_dir = tempfile.mkdtemp(prefix="console-bench-")
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "DEBUG": "false",
        "CONSOLE_READ_DOTENV": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_SSL_REDIRECT": "false",
        "FIELD_ENCRYPTION_KEYS": "v1:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "CONSOLE_VAR_DIR": var_dir,
        "USAGE_INGEST_RATE_PER_MINUTE": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "platformadmin.settings",
    }
    server = worker = None
    try:
        print(f"migrating {args.db} ...", flush=True)
        run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env)
        token, org_id, project_id = run([PY, "manage.py", "shell", "-c", SETUP], env).split()[-3:]
        if args.budgets:
            run([PY, "manage.py", "shell", "-c", BUDGETS_SETUP.format(n=args.budgets)], env)
            # A real worker evaluates what the ingestion queues, in both halves (fair).
            worker = subprocess.Popen(
                [PY, "-m", "celery", "-A", "platformadmin", "worker", "-P", "solo"]
                + ["--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "warning"],
                cwd=ROOT,
                env=env,
            )
        records = synthetic(args.records)
        sent = as_reporter_sends(records) if args.shape == "reporter" else records
        bodies = [
            json.dumps({"records": sent[i : i + args.batch]}, separators=(",", ":")).encode()
            for i in range(0, len(records), args.batch)
        ]
        port = free_port()
        # As in production: uvicorn with its C HTTP parser and event loop when installed
        # (pyproject.toml lists both); otherwise its pure-Python ones, and we say so.
        http_impl = "httptools" if importlib.util.find_spec("httptools") else "h11"
        loop_impl = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
        server = subprocess.Popen(
            [
                PY,
                "-m",
                "uvicorn",
                f"platformadmin.{args.interface}:application",
                "--interface",
                {"asgi": "asgi3", "wsgi": "wsgi"}[args.interface],
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--http",
                http_impl,
                "--loop",
                loop_impl,
                "--lifespan",
                "off",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("uvicorn did not start")
                time.sleep(0.2)
        # Warm up every worker (imports, connections) with a small, separate batch.
        warm = synthetic(args.clients * 4, seed=99)
        for r in warm:
            r["id"] = "warm_" + r["id"]
        post_batches(port, token, [json.dumps([r]).encode() for r in warm], args.clients)

        print(
            f"POST /api/v1/usage: {args.records} records, batches of {args.batch}, "
            f"{args.shape} records ({sum(map(len, bodies)) // args.records} bytes each), "
            f"{args.clients} client threads, {args.workers} uvicorn workers ({args.interface}, "
            f"{http_impl}, {loop_impl}; PostgreSQL connection pool; rate limit off)",
            flush=True,
        )
        cpu0 = cpu_seconds(server.pid, args.db)
        if args.budgets:
            print(
                f"  {args.budgets} budgets (2 cover the project) against none, "
                f"broker {env.get('CELERY_BROKER_URL', 'filesystem://')}, "
                f"cache {env.get('CACHE_URL', 'file')}",
                flush=True,
            )
            elapsed, lat, created = compare_budgets(
                port,
                token,
                bodies,
                clients=args.clients,
                rounds=args.rounds,
                dsn=dsn,
                server_pid=server.pid,
                db=args.db,
            )
        else:
            elapsed, lat, created = post_batches(port, token, bodies, args.clients)
        cpu1 = cpu_seconds(server.pid, args.db)
        assert created == args.records, created
        lat.sort()
        api_rate = args.records / elapsed
        p95 = lat[max(0, int(round(0.95 * len(lat))) - 1)]
        print(
            f"  API : {api_rate:,.0f} records/s  ({elapsed:.2f} s; {len(bodies) / elapsed:,.0f} batches/s)"
        )
        print(
            f"        latency per batch: p50 {statistics.median(lat) * 1000:.1f} ms, "
            f"p95 {p95 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms"
        )
        per_batch = {k: (cpu1[k] - cpu0[k]) / len(bodies) * 1000 for k in cpu0}
        print(
            "        CPU per batch: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in per_batch.items())
            + f" (machine: {os.cpu_count()} cores, {elapsed * os.cpu_count() / len(bodies) * 1000:.1f} ms of core time per batch)"
        )
        with psycopg.connect(dsn) as conn:
            n, cost = conn.execute(
                "SELECT count(*), sum(cost) FROM usage_usagerecord "
                "WHERE response_id LIKE 'resp_bench_%%'"
            ).fetchone()
            rolled = conn.execute("SELECT sum(requests) FROM usage_usagehourly").fetchone()[0]
        cost = units_to_money(cost) if cost is not None else None  # SUM of the integer units
        print(
            f"        stored {n} rows, rollups count {rolled} (incl. {len(warm)} warm-up), cost ${cost}"
        )
        server.terminate()
        server.wait(timeout=30)
        server = None

        copy_s = copy_rows(dsn, sent, int(org_id), int(project_id))
        copy_rate = args.records / copy_s
        print(f"  COPY: {copy_rate:,.0f} rows/s  ({copy_s:.2f} s, same table, same rows)")
        print(
            f"  ratio API / COPY: {api_rate / copy_rate:.3f}  (COPY is {copy_rate / api_rate:.1f}x faster)"
        )
        target = 20_000
        print(f"  target {target:,} records/s: {'met' if api_rate >= target else 'NOT met'}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        if not args.keep:
            with psycopg.connect(admin_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
