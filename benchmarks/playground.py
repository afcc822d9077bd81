"""Server-side overhead of a playground call over a direct SDK call to the simulator.

    .venv/bin/python benchmarks/playground.py [--calls 300] [--cache-url filecache:///tmp/x]

Sets up a throw-away SQLite database (migrated, catalog seeded), a member, a project and
a key pointing at an in-process simulator that answers at once. Then, interleaved:

- direct: ``OpenAI(...).responses.create`` with the plaintext key (the floor);
- service: ``openai_services.generate`` (checks, rate limit, breaker, decrypt, SDK call,
  usage record with rollup);
- view: a POST to ``/playground/run`` through Django's test client (middleware, session,
  access checks, form, the service, the rendered page).

Overhead = (service or view) minus direct, per pair of calls; p50 and p95 over all
pairs. Target: p50 <= 5 ms for the view.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
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
    parser.add_argument("--cache-url", default="locmemcache://",
                        help="Django cache for the breaker and rate limit (e.g. redis://127.0.0.1:6379/5)")
    args = parser.parse_args()

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["CONSOLE_VAR_DIR"] = tempfile.mkdtemp(prefix="console-bench-")
    os.environ["CACHE_URL"] = args.cache_url
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    logging.disable(logging.INFO)
    # No setup_test_environment(): its template instrumentation would slow every render.
    settings.ALLOWED_HOSTS = ["testserver"]
    call_command("migrate", verbosity=0)

    import openai

    from keys.services import api_key_reveal_secret
    from platformadmin.openai_services import GenerateParams, generate
    from platformadmin.simulator import OpenAISimulator
    from tests.factories import (
        OrganizationFactory,
        ProjectFactory,
        UserFactory,
        add_project_member,
        fake_secret,
    )
    from tests.factories import make_api_key as make_key

    sim = OpenAISimulator(delta_delay=0).start()
    org = OrganizationFactory(tier="tier_4")
    project = ProjectFactory(organization=org, name="Bench")
    user = UserFactory(username="bench")
    add_project_member(user, project, "member")
    key = make_key(project, secret=fake_secret(), provider="compatible", base_url=sim.base_url)
    secret = api_key_reveal_secret(key)
    prompt = "Benchmark the console's playground overhead, please."

    direct_client = openai.OpenAI(api_key=secret, base_url=sim.base_url, max_retries=0)
    web = Client()
    web.force_login(user)
    form = {"project": str(project.public_id), "api_key": str(key.public_id), "model": "gpt-5.4-mini",
            "input": prompt, "instructions": "", "temperature": "", "max_output_tokens": "", "reasoning_effort": ""}

    def direct() -> float:
        t = time.perf_counter()
        direct_client.responses.create(model="gpt-5.4-mini", input=prompt, store=False)
        return time.perf_counter() - t

    def service() -> float:
        t = time.perf_counter()
        outcome = generate(api_key=key, project=project, params=GenerateParams(model="gpt-5.4-mini", input=prompt))
        assert outcome.ok, outcome.message
        return time.perf_counter() - t

    def direct_stream() -> float:
        t = time.perf_counter()
        for _ in direct_client.responses.create(model="gpt-5.4-mini", input=prompt, store=False, stream=True):
            pass
        return time.perf_counter() - t

    def view_stream() -> float:
        t = time.perf_counter()
        response = web.post("/playground/stream", form)
        body = b"".join(response.streaming_content)
        assert b'"type": "done"' in body and b"completed" in body, body[-300:]
        return time.perf_counter() - t

    def view() -> float:
        t = time.perf_counter()
        response = web.post("/playground/run", form)
        assert response.status_code == 200 and b"result-details" in response.content, response.status_code
        return time.perf_counter() - t

    for _ in range(args.warmup):
        direct(), service(), view(), direct_stream(), view_stream()
    d, s, v, ds, vs = [], [], [], [], []
    for _ in range(args.calls):
        d.append(direct())
        s.append(service())
        v.append(view())
        ds.append(direct_stream())
        vs.append(view_stream())
    ms = 1000
    over_s = [(b - a) * ms for a, b in zip(d, s, strict=True)]
    over_v = [(b - a) * ms for a, b in zip(d, v, strict=True)]
    over_vs = [(b - a) * ms for a, b in zip(ds, vs, strict=True)]
    print(f"calls: {args.calls} each (after {args.warmup} warm-up), database SQLite file, cache {args.cache_url}")
    for name, values in (("direct SDK call", [x * ms for x in d]), ("generate() service", [x * ms for x in s]),
                         ("POST /playground/run", [x * ms for x in v]),
                         ("direct streamed call", [x * ms for x in ds]),
                         ("POST /playground/stream", [x * ms for x in vs])):
        print(f"  {name:22s} p50 {percentile(values, 50):6.2f} ms  p95 {percentile(values, 95):6.2f} ms  "
              f"mean {statistics.fmean(values):6.2f} ms")
    print("overhead over the direct call (per pair):")
    for name, values in (("service generate()", over_s), ("page POST /run", over_v),
                         ("streamed POST /stream", over_vs)):
        p50 = percentile(values, 50)
        print(f"  {name:22s} p50 {p50:6.2f} ms  p95 {percentile(values, 95):6.2f} ms"
              f"  (target p50 <= 5 ms: {'met' if p50 <= 5 else 'NOT met'})")
    sim.stop()


if __name__ == "__main__":
    main()
