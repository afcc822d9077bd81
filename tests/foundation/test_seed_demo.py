"""`manage.py seed_demo`: the demo `make run` loads into an empty database."""

from __future__ import annotations

import stat
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command

from keys.models import APIKey
from keys.services import api_key_secret_for_call
from orgs.models import Organization, OrganizationMembership, ProjectMembership
from platformadmin.management.commands.seed_demo import write_passwords
from tests.factories import make_api_key
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path  # where the passwords file goes
    settings.OPENAI_SIMULATOR_URL = "http://127.0.0.1:8765/v1"
    return tmp_path


def seed(*args) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_it_loads_the_demo_once_and_prints_working_credentials(rf):
    output = seed()
    org = Organization.objects.get(slug="acme")
    assert sorted(org.projects.values_list("name", flat=True)) == [
        "Development",
        "Production",
        "Research",
    ]
    assert APIKey.objects.filter(organization=org).count() >= 4
    for api_key in APIKey.objects.all():
        assert api_key_secret_for_call(api_key).startswith("sk-")
        assert api_key.base_url == "http://127.0.0.1:8765/v1"
    assert UsageRecord.objects.filter(cost__isnull=True).exists(), (
        "one model is unpriced on purpose"
    )
    assert UsageRecord.objects.filter(cost__gt=0).exists()

    password = output.split("user 'admin' password '")[1].split("'")[0]
    assert authenticate(rf.get("/"), username="admin", password=password) is not None

    again = seed()
    assert "already present" in again
    assert Organization.objects.count() == 1


def test_the_roles_it_prints_are_the_roles_it_gives():
    output = seed()
    org = Organization.objects.get(slug="acme")
    users = {u.username: u for u in get_user_model().objects.all()}
    admin, reader, developer = users["admin"], users["reader"], users["developer"]
    assert admin.is_superuser and admin.is_staff
    assert OrganizationMembership.objects.get(user=admin, organization=org).role == "owner"
    assert OrganizationMembership.objects.get(user=reader, organization=org).role == "reader"
    assert not reader.is_staff and not developer.is_staff
    assert not OrganizationMembership.objects.filter(user=developer).exists()
    assert sorted(
        ProjectMembership.objects.filter(user=developer).values_list("project__name", "role")
    ) == [("Development", "member"), ("Production", "member"), ("Research", "member")]
    assert (
        "'admin' password" in output
        and "Django superuser" in output
        and "owner of organization Acme Corp" in output
    )
    assert "reader of organization Acme Corp" in output
    assert (
        "member of projects Production, Development and Research" in output
        and "no organization role" in output
    )


def test_the_passwords_are_kept_in_a_file_only_the_user_can_read(_var_dir, rf):
    output = seed()
    path = _var_dir / "demo-passwords.txt"
    assert f"Passwords kept in {path}" in output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = seed("--credentials")
    assert str(path) in again
    for name in ("admin", "reader", "developer"):
        password = again.split(f"  {name}")[1].split("password ")[1].split()[0]
        assert authenticate(rf.get("/"), username=name, password=password) is not None
    path.chmod(0o644)  # a file left readable by others is tightened on the next write
    write_passwords({"admin": "x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_force_twice_is_a_clear_error_not_a_traceback():
    seed()
    with pytest.raises(CommandError, match="exists already"):
        seed("--force")


def test_without_a_kept_file_credentials_says_how_to_set_a_password(_var_dir):
    assert "changepassword admin" in seed("--credentials")


def test_a_changed_simulator_port_re_points_the_demo_keys(settings):
    seed()
    org = Organization.objects.get(slug="acme")
    own = make_api_key(
        org.projects.get(name="Research"),
        provider="compatible",
        base_url="https://llm.example.com/v1",
    )
    settings.OPENAI_SIMULATOR_URL = "http://127.0.0.1:8860/v1"
    output = seed()
    assert "Re-pointed 5 demo key(s) at the simulator on http://127.0.0.1:8860/v1" in output
    assert set(APIKey.objects.exclude(pk=own.pk).values_list("base_url", flat=True)) == {
        "http://127.0.0.1:8860/v1"
    }
    own.refresh_from_db()
    assert own.base_url == "https://llm.example.com/v1"  # someone's own key stays
    assert "Re-pointed" not in seed()  # nothing left to move
