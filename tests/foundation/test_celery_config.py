"""The Celery configuration (platformadmin/settings.py, "Celery"): every periodic task
scheduled in one place and registered, every task of ours with time limits and late
acknowledgement, and the broker's visibility timeout longer than any task run, countdown
or ETA (else Redis hands a waiting or running task to a second worker)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from django.apps import apps as django_apps
from django.conf import settings

from platformadmin.celery import app

ROOT = Path(__file__).resolve().parents[2]
OUR_APPS = ("keys", "orgs", "usage", "platformadmin")
# Every module that sends a task with a countdown or an ETA, and the setting that caps it.
# A new countdown fails test_every_countdown_has_a_cap_below_the_visibility_timeout until
# it is listed here and its cap in settings.CELERY_COUNTDOWN_CAPS.
COUNTDOWN_SENDERS = {
    "platformadmin/notifications/tasks.py": "NOTIFICATION_RETRY_MAX_SECONDS",
    "usage/budgets.py": "BUDGET_EVALUATION_DELAY_SECONDS",
}
REQUIRED_SCHEDULES = {
    "notifications.notifications_sweep": 60,
    "usage.budgets_sweep": 15 * 60,
    "keys.rotation_reminders_scan": 3600,
}


def our_tasks() -> dict:
    for config in django_apps.get_app_configs():  # what autodiscovery imports in a worker
        if importlib.util.find_spec(f"{config.name}.tasks"):
            importlib.import_module(f"{config.name}.tasks")
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def seconds(schedule) -> float:
    return schedule if isinstance(schedule, int | float) else schedule.run_every.total_seconds()


def test_every_scheduled_task_is_registered():
    tasks = our_tasks()
    schedule = settings.CELERY_BEAT_SCHEDULE
    missing = {
        name: entry["task"] for name, entry in schedule.items() if entry["task"] not in tasks
    }
    assert not missing, f"beat would send tasks no worker knows: {missing}"
    assert app.conf.beat_schedule == schedule


def test_the_governance_schedules_are_in_the_one_place():
    by_task = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for task, every in REQUIRED_SCHEDULES.items():
        assert task in by_task, f"{task} is not scheduled in CELERY_BEAT_SCHEDULE"
        assert seconds(by_task[task]["schedule"]) == every, task
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        expires = entry.get("options", {}).get("expires")
        if expires is not None:  # a queued run is dropped before the next one is due
            assert 0 < expires <= seconds(entry["schedule"]), name


def test_every_task_of_ours_has_time_limits_and_is_acknowledged_late():
    tasks = our_tasks()
    assert {"keys.rotation_reminders_scan", "keys.secrets_reencrypt"} <= set(tasks)
    for name, task in tasks.items():
        assert task.__module__.split(".")[0] in OUR_APPS, name
        hard = task.time_limit or app.conf.task_time_limit
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        assert hard and soft and soft < hard, (name, soft, hard)
        assert task.acks_late, name
        reject = task.reject_on_worker_lost
        assert reject or (reject is None and app.conf.task_reject_on_worker_lost), name


def test_the_visibility_timeout_outlasts_every_task_run_and_countdown():
    timeout = settings.CELERY_VISIBILITY_TIMEOUT
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        assert app.conf.broker_transport_options["visibility_timeout"] == timeout
    for name, task in our_tasks().items():
        hard = task.time_limit or app.conf.task_time_limit
        assert hard < timeout, f"{name} may run {hard} s, longer than the visibility timeout"
    assert settings.CELERY_COUNTDOWN_CAPS, "no countdown cap is listed"
    for setting, cap in settings.CELERY_COUNTDOWN_CAPS.items():
        assert cap == getattr(settings, setting)
        assert cap < timeout, setting


def test_every_countdown_has_a_cap_below_the_visibility_timeout():
    senders = set()
    for package in OUR_APPS:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            if re.search(r"\b(countdown|eta)\s*=", path.read_text()):
                senders.add(path.relative_to(ROOT).as_posix())
    unknown = senders - set(COUNTDOWN_SENDERS)
    assert not unknown, f"list these countdown/ETA senders and their cap: {sorted(unknown)}"
    for sender in senders:
        assert COUNTDOWN_SENDERS[sender] in settings.CELERY_COUNTDOWN_CAPS, sender


def test_a_visibility_timeout_shorter_than_a_retry_cap_stops_the_start():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "CELERY_VISIBILITY_TIMEOUT": "60",
        "NOTIFICATION_RETRY_MAX_SECONDS": "600",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "CELERY_VISIBILITY_TIMEOUT" in result.stderr
    assert "NOTIFICATION_RETRY_MAX_SECONDS" in result.stderr
