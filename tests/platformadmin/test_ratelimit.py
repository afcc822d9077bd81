"""The project's RPM/TPM limit: tier defaults, overrides, and counting across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import time_machine
from django.test import override_settings

from orgs.models import ProjectModelLimit
from platformadmin.openai import ratelimit
from tests.platformadmin.test_breaker import _shared_cache_settings

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
FROZEN = 1_900_000_005  # both processes in the same one-minute window


def test_tier_defaults_apply_without_an_override(project):
    project.organization.tier = "free"
    project.organization.save()
    limits = ratelimit.limits_for(project, "gpt-5.4-mini")
    assert (limits.rpm, limits.tpm) == (3, 40_000)
    assert "Free default" in limits.source


def test_a_project_override_wins_per_model(project):
    ProjectModelLimit.objects.create(project=project, model_id="gpt-5.4-mini", rpm=7)
    limits = ratelimit.limits_for(project, "gpt-5.4-mini")
    assert limits.rpm == 7 and limits.tpm == project.organization.default_tpm
    assert ratelimit.limits_for(project, "gpt-4.1").rpm == project.organization.default_rpm


def test_a_refused_request_is_not_counted(project):
    limits = ratelimit.ProjectLimits(rpm=1, tpm=1000, source="test")
    ratelimit.reserve(project=project, model="m", estimated_tokens=10, limits=limits)
    for _ in range(3):
        with pytest.raises(ratelimit.RateLimited) as info:
            ratelimit.reserve(project=project, model="m", estimated_tokens=10, limits=limits)
    assert "limit of 1 requests per minute" in info.value.message
    assert 1 <= info.value.retry_after <= 60


def test_settling_corrects_the_token_estimate(project):
    limits = ratelimit.ProjectLimits(rpm=100, tpm=100, source="test")
    ratelimit.reserve(project=project, model="m", estimated_tokens=90, limits=limits).settle(10)
    ratelimit.reserve(
        project=project, model="m", estimated_tokens=80, limits=limits
    )  # 10 + 80 fits
    with pytest.raises(ratelimit.RateLimited):
        ratelimit.reserve(project=project, model="m", estimated_tokens=20, limits=limits)


def test_counts_are_shared_across_processes(tmp_path):
    caches_conf = _shared_cache_settings(tmp_path)
    public_id = uuid.uuid4()
    script = textwrap.dedent(f"""
        import django, os, uuid
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        django.setup()
        from types import SimpleNamespace
        from django.test.utils import override_settings
        import time_machine
        with override_settings(CACHES={caches_conf!r}), time_machine.travel({FROZEN}, tick=False):
            from platformadmin.openai import ratelimit
            limits = ratelimit.ProjectLimits(rpm=2, tpm=10**6, source="test")
            project = SimpleNamespace(public_id=uuid.UUID({str(public_id)!r}))
            for _ in range(2):
                ratelimit.reserve(project=project, model="m", estimated_tokens=1, limits=limits)
            print("ok")
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr
    with override_settings(CACHES=caches_conf), time_machine.travel(FROZEN, tick=False):
        with pytest.raises(ratelimit.RateLimited):
            ratelimit.reserve(
                project=SimpleNamespace(public_id=public_id),
                model="m",
                estimated_tokens=1,
                limits=ratelimit.ProjectLimits(rpm=2, tpm=10**6, source="test"),
            )


# --- On Redis (CI): the same public cache calls, atomic there -------------------------


@pytest.fixture
def redis_cache():
    """Django's Redis cache on CACHE_URL (CI, or a developer's Redis); skipped without one."""
    from django.conf import settings

    configured = settings.CACHES["default"]
    if "redis" not in configured["BACKEND"].lower():
        pytest.skip("the configured cache is not Redis (set CACHE_URL=rediscache://...; CI does)")
    conf = {"default": {**configured, "KEY_PREFIX": f"rl-{uuid.uuid4().hex}"}}
    with override_settings(CACHES=conf):
        from django.core.cache import caches

        yield caches["default"]


def test_redis_counts_in_the_keys_django_reads(project, redis_cache):
    limits = ratelimit.ProjectLimits(rpm=5, tpm=1000, source="test")
    with time_machine.travel(FROZEN, tick=False):
        reservation = ratelimit.reserve(
            project=project, model="m", estimated_tokens=40, limits=limits
        )
        ratelimit.reserve(project=project, model="m", estimated_tokens=10, limits=limits)
        reservation.settle(25)
        prefix = f"openai-ratelimit:{project.public_id}:m:{FROZEN // ratelimit.WINDOW}"
        assert redis_cache.get(f"{prefix}:requests") == 2
        assert redis_cache.get(f"{prefix}:tokens") == 35  # 40 + 10, corrected by -15


def test_redis_refusals_are_not_counted(project, redis_cache):
    rpm = ratelimit.ProjectLimits(rpm=1, tpm=1000, source="test")
    with time_machine.travel(FROZEN, tick=False):
        ratelimit.reserve(project=project, model="m", estimated_tokens=10, limits=rpm)
        for _ in range(3):
            with pytest.raises(ratelimit.RateLimited) as info:
                ratelimit.reserve(project=project, model="m", estimated_tokens=10, limits=rpm)
        assert "limit of 1 requests per minute" in info.value.message
        prefix = f"openai-ratelimit:{project.public_id}:m:{FROZEN // ratelimit.WINDOW}"
        assert (redis_cache.get(f"{prefix}:requests"), redis_cache.get(f"{prefix}:tokens")) == (
            1,
            10,
        )
        tpm = ratelimit.ProjectLimits(rpm=100, tpm=50, source="test")
        with pytest.raises(ratelimit.RateLimited) as info:
            ratelimit.reserve(project=project, model="m", estimated_tokens=45, limits=tpm)
        assert "tokens per minute" in info.value.message
        assert (redis_cache.get(f"{prefix}:requests"), redis_cache.get(f"{prefix}:tokens")) == (
            1,
            10,
        )
