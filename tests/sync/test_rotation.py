"""Automated rotation of service-account keys against the simulator's Admin API: the
whole run, an interruption at every step (then a fresh call resumes), a create whose
reply comes too late, failures (notified), the policy's tick and the reminders it stops."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from django.utils import timezone

from keys.models import APIKey, RotationReminder
from keys.reminders import rotation_reminders_scan
from keys.services import api_key_create_unaudited, api_key_secret_for_call
from orgs.models import AuditEvent, ServiceAccount
from platformadmin.notifications.models import Notification
from platformadmin.openai.simulator_admin import Injected
from platformadmin.sync.models import KeyRotation
from platformadmin.sync.rotation import (
    MAX_ATTEMPTS,
    RotationRefused,
    rotation_advance,
    rotation_start,
    rotations_tick,
)

Step = KeyRotation.Step
CREATE_PATH = r"/service_accounts/[^/]+/api_keys$"


@dataclass
class Account:
    linked: object
    account: ServiceAccount
    upstream_account: dict
    upstream_key: dict
    key: APIKey

    @property
    def upstream(self):
        return self.linked.upstream

    def upstream_keys(self) -> list[dict]:
        """The account's keys at OpenAI (the simulator's state)."""
        return [
            k
            for k in self.upstream.api_keys.values()
            if (k["owner"].get("service_account") or {}).get("id") == self.upstream_account["id"]
        ]

    def current_keys(self) -> list[APIKey]:
        return list(APIKey.objects.filter(service_account=self.account, status="active"))


@pytest.fixture
def svc(linked):
    """A service account linked to the simulator, with its one key stored here."""
    upstream_account = linked.upstream.add_service_account(linked.upstream_project["id"], "bot")
    upstream_key = linked.upstream.add_key(
        linked.upstream_project["id"], name="bot key", service_account_id=upstream_account["id"]
    )
    account = ServiceAccount.objects.create(
        project=linked.project, name="bot", openai_id=upstream_account["id"]
    )
    key = api_key_create_unaudited(
        organization=linked.organization,
        project=linked.project,
        service_account=account,
        name="bot key",
        kind=APIKey.Kind.SERVICE_ACCOUNT,
        secret=upstream_key["value"],
        openai_key_id=upstream_key["id"],
        base_url=linked.simulator.base_url,
    )
    return Account(linked, account, upstream_account, upstream_key, key)


def _after_grace(rotation: KeyRotation) -> dt.datetime:
    rotation.refresh_from_db()
    return rotation.grace_until + dt.timedelta(seconds=1)


def assert_finished(svc: Account, rotation: KeyRotation) -> None:
    """Exactly one current key (the new one), the old one deleted here and upstream, and
    exactly one key of the account left at OpenAI."""
    rotation.refresh_from_db()
    assert rotation.step == Step.DONE, rotation.last_error
    current = svc.current_keys()
    assert [k.pk for k in current] == [rotation.pending_key_id]
    new = current[0]
    assert new.openai_key_id == rotation.pending_openai_key_id
    assert new.secret_stored and api_key_secret_for_call(new).startswith("sk-svcacct-")
    svc.key.refresh_from_db()
    assert svc.key.status == APIKey.Status.DELETED_UPSTREAM
    upstream = svc.upstream_keys()
    assert [k["id"] for k in upstream] == [new.openai_key_id]
    assert upstream[0]["name"] == rotation.pending_key_name
    assert svc.upstream_key["id"] not in svc.upstream.api_keys
    # The value stored is the one OpenAI issued for that key.
    assert api_key_secret_for_call(new) == upstream[0]["value"]


def test_full_rotation_waits_for_the_grace_period(svc):
    rotation = rotation_start(api_key=svc.key)
    assert rotation.pending_key_name == f"console-rotation-{rotation.public_id}"
    rotation = rotation_advance(rotation_id=rotation.pk)
    assert rotation.step == Step.PROMOTED
    assert rotation.grace_until - timezone.now() > dt.timedelta(hours=23)
    # During the grace period the new key is current and the old one still works upstream.
    assert [k.pk for k in svc.current_keys()] == [rotation.pending_key_id]
    assert svc.upstream_key["id"] in svc.upstream.api_keys
    assert len(svc.upstream_keys()) == 2
    # Before the deadline, nothing more happens.
    assert rotation_advance(rotation_id=rotation.pk).step == Step.PROMOTED
    rotation_advance(rotation_id=rotation.pk, now=_after_grace(rotation))
    assert_finished(svc, rotation)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"key.rotation_start", "key.rotation_store", "key.rotate"} <= actions
    assert "key.deleted_upstream" in actions


@pytest.mark.parametrize("step", [Step.CREATED, Step.STORED, Step.VERIFIED, Step.PROMOTED])
def test_interrupted_after_each_step_resumes(svc, step):
    rotation = rotation_start(api_key=svc.key)
    rotation = rotation_advance(rotation_id=rotation.pk, stop_after=step)
    assert rotation.step == step
    assert len(svc.current_keys()) == 1  # never two current keys, never none
    if step != Step.PROMOTED:
        assert svc.current_keys()[0].pk == svc.key.pk
    # A fresh call (another worker after a crash) resumes from the recorded step.
    rotation = rotation_advance(rotation_id=rotation.pk)
    assert rotation.step == Step.PROMOTED
    assert len(svc.current_keys()) == 1
    rotation_advance(rotation_id=rotation.pk, now=_after_grace(rotation))
    assert_finished(svc, rotation)


def test_crash_between_create_and_store_discards_the_unknown_key(svc):
    """After ``created`` the value lived only in the crashed process: that key is deleted
    upstream and a new one created; never two new keys at OpenAI."""
    rotation = rotation_start(api_key=svc.key)
    rotation = rotation_advance(rotation_id=rotation.pk, stop_after=Step.CREATED)
    lost_id = rotation.pending_openai_key_id
    assert lost_id in svc.upstream.api_keys
    rotation = rotation_advance(rotation_id=rotation.pk)
    assert lost_id not in svc.upstream.api_keys
    assert rotation.pending_openai_key_id != lost_id
    rotation_advance(rotation_id=rotation.pk, now=_after_grace(rotation))
    assert_finished(svc, rotation)


def test_failure_while_creating_is_retried(svc):
    svc.upstream.inject.append(Injected("POST", CREATE_PATH, status=500))
    rotation = rotation_start(api_key=svc.key)
    rotation = rotation_advance(rotation_id=rotation.pk)
    assert rotation.step == Step.STARTED
    assert rotation.attempts == 1 and "500" in rotation.last_error
    assert svc.upstream_keys() == [svc.upstream_key]  # nothing created
    rotation = rotation_advance(rotation_id=rotation.pk)
    rotation_advance(rotation_id=rotation.pk, now=_after_grace(rotation))
    assert_finished(svc, rotation)


def test_create_that_times_out_after_the_key_was_made_leaves_one_key(svc, settings):
    settings.OPENAI_ADMIN_TIMEOUT_SECONDS = 0.5
    svc.upstream.inject.append(Injected("POST", CREATE_PATH, delay=1.5))
    rotation = rotation_start(api_key=svc.key)
    rotation = rotation_advance(rotation_id=rotation.pk)
    assert rotation.step == Step.STARTED
    assert "within" in rotation.last_error  # the timeout, named
    # The key OpenAI made anyway was found by its name and deleted: its value never came.
    made = [e for e in svc.upstream.audit_log if e["type"] == "api_key.created"]
    assert [k["id"] for k in svc.upstream_keys()] == [svc.upstream_key["id"]]
    rotation = rotation_advance(rotation_id=rotation.pk)
    assert rotation.step == Step.PROMOTED
    rotation_advance(rotation_id=rotation.pk, now=_after_grace(rotation))
    assert_finished(svc, rotation)
    created_after = [e for e in svc.upstream.audit_log if e["type"] == "api_key.created"]
    assert len(created_after) == len(made) + 1  # one more key made, never two at a time


def test_failure_deleting_the_old_key_is_retried_after_grace(svc):
    rotation = rotation_start(api_key=svc.key)
    rotation = rotation_advance(rotation_id=rotation.pk)
    # Every try of the delete fails (the SDK retries reads and deletes, not creates).
    svc.upstream.inject.append(Injected("DELETE", r"/api_keys/[^/]+$", status=500, times=None))
    later = _after_grace(rotation)
    rotation = rotation_advance(rotation_id=rotation.pk, now=later)
    assert rotation.step == Step.PROMOTED and rotation.attempts == 1
    assert [k.pk for k in svc.current_keys()] == [rotation.pending_key_id]
    assert svc.upstream_key["id"] in svc.upstream.api_keys
    svc.upstream.inject.clear()
    rotation_advance(rotation_id=rotation.pk, now=later)
    assert_finished(svc, rotation)


def test_rotation_that_keeps_failing_is_notified_and_keeps_the_old_key(svc):
    svc.upstream.inject.append(Injected("POST", CREATE_PATH, status=500, times=None))
    rotation = rotation_start(api_key=svc.key)
    for _ in range(MAX_ATTEMPTS):
        rotation = rotation_advance(rotation_id=rotation.pk)
    assert rotation.step == Step.FAILED and rotation.finished_at is not None
    assert [k.pk for k in svc.current_keys()] == [svc.key.pk]
    assert svc.upstream_keys() == [svc.upstream_key]
    sent = Notification.objects.filter(kind="key.rotation_failed")
    assert sent.exists()
    assert all(svc.key.hint in n.body and "current key" in n.body for n in sent)
    # A failed rotation frees the account: a new one can start.
    svc.upstream.inject.clear()
    again = rotation_start(api_key=svc.key)
    rotation_advance(rotation_id=again.pk)
    rotation_advance(rotation_id=again.pk, now=_after_grace(again))
    assert_finished(svc, again)


def test_one_open_rotation_per_account_and_refusals(svc, linked):
    rotation_start(api_key=svc.key)
    with pytest.raises(RotationRefused, match="already running"):
        rotation_start(api_key=svc.key)
    with pytest.raises(RotationRefused, match="Only service-account keys"):
        rotation_start(api_key=linked.api_key)
    assert KeyRotation.objects.count() == 1


def test_tick_starts_due_keys_of_auto_rotating_projects_and_finishes_them(svc):
    project = svc.linked.project
    now = timezone.now() + dt.timedelta(days=project.rotation_period_days + 1)
    assert rotations_tick(now=now) == {"advanced": 0, "started": 0}  # policy off
    project.auto_rotate_service_account_keys = True
    project.save(update_fields=["auto_rotate_service_account_keys"])
    assert rotations_tick(now=now)["started"] == 1
    rotation = KeyRotation.objects.get()
    assert rotation.started_by is None
    rotations_tick(now=now)  # advances it (the task queued on commit does the same)
    rotation.refresh_from_db()
    assert rotation.step == Step.PROMOTED
    assert rotations_tick(now=now)["started"] == 0  # the new key is not due
    rotations_tick(now=_after_grace(rotation))
    assert_finished(svc, rotation)


def test_reminders_skip_keys_rotated_automatically(svc):
    project = svc.linked.project
    now = timezone.now() + dt.timedelta(days=project.rotation_period_days + 1)
    rotation_reminders_scan(now=now)
    assert RotationReminder.objects.filter(api_key=svc.key).exists()  # policy off: reminded
    RotationReminder.objects.all().delete()
    project.auto_rotate_service_account_keys = True
    project.save(update_fields=["auto_rotate_service_account_keys"])
    rotation_reminders_scan(now=now)
    assert not RotationReminder.objects.filter(api_key=svc.key).exists()
    # A project key of the same project (not rotated by the sync) is still reminded.
    assert RotationReminder.objects.filter(api_key=svc.linked.api_key).exists()


def test_a_new_key_that_fails_verification_is_not_promoted(svc):
    rotation = rotation_start(api_key=svc.key)
    rotation = rotation_advance(rotation_id=rotation.pk, stop_after=Step.STORED)
    svc.linked.simulator.force_faults = {"401"}  # OpenAI refuses the new key (for now)
    rotation = rotation_advance(rotation_id=rotation.pk)
    assert rotation.step == Step.STORED and rotation.attempts == 1
    assert "did not work" in rotation.last_error
    assert api_key_secret_for_call(rotation.pending_key) not in rotation.last_error
    assert [k.pk for k in svc.current_keys()] == [svc.key.pk]  # the old key stays current
    svc.linked.simulator.force_faults = set()
    rotation = rotation_advance(rotation_id=rotation.pk)
    assert rotation.step == Step.PROMOTED
    rotation_advance(rotation_id=rotation.pk, now=_after_grace(rotation))
    assert_finished(svc, rotation)
