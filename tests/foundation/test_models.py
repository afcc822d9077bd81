"""Models: the seeded catalog, tier defaults and the named constraints."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from keys.models import APIKey
from orgs.models import TIER_LIMITS, Organization
from tests.factories import OrganizationFactory, ProjectFactory, fake_secret, make_api_key
from usage.models import CatalogModel, ModelPrice

pytestmark = pytest.mark.django_db

FACTS = json.loads(
    (Path(__file__).resolve().parents[2] / "usage" / "data" / "openai-models.json").read_text()
)


def test_the_catalog_is_seeded_from_the_facts():
    assert CatalogModel.objects.count() == len(FACTS["models"])
    for row in FACTS["models"]:
        model = CatalogModel.objects.get(model_id=row["id"])
        assert model.category == row["category"]
        assert model.supports_reasoning == row["reasoning"]
        price = ModelPrice.objects.get(model=model, organization=None)
        for field, key in (
            ("input_per_mtok", "input"),
            ("cached_input_per_mtok", "cached_input"),
            ("output_per_mtok", "output"),
        ):
            expected = None if row[key] is None else Decimal(str(row[key]))
            assert getattr(price, field) == expected, (row["id"], field)


def test_unpriced_models_have_null_prices_not_zero():
    price = ModelPrice.objects.get(model__model_id="gpt-image-1", organization=None)
    assert price.input_per_mtok is None and price.output_per_mtok is None


def test_the_priority_multiplier_follows_the_facts():
    assert CatalogModel.objects.get(model_id="gpt-5.5").priority_multiplier == Decimal("2.5")
    assert CatalogModel.objects.get(model_id="gpt-5.4-mini").priority_multiplier == Decimal("2")
    assert CatalogModel.objects.get(model_id="gpt-4.1").priority_multiplier is None


@pytest.mark.parametrize("row", FACTS["tiers"], ids=lambda r: r["tier"])
def test_tiers_carry_the_table_defaults(row):
    org = OrganizationFactory(tier=row["tier"])
    assert (org.default_rpm, org.default_tpm) == (row["rpm"], row["tpm"])
    assert set(TIER_LIMITS) == {r["tier"] for r in FACTS["tiers"]}
    assert {c.value for c in Organization.Tier} == set(TIER_LIMITS)


def test_a_project_key_without_a_project_is_refused_by_the_database():
    org = OrganizationFactory()
    project = ProjectFactory(organization=org)
    api_key = make_api_key(project)
    with pytest.raises(IntegrityError), transaction.atomic():
        APIKey.objects.filter(pk=api_key.pk).update(project=None)


def test_the_same_key_cannot_be_stored_twice():
    project = ProjectFactory()
    secret = fake_secret()
    first = make_api_key(project, secret=secret)
    clone = APIKey(
        organization=project.organization,
        project=project,
        name="clone",
        hint=first.hint,
        fingerprint=first.fingerprint,
        secret=first.secret,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        clone.save()


def test_project_names_are_unique_within_an_organization():
    project = ProjectFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectFactory(organization=project.organization, name=project.name)
    ProjectFactory(name=project.name)  # another organization may reuse it


def test_project_defaults_follow_the_sdk_guide():
    project = ProjectFactory()
    assert project.rotation_period_days == 90
    assert project.request_timeout_seconds == 60
    assert project.connect_timeout_seconds == 5
    assert project.max_retries == 3
    assert project.circuit_breaker_enabled is True
