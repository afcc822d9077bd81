"""`manage.py seed_demo`: the demo `make run` loads into an empty database."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from keys.models import APIKey
from keys.services import api_key_reveal_secret
from orgs.models import Organization
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


def test_it_loads_the_demo_once_and_prints_working_credentials(rf):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    output = out.getvalue()
    org = Organization.objects.get(slug="acme")
    assert sorted(org.projects.values_list("name", flat=True)) == ["Development", "Production", "Research"]
    assert APIKey.objects.filter(organization=org).count() >= 4
    for api_key in APIKey.objects.all():
        assert api_key_reveal_secret(api_key).startswith("sk-")
        assert api_key.base_url.startswith("http://127.0.0.1")
    assert UsageRecord.objects.filter(cost__isnull=True).exists(), "one model is unpriced on purpose"
    assert UsageRecord.objects.filter(cost__gt=0).exists()

    password = output.split("user 'admin' password '")[1].split("'")[0]
    assert authenticate(rf.get("/"), username="admin", password=password) is not None

    again = StringIO()
    call_command("seed_demo", stdout=again)
    assert "already present" in again.getvalue()
    assert Organization.objects.count() == 1
