"""The rotation reminders in the Django admin: listed, never added, changed or deleted
(a deleted row would be sent again by the next scan)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from keys.models import RotationReminder
from keys.reminders import rotation_reminders_scan
from tests.factories import UserFactory, make_api_key

pytestmark = pytest.mark.django_db


def test_reminders_are_listed_and_read_only_for_superusers(client, project):
    api_key = make_api_key(project)
    rotation_reminders_scan(now=api_key.created_at + dt.timedelta(days=89))
    reminder = RotationReminder.objects.get(api_key=api_key)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    listing = client.get(reverse("admin:keys_rotationreminder_changelist"))
    assert listing.status_code == 200 and api_key.name in listing.content.decode()
    assert client.get(reverse("admin:keys_rotationreminder_add")).status_code == 403
    delete = reverse("admin:keys_rotationreminder_delete", args=[reminder.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert RotationReminder.objects.filter(pk=reminder.pk).exists()
    assert api_key.secret not in listing.content.decode()
