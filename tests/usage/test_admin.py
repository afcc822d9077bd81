"""The Django admin lists usage as money and counts, not raw decimals."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.factories import UserFactory
from tests.usage.conftest import response_json
from usage.models import UsageRecord
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db


def test_usage_lists_show_money_and_counts(client, project):
    usage_record_create(
        project=project,
        source="ingest",
        response=response_json("r1", inp=80229, cached=0, out=1000, reasoning=0),
    )
    usage_record_create(
        project=project, source="ingest", response=response_json("u1", model="whisper-1")
    )
    cost = UsageRecord.objects.get(response_id="r1").cost
    assert cost is not None and cost.as_tuple().exponent < -2  # a long decimal to show
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    for name in ("admin:usage_usagerecord_changelist", "admin:usage_usagehourly_changelist"):
        page = client.get(reverse(name)).content.decode()
        assert not re.search(r"\d\.\d{5,}", page), name  # no raw decimal like 0.4511450000
        assert "$0." in page, name
    records = client.get(reverse("admin:usage_usagerecord_changelist")).content.decode()
    assert "81,229" in records and "unpriced" in records
