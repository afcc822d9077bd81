"""The playground's reads: usable keys, the models a project may call, its per-model limits."""

from __future__ import annotations

import pytest

from keys.models import APIKey
from keys.selectors import usable_keys
from keys.services import api_key_secret_for_call
from orgs.models import ProjectModelLimit
from platformadmin.openai import ratelimit
from platformadmin.openai.services import NOT_RESPONSES_MODELS, models_for_project
from tests.factories import ProjectFactory, fake_secret, make_api_key
from usage.models import CatalogModel

pytestmark = pytest.mark.django_db


def test_usable_keys_are_the_active_non_admin_keys_by_name(project, django_assert_num_queries):
    secrets_by_name = {}
    for name in ("b key", "a key", "c key"):
        secrets_by_name[name] = fake_secret("proj")
        make_api_key(project, name=name, secret=secrets_by_name[name])
    revoked = make_api_key(project, name="0 revoked")
    revoked.status = APIKey.Status.REVOKED
    revoked.save()
    make_api_key(ProjectFactory(organization=project.organization), name="elsewhere")
    with django_assert_num_queries(1):
        got = usable_keys(project=project)
    assert [k.name for k in got] == ["a key", "b key", "c key"]
    for key in got:
        assert api_key_secret_for_call(key) == secrets_by_name[key.name]  # opens as usual


@pytest.mark.parametrize(
    "allowed", [[], ["gpt-5.4-mini", "gpt-4.1", "text-embedding-3-small", "no-such-model"]]
)
def test_the_models_a_project_may_call_are_the_active_responses_models_it_allows(project, allowed):
    CatalogModel.objects.filter(model_id="gpt-4.1").update(is_active=False)
    rows = (
        CatalogModel.objects.filter(is_active=True)
        .exclude(category__in=NOT_RESPONSES_MODELS)
        .order_by("model_id")
    )
    if allowed:
        rows = rows.filter(model_id__in=sorted(allowed))
    expected = list(rows.values_list("model_id", "supports_reasoning"))
    assert expected  # the seeded catalog is there
    project.allowed_models = allowed
    assert models_for_project(project) == expected
    assert all(type(r) is bool for _, r in models_for_project(project))


def test_limit_override_is_read_per_project_and_model(project):
    ProjectModelLimit.objects.create(project=project, model_id="gpt-5.4-mini", rpm=7, tpm=None)
    ProjectModelLimit.objects.create(
        project=ProjectFactory(organization=project.organization), model_id="gpt-4.1", rpm=9, tpm=99
    )
    assert ratelimit.limits_for(project, "gpt-4.1").source.endswith(
        "default"
    )  # another project's limit
    limits = ratelimit.limits_for(project, "gpt-5.4-mini")
    assert (limits.rpm, limits.tpm) == (7, project.organization.default_tpm)
