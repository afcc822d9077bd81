"""Load demo data when the database is empty: an organization, three projects, keys, users.

The demo keys are fake and point at the bundled OpenAI simulator
(OPENAI_SIMULATOR_URL), so the playground works offline. On every run the demo keys are
re-pointed at the simulator's current URL (``make run SIM_PORT=…`` moves it).

The demo users' passwords are printed once and kept in ``<CONSOLE_VAR_DIR>/demo-passwords.txt``
(mode 0600: only the user who ran it can read it); ``seed_demo --credentials`` prints them
again with each user's role (``make run`` does, once the web server answers).
"""

from __future__ import annotations

import os
import random
import re
import secrets
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from keys.models import APIKey
from keys.services import api_key_create_unaudited
from orgs.models import (
    Organization,
    OrganizationMembership,
    Project,
    ProjectMembership,
    ServiceAccount,
)
from usage.services import usage_record_create

DEFAULT_SIMULATOR_URL = "http://127.0.0.1:8765/v1"


def _fake_key(prefix: str) -> str:
    return f"sk-{prefix}-demo{secrets.token_urlsafe(24)}"


DEMO_MODELS = ["gpt-5.4-mini", "gpt-5.4", "gpt-4.1-mini", "gpt-5.5", "gpt-image-1"]
DEMO_ORG_SLUG = "acme"
DEMO_PROJECTS = ("Production", "Development", "Research")
PASSWORDS_FILE = "demo-passwords.txt"
# What each demo user may do, exactly as handle() sets it up.
DEMO_ROLES = {
    "admin": "Django superuser (staff: the Django admin at /admin/) and owner of organization Acme Corp",
    "reader": "reader of organization Acme Corp: sees every page of it, changes nothing, no playground",
    "developer": (
        f"member of projects {', '.join(DEMO_PROJECTS[:-1])} and {DEMO_PROJECTS[-1]} (playground, "
        "usage); no organization role"
    ),
}
# The URL a demo key has when it points at a simulator on loopback (any port).
SIMULATOR_URL_RE = re.compile(r"^http://(127\.0\.0\.1|localhost):\d+/v1/?$")


def passwords_path() -> Path:
    return Path(settings.VAR_DIR) / PASSWORDS_FILE


def write_passwords(passwords: dict[str, str]) -> Path:
    """Keep the demo passwords where only this user can read them (0600, also if the file existed)."""
    path = passwords_path()
    lines = [
        "# Demo users of `make run`, written by `manage.py seed_demo` (only you can read this file).\n"
    ]
    lines += [
        f"{name}\t{password}\t{DEMO_ROLES.get(name, '')}\n" for name, password in passwords.items()
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write("".join(lines))
    return path


class Command(BaseCommand):
    help = "Create demo data (organization, projects, keys, users) if the database is empty."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="Seed even if organizations exist."
        )
        parser.add_argument(
            "--credentials",
            action="store_true",
            help="Only print the demo users, their roles and the kept passwords.",
        )

    def handle(self, *args, force: bool = False, credentials: bool = False, **options):
        if credentials:
            self._print_credentials()
            return
        self._seed(force=force)

    def _print_credentials(self) -> None:
        path = passwords_path()
        if not path.exists():
            self.stdout.write(
                f"No demo passwords kept at {path} (the demo was loaded before they were kept, or "
                "by hand). Set one with `python manage.py changepassword admin`."
            )
            return
        self.stdout.write(f"Demo users (passwords kept in {path}, readable only by you):")
        for line in path.read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, password, role = (line.split("\t") + ["", ""])[:3]
            self.stdout.write(f"  {name:<10} password {password}  {role}")

    @transaction.atomic
    def _seed(self, *, force: bool) -> None:
        User = get_user_model()
        simulator = settings.OPENAI_SIMULATOR_URL or DEFAULT_SIMULATOR_URL
        if Organization.objects.exists() and not force:
            moved = self._repoint_demo_keys(simulator)
            if moved:
                self.stdout.write(
                    f"Re-pointed {moved} demo key(s) at the simulator on {simulator}."
                )
            self.stdout.write(
                "Demo data already present. Sign in as 'admin' (password printed at first run and kept in "
                f"{passwords_path()}; reset it with `python manage.py changepassword admin`)."
            )
            return
        if Organization.objects.filter(slug=DEMO_ORG_SLUG).exists():
            raise CommandError(
                f"The demo organization '{DEMO_ORG_SLUG}' exists already: --force loads the demo "
                "beside other organizations, not twice. Use a fresh database (delete var/db.sqlite3) "
                "to start over."
            )
        passwords = {}

        def user(username: str, **extra):
            passwords[username] = secrets.token_urlsafe(12)
            obj, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com", **extra}
            )
            obj.set_password(passwords[username])
            obj.save()
            return obj

        admin = user("admin", is_staff=True, is_superuser=True)
        reader = user("reader")
        developer = user("developer")

        org = Organization.objects.create(
            name="Acme Corp",
            slug=DEMO_ORG_SLUG,
            tier=Organization.Tier.TIER_2,
            openai_org_id="org-demo-acme",
        )
        OrganizationMembership.objects.create(user=admin, organization=org, role="owner")
        OrganizationMembership.objects.create(user=reader, organization=org, role="reader")

        specs = [
            (
                "Production",
                Project.Environment.PRODUCTION,
                ["gpt-5.4-mini", "gpt-5.4", "gpt-4.1-mini"],
                4096,
            ),
            ("Development", Project.Environment.DEVELOPMENT, [], 8192),
            ("Research", Project.Environment.RESEARCH, [], None),
        ]
        for name, environment, allowed, cap in specs:
            project = Project.objects.create(
                organization=org,
                name=name,
                environment=environment,
                allowed_models=allowed,
                max_output_tokens=cap,
                openai_project_id=f"proj_demo_{name.lower()}",
            )
            ProjectMembership.objects.create(user=developer, project=project, role="member")
            api_key_create_unaudited(
                organization=org,
                project=project,
                name=f"{name} app key",
                secret=_fake_key("proj"),
                kind=APIKey.Kind.PROJECT,
                provider=APIKey.Provider.COMPATIBLE,
                base_url=simulator,
                permissions=(
                    APIKey.Permissions.RESTRICTED
                    if environment == "production"
                    else APIKey.Permissions.ALL
                ),
                created_by=admin,
            )
            if environment == Project.Environment.PRODUCTION:
                sa = ServiceAccount.objects.create(
                    project=project, name="billing-service", openai_id="user-demo-svc"
                )
                api_key_create_unaudited(
                    organization=org,
                    project=project,
                    service_account=sa,
                    name="billing-service key",
                    secret=_fake_key("svcacct"),
                    kind=APIKey.Kind.SERVICE_ACCOUNT,
                    provider=APIKey.Provider.COMPATIBLE,
                    base_url=simulator,
                    permissions=APIKey.Permissions.READ_ONLY,
                    created_by=admin,
                )
        api_key_create_unaudited(
            organization=org,
            name="Organization admin key",
            secret=_fake_key("admin"),
            kind=APIKey.Kind.ADMIN,
            provider=APIKey.Provider.COMPATIBLE,
            base_url=simulator,
            created_by=admin,
        )
        self._demo_usage(org)
        path = write_passwords(passwords)
        self.stdout.write(
            self.style.SUCCESS("Demo data loaded: organization 'Acme Corp' with 3 projects.")
        )
        for username, password in passwords.items():
            self.stdout.write(f"  user {username!r} password {password!r}: {DEMO_ROLES[username]}")
        self.stdout.write(f"Passwords kept in {path} (readable only by you).")

    def _repoint_demo_keys(self, simulator: str) -> int:
        """Point the demo organization's simulator keys at ``simulator`` (SIM_PORT changed).

        Only keys whose base URL is a simulator on loopback (``http://127.0.0.1:<port>/v1``)
        and not already this one: a key pointing anywhere else is someone's own and stays.
        """
        if not SIMULATOR_URL_RE.match(simulator):
            return 0
        stale = [
            key.pk
            for key in APIKey.objects.filter(organization__slug=DEMO_ORG_SLUG).exclude(
                base_url=simulator
            )
            if SIMULATOR_URL_RE.match(key.base_url or "")
        ]
        return APIKey.objects.filter(pk__in=stale).update(base_url=simulator)

    def _demo_usage(self, org: Organization) -> None:
        """A week of recorded calls so the usage pages and spend have something to show.

        Deterministic (seeded RNG); one model is unpriced on purpose, to show how the
        console reports calls it cannot price instead of counting them as $0.
        """
        rng = random.Random(42)
        now = timezone.now()
        for project in org.projects.all():
            key = project.api_keys.filter(kind=APIKey.Kind.PROJECT).first()
            for n in range(40):
                model = rng.choice(DEMO_MODELS)
                prompt = rng.randint(200, 4000)
                output = rng.randint(50, 1200)
                usage_record_create(
                    project=project,
                    api_key=key,
                    source="ingest",
                    model=model,
                    response_id=f"resp_demo_{project.pk}_{n}",
                    occurred_at=now - timedelta(minutes=rng.randint(5, 7 * 24 * 60)),
                    latency_ms=rng.randint(300, 4000),
                    usage={
                        "input_tokens": prompt,
                        "input_tokens_details": {"cached_tokens": prompt // 4},
                        "output_tokens": output,
                        "output_tokens_details": {
                            "reasoning_tokens": output // 3 if model.startswith("gpt-5") else 0
                        },
                        "total_tokens": prompt + output,
                    },
                )
