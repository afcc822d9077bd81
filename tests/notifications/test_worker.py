"""Exactly once on real Celery workers (separate processes, the configured broker: the
embedded filesystem transport locally, Redis in CI), into the real receivers.

- the same deliver task sent 3 times per notification, run by 2 workers at once: one
  e-mail, one webhook request (signature verified), one in-app row per recipient;
- a worker SIGKILLed while its delivery is in flight (the receiver holds the request):
  once the lease has passed, the sweep has the other worker deliver it once more, with the
  same Idempotency-Key both times.

The workers are ``celery -A platformadmin worker`` subprocesses, so the database must be
one they can open: PostgreSQL (CI) or a file. On in-memory SQLite (the default run) these
tests are skipped, saying so.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from django.db import connection, transaction

from platformadmin.celery import app
from platformadmin.notifications.models import InAppMessage, Notification, NotificationAttempt
from platformadmin.notifications.services import (
    notification_channel_create,
    notifications_enqueue,
)
from tests.factories import OrganizationFactory, UserFactory, add_org_member
from tests.notifications.receivers import SMTPReceiver, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
DELIVER = "notifications.notification_deliver"
SWEEP = "notifications.notifications_sweep"
RECEIVED = re.compile(r"Task notifications\.notification_deliver\[[^\]]+\] received")
DONE = re.compile(r"Task notifications\.notification_deliver\[[^\]]+\] succeeded in [^:]+: '(\w+)'")


QUEUE = f"notifications-test-{uuid.uuid4().hex[:12]}"
# Short limits, so a killed worker's claim expires within the test.
SHORT_LIMITS = {
    "NOTIFICATION_DELIVERY_TIME_LIMIT": "3",
    "NOTIFICATION_CLAIM_LEASE_SECONDS": "4",
    "NOTIFICATION_HTTP_TIMEOUT_SECONDS": "2",
}


def _skip_unless_shared_database() -> None:
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip(
            "a worker subprocess cannot open the in-memory SQLite test database: run with "
            "DATABASE_URL=postgres://… (as CI does) to run the real-worker tests"
        )


@pytest.fixture
def queue(monkeypatch) -> str:
    """The workers' own queue: the tasks the code under test sends go there (and the
    workers consume only it), not to messages other tests left in the default queue."""
    task = app.tasks[DELIVER]
    monkeypatch.setattr(task, "_exec_options", {**task._get_exec_options(), "queue": QUEUE})
    return QUEUE


@pytest.fixture(scope="module")
def pair(django_db_setup, _smtp_receiver_server, _webhook_receiver_server, tmp_path_factory):
    """Two worker processes for this module's tests (started once: a start costs seconds)."""
    _skip_unless_shared_database()
    with workers(
        2,
        queue=QUEUE,
        tmp_path=tmp_path_factory.mktemp("workers"),
        smtp=_smtp_receiver_server,
        origin=_webhook_receiver_server.origin,
        **SHORT_LIMITS,
    ) as started:
        yield started


class Worker:
    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "platformadmin",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-Q",
                env["NOTIFICATION_TEST_QUEUE"],
                "-n",
                f"{name}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a SIGKILL takes the children too
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        return "ready." in self.text() or self.process.poll() is not None

    def mark(self) -> int:
        return len(self.text())

    def outcomes(self, since: int = 0) -> list[str]:
        return DONE.findall(self.text()[since:])

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)  # idle by now: a warm shutdown is quick
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._file.close()


@contextmanager
def workers(
    count: int, *, queue: str, tmp_path: Path, smtp: SMTPReceiver, origin: str, **extra: str
) -> Iterator[list[Worker]]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.notifications.worker_settings",
        "PYTHONPATH": str(ROOT),
        "NOTIFICATION_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "NOTIFICATION_TEST_SMTP_PORT": str(smtp.port),
        "NOTIFICATION_TEST_QUEUE": queue,
        "OUTBOUND_ALLOWED_ORIGINS": origin,
        **extra,
    }
    started = [
        Worker(
            f"w{i}-{uuid.uuid4().hex[:6]}", env, tmp_path / f"worker{i}-{uuid.uuid4().hex[:4]}.log"
        )
        for i in range(count)
    ]
    try:
        for worker in started:
            assert wait_for(worker.ready, timeout=90), f"worker did not start:\n{worker.text()}"
            assert worker.process.poll() is None, f"worker exited:\n{worker.text()[-3000:]}"
        yield started
    finally:
        for worker in started:
            worker.stop()


def _organization_with_channels(smtp_receiver, webhook_receiver):
    organization = OrganizationFactory()
    owner = UserFactory(email="owner@example.com")
    add_org_member(owner, organization, "owner")
    second = UserFactory(email="second@example.com")
    add_org_member(second, organization, "owner")
    notification_channel_create(organization=organization, actor=owner, kind="in_app", name="Bell")
    notification_channel_create(organization=organization, actor=owner, kind="email", name="Mail")
    created = notification_channel_create(
        organization=organization,
        actor=owner,
        kind="webhook",
        name="Hook",
        url=webhook_receiver.url("/hook"),
    )
    webhook_receiver.secrets["/hook"] = created.signing_secret
    return organization, (owner, second)


def _enqueue(organization) -> list[Notification]:
    return notifications_enqueue(
        organization=organization,
        kind="budget.threshold",
        subject=f"budget:{uuid.uuid4()}",
        period="2026-12",
        stage="80",
        title="Budget at 80 %",
        body="$80.00 of $100.00",
        payload={},
    )


def test_three_sends_to_two_workers_deliver_each_notification_once(
    smtp_receiver, webhook_receiver, queue, pair
):
    one, two = pair
    assert one.process.poll() is None and two.process.poll() is None
    marks = one.mark(), two.mark()
    organization, people = _organization_with_channels(smtp_receiver, webhook_receiver)
    with transaction.atomic():
        rows = _enqueue(organization)  # queues the first send of each on commit
        for row in rows:  # two more sends of each, published with it, back to back
            for _ in range(2):
                transaction.on_commit(partial(app.tasks[DELIVER].delay, row.pk))
    assert len(rows) == 3

    def outcomes() -> list[str]:
        return one.outcomes(marks[0]) + two.outcomes(marks[1])

    assert wait_for(lambda: len(outcomes()) >= 9, timeout=90), (
        f"not all 9 tasks ran:\n{one.text()[-2000:]}\n{two.text()[-2000:]}"
    )
    assert sorted(outcomes()) == ["sent"] * 3 + ["skipped"] * 6, outcomes()
    assert len(smtp_receiver.received()) == 1
    assert sorted(smtp_receiver.received()[0].rcpt_tos) == [p.email for p in people]
    [request] = webhook_receiver.received()
    assert request.signature_valid is True
    assert InAppMessage.objects.count() == 2  # one per owner
    assert set(Notification.objects.values_list("state", flat=True)) == {"sent"}
    assert NotificationAttempt.objects.count() == 3


def test_a_worker_killed_mid_delivery_is_followed_by_one_delivery_with_the_same_key(
    smtp_receiver, webhook_receiver, queue, pair
):
    organization = OrganizationFactory()
    owner = UserFactory()
    add_org_member(owner, organization, "owner")
    created = notification_channel_create(
        organization=organization,
        actor=owner,
        kind="webhook",
        name="Hook",
        url=webhook_receiver.url("/hook"),
    )
    webhook_receiver.secrets["/hook"] = created.signing_secret
    webhook_receiver.hold(1)  # the first request is recorded, then never answered
    marks = {id(w): w.mark() for w in pair}
    [row] = _enqueue(organization)
    assert webhook_receiver.arrived.wait(60), "no request arrived"
    # SIGKILL to the worker holding the delivery (and its pool child), mid-request.
    [busy] = [w for w in pair if RECEIVED.search(w.text()[marks[id(w)] :])]
    row.refresh_from_db()
    assert row.state == Notification.State.SENDING
    busy.kill()
    webhook_receiver.release()
    [survivor] = [w for w in pair if w is not busy]

    # A redelivered message (if the broker hands it back) finds the row claimed until the
    # lease ends; the sweep then queues it: poll until it is delivered.
    def delivered() -> bool:
        app.tasks[SWEEP].apply_async(queue=queue)
        row.refresh_from_db()
        return row.state == Notification.State.SENT

    assert wait_for(delivered, timeout=90, every=1.0), survivor.text()[-3000:]
    first_request, second_request = webhook_receiver.received()
    assert first_request.idempotency_key == second_request.idempotency_key == row.unique_key
    assert first_request.signature_valid and second_request.signature_valid
    assert second_request.json()["attempt"] == 2
    attempts = list(row.delivery_attempts.order_by("number"))
    assert [a.succeeded for a in attempts] == [False, True]
    assert attempts[0].error.startswith("Interrupted")
    assert len(webhook_receiver.received()) == 2
