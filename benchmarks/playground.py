"""Server-side overhead of a playground call over a direct SDK call to the simulator.

    .venv/bin/python benchmarks/playground.py [--calls 300] [--cache-url redis://127.0.0.1:6379/7]
        [--database-url postgres://postgres@127.0.0.1:5432/console_x]

Database: a throw-away SQLite file (migrated, catalog seeded) by default; with
``--database-url`` (or ``DATABASE_URL``) a throw-away ``<name>_bench`` database on that
server, created, migrated and dropped at the end. Cache (breaker, rate limit): locmem
unless ``--cache-url``. A member, a project and a key pointing at an in-process simulator
that answers at once (no delta delay). Then, interleaved, per round:

- direct: ``OpenAI(...).responses.create`` with the plaintext key (the floor), plain
  and streamed;
- service layer: ``platformadmin.openai.services.generate`` / ``generate_stream`` (checks, rate
  limit, breaker, decrypt, SDK call, usage record with rollup);
- HTTP: ``POST /playground/run`` and ``POST /playground/stream`` through Django's test
  client and the full middleware stack (session, user, OTP, CSRF-exempt test client,
  access check, form, the service, the rendered page or NDJSON events). The run path
  is measured twice: a plain form post (the whole page) and an htmx post (the result
  fragment only).

Overhead = (service or HTTP) minus the matching direct call, per pair; p50 and p95 over
all pairs. Target: p50 <= 5 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

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
    parser.add_argument(
        "--cache-url",
        default="locmemcache://",
        help="Django cache for the breaker and rate limit (e.g. redis://127.0.0.1:6379/5)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="a PostgreSQL server URL; the benchmark uses a throw-away <name>_bench database there",
    )
    args = parser.parse_args()

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["CONSOLE_VAR_DIR"] = tempfile.mkdtemp(prefix="console-bench-")
    os.environ["CACHE_URL"] = args.cache_url
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
    from django.test import Client

    logging.disable(logging.WARNING)  # 4xx warnings and call logs are not what is measured
    # No setup_test_environment(): its template instrumentation would slow every render.
    settings.ALLOWED_HOSTS = ["testserver"]
    created_db = None
    if connection.vendor == "sqlite":
        call_command("migrate", verbosity=0)
        db_label = "SQLite file (WAL)"
    else:
        connection.settings_dict.setdefault("TEST", {})["NAME"] = (
            f"{connection.settings_dict['NAME']}_bench"
        )
        created_db = connection.creation.create_test_db(
            verbosity=0, autoclobber=True, serialize=False
        )
        db_label = (
            f"PostgreSQL {connection.pg_version} throw-away database {created_db} "
            f"(CONN_MAX_AGE {connection.settings_dict.get('CONN_MAX_AGE')})"
        )

    import openai

    from keys.services import api_key_secret_for_call
    from platformadmin.openai.services import GenerateParams, generate, generate_stream
    from platformadmin.openai.simulator import OpenAISimulator
    from tests.factories import (
        OrganizationFactory,
        ProjectFactory,
        UserFactory,
        add_project_member,
        fake_secret,
    )
    from tests.factories import make_api_key as make_key

    sim = OpenAISimulator(delta_delay=0).start()
    settings.OUTBOUND_ALLOWED_ORIGINS = [
        sim.root_url
    ]  # the guard lets exactly the simulator through
    org = OrganizationFactory(tier="tier_4")
    project = ProjectFactory(organization=org, name="Bench")
    user = UserFactory(username="bench")
    add_project_member(user, project, "member")
    key = make_key(project, secret=fake_secret(), provider="compatible", base_url=sim.base_url)
    secret = api_key_secret_for_call(key)
    prompt = "Benchmark the console's playground overhead, please."

    direct_client = openai.OpenAI(api_key=secret, base_url=sim.base_url, max_retries=0)
    web = Client()
    web.force_login(user)
    form = {
        "project": str(project.public_id),
        "api_key": str(key.public_id),
        "model": "gpt-5.4-mini",
        "input": prompt,
        "instructions": "",
        "temperature": "",
        "max_output_tokens": "",
        "reasoning_effort": "",
    }

    # Browsers post the form urlencoded (a plain form post, and static/playground.js).
    posted = urlencode(form)
    urlencoded = "application/x-www-form-urlencoded"

    def timed(func):
        def wrapper() -> float:
            t = time.perf_counter()
            func()
            return (time.perf_counter() - t) * 1000

        return wrapper

    @timed
    def direct():
        direct_client.responses.create(model="gpt-5.4-mini", input=prompt, store=False)

    @timed
    def direct_stream():
        for _ in direct_client.responses.create(
            model="gpt-5.4-mini", input=prompt, store=False, stream=True
        ):
            pass

    @timed
    def service():
        outcome = generate(
            api_key=key, project=project, params=GenerateParams(model="gpt-5.4-mini", input=prompt)
        )
        assert outcome.ok and outcome.record is not None, outcome.message

    @timed
    def service_stream():
        events = list(
            generate_stream(
                api_key=key,
                project=project,
                params=GenerateParams(model="gpt-5.4-mini", input=prompt),
            )
        )
        assert events[-1].outcome.ok and events[-1].outcome.record is not None, events[
            -1
        ].outcome.message

    @timed
    def http_run():
        response = web.post("/playground/run", posted, content_type=urlencoded)
        assert response.status_code == 200 and b"result-details" in response.content, (
            response.status_code
        )
        assert b"project-switcher" in response.content  # the whole page

    @timed
    def http_run_htmx():
        response = web.post(
            "/playground/run", posted, content_type=urlencoded, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200 and b"result-details" in response.content, (
            response.status_code
        )

    @timed
    def http_stream():
        response = web.post("/playground/stream", posted, content_type=urlencoded)
        body = b"".join(response.streaming_content)
        assert b'"type": "done"' in body and b"completed" in body, body[-300:]

    runs = {
        "direct": direct,
        "direct_stream": direct_stream,
        "service": service,
        "service_stream": service_stream,
        "http_run": http_run,
        "http_run_htmx": http_run_htmx,
        "http_stream": http_stream,
    }
    for _ in range(args.warmup):
        for func in runs.values():
            func()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.calls):
        for name, func in runs.items():
            times[name].append(func())

    print(
        f"calls: {args.calls} rounds (after {args.warmup} warm-up), interleaved; database {db_label}; "
        f"cache {args.cache_url}; simulator in-process on loopback; Django test client (no socket), "
        f"DEBUG={settings.DEBUG}; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    labels = {
        "direct": "direct SDK call",
        "direct_stream": "direct streamed call",
        "service": "generate()",
        "service_stream": "generate_stream()",
        "http_run": "POST /run (page)",
        "http_run_htmx": "POST /run (htmx)",
        "http_stream": "POST /stream",
    }
    for name, label in labels.items():
        values = times[name]
        print(
            f"  {label:24s} p50 {percentile(values, 50):6.2f} ms  p95 {percentile(values, 95):6.2f} ms  "
            f"mean {statistics.fmean(values):6.2f} ms"
        )
    print("overhead over the matching direct call (per pair):")
    pairs = (
        ("service generate()", "service", "direct"),
        ("service generate_stream()", "service_stream", "direct_stream"),
        ("HTTP POST /run (page)", "http_run", "direct"),
        ("HTTP POST /run (htmx)", "http_run_htmx", "direct"),
        ("HTTP POST /stream", "http_stream", "direct_stream"),
    )
    for label, name, base in pairs:
        values = [b - a for a, b in zip(times[base], times[name], strict=True)]
        p50 = percentile(values, 50)
        print(
            f"  {label:26s} p50 {p50:6.2f} ms  p95 {percentile(values, 95):6.2f} ms"
            f"  (target p50 <= 5 ms: {'met' if p50 <= 5 else 'NOT met'})"
        )
    sim.stop()
    if created_db is not None:
        connection.creation.destroy_test_db(created_db, verbosity=0)


if __name__ == "__main__":
    main()
