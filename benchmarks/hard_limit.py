"""What the budget hard limit costs a console call, and how fast reservations go concurrently.

    .venv/bin/python benchmarks/hard_limit.py [--calls 300] [--threads 8] [--reservations 200]
        [--database-url postgres://postgres@127.0.0.1:5432/console_x]

Database: a throw-away SQLite file by default; with ``--database-url`` (or ``DATABASE_URL``)
a throw-away ``<name>_bench`` database on that server, created, migrated and dropped at the
end. A project with a key pointing at an in-process simulator that answers at once.

1. ``generate()`` (the service layer, usage record included) interleaved per round: in a
   project without a budget (the hook's one query) and in a project under two hard-limit
   budgets (its own and its organization's: reserve with the row locks, settle). The
   difference per pair is the hard limit's cost.
2. ``budget_reserve`` + ``budget_reservation_settle`` from ``--threads`` threads at once
   on the same two budgets (every call queues on the same row locks): reservations per
   second and the latency of one (PostgreSQL only; SQLite serializes every writer anyway).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--reservations", type=int, default=200, help="per thread")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="a PostgreSQL server URL; the benchmark uses a throw-away <name>_bench database there",
    )
    args = parser.parse_args()

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["CONSOLE_VAR_DIR"] = tempfile.mkdtemp(prefix="console-bench-")
    os.environ["CACHE_URL"] = "locmemcache://"
    os.environ["LOG_LEVEL"] = "WARNING"
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    logging.disable(logging.WARNING)
    created_db = None
    if connection.vendor == "sqlite":
        call_command("migrate", verbosity=0)
        db_label = "SQLite file"
    else:
        connection.settings_dict.setdefault("TEST", {})["NAME"] = (
            f"{connection.settings_dict['NAME']}_bench"
        )
        created_db = connection.creation.create_test_db(
            verbosity=0, autoclobber=True, serialize=False
        )
        db_label = f"PostgreSQL {connection.pg_version} throw-away database {created_db}"

    from platformadmin.openai.services import GenerateParams, generate
    from platformadmin.openai.simulator import OpenAISimulator
    from tests.factories import OrganizationFactory, ProjectFactory, fake_secret
    from tests.factories import make_api_key as make_key
    from usage.models import Budget
    from usage.reservations import budget_reservation_settle, budget_reserve

    sim = OpenAISimulator(delta_delay=0).start()
    settings.OUTBOUND_ALLOWED_ORIGINS = [sim.root_url]
    free_org, limited_org = OrganizationFactory(tier="tier_4"), OrganizationFactory(tier="tier_4")
    free = ProjectFactory(organization=free_org, name="No budget")
    limited = ProjectFactory(organization=limited_org, name="Hard limit")
    Budget.objects.create(
        organization=limited_org, project=limited, amount=Decimal(10**6), hard_limit=True
    )
    Budget.objects.create(organization=limited_org, amount=Decimal(10**6), hard_limit=True)
    keys = {
        p: make_key(p, secret=fake_secret(), provider="compatible", base_url=sim.base_url)
        for p in (free, limited)
    }
    params = GenerateParams(
        model="gpt-5.4-mini", input="Benchmark the hard limit, please.", max_output_tokens=200
    )

    def call(project) -> float:
        t = time.perf_counter()
        outcome = generate(api_key=keys[project], project=project, params=params)
        elapsed = (time.perf_counter() - t) * 1000
        assert outcome.ok and outcome.record is not None, outcome.message
        return elapsed

    for _ in range(args.warmup):
        call(free), call(limited)
    plain, held = [], []
    for _ in range(args.calls):
        plain.append(call(free))
        held.append(call(limited))
    extra = [b - a for a, b in zip(plain, held, strict=True)]
    print(
        f"generate(): {args.calls} interleaved rounds (after {args.warmup} warm-up); database "
        f"{db_label}; simulator in-process; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    for label, values in (
        ("no budget", plain),
        ("two hard-limit budgets", held),
        ("hard limit's cost", extra),
    ):
        print(
            f"  {label:24s} p50 {percentile(values, 50):6.2f} ms  "
            f"p95 {percentile(values, 95):6.2f} ms  mean {statistics.fmean(values):6.2f} ms"
        )

    if connection.vendor == "postgresql":
        latencies: list[float] = []
        lock = threading.Lock()
        barrier = threading.Barrier(args.threads)

        def worker() -> None:
            mine = []
            try:
                barrier.wait()
                for _ in range(args.reservations):
                    t = time.perf_counter()
                    result = budget_reserve(project=limited, amount=Decimal("0.001"))
                    assert result.allowed, result.message
                    budget_reservation_settle(reservation_ids=result.reservation_ids)
                    mine.append((time.perf_counter() - t) * 1000)
            finally:
                connection.close()
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        total = args.threads * args.reservations
        print(
            f"reserve + settle on the same two budgets, {args.threads} threads x "
            f"{args.reservations}: {total / seconds:,.0f} per second; one: p50 "
            f"{percentile(latencies, 50):.2f} ms, p95 {percentile(latencies, 95):.2f} ms"
        )
    sim.stop()
    if created_db is not None:
        connection.close()
        connection.creation.destroy_test_db(created_db, verbosity=0)


if __name__ == "__main__":
    main()
