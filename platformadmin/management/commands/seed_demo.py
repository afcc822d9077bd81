"""Load demo data when the database is empty: an organization, three projects, keys, users.

The demo keys are fake and point at the bundled OpenAI simulator
(OPENAI_SIMULATOR_URL), so the playground works offline.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from keys.models import APIKey
from keys.services import api_key_create
from orgs.models import (
    Organization,
    OrganizationMembership,
    Project,
    ProjectMembership,
    ServiceAccount,
)

DEFAULT_SIMULATOR_URL = "http://127.0.0.1:8765/v1"


def _fake_key(prefix: str) -> str:
    return f"sk-{prefix}-demo{secrets.token_urlsafe(24)}"


DEMO_MODELS = ["gpt-5.4-mini", "gpt-5.4", "gpt-4.1-mini", "gpt-5.5", "gpt-image-1"]


class Command(BaseCommand):
    help = "Create demo data (organization, projects, keys, users) if the database is empty."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Seed even if organizations exist.")

    @transaction.atomic
    def handle(self, *args, force: bool = False, **options):
        User = get_user_model()
        if Organization.objects.exists() and not force:
            self.stdout.write(
                "Demo data already present. Sign in as 'admin' (password printed at first run; "
                "reset it with `python manage.py changepassword admin`)."
            )
            return
        simulator = settings.OPENAI_SIMULATOR_URL or DEFAULT_SIMULATOR_URL
        passwords = {}

        def user(username: str, **extra):
            passwords[username] = secrets.token_urlsafe(12)
            obj, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com", **extra})
            obj.set_password(passwords[username])
            obj.save()
            return obj

        admin = user("admin", is_staff=True, is_superuser=True)
        reader = user("reader")
        developer = user("developer")

        org = Organization.objects.create(
            name="Acme Corp", slug="acme", tier=Organization.Tier.TIER_2,
            openai_org_id="org-demo-acme",
        )
        OrganizationMembership.objects.create(user=admin, organization=org, role="owner")
        OrganizationMembership.objects.create(user=reader, organization=org, role="reader")

        specs = [
            ("Production", Project.Environment.PRODUCTION, ["gpt-5.4-mini", "gpt-5.4", "gpt-4.1-mini"], 4096),
            ("Development", Project.Environment.DEVELOPMENT, [], 8192),
            ("Research", Project.Environment.RESEARCH, [], None),
        ]
        for name, environment, allowed, cap in specs:
            project = Project.objects.create(
                organization=org, name=name, environment=environment, allowed_models=allowed,
                max_output_tokens=cap, openai_project_id=f"proj_demo_{name.lower()}",
            )
            ProjectMembership.objects.create(user=developer, project=project, role="member")
            api_key_create(
                organization=org, project=project, name=f"{name} app key",
                secret=_fake_key("proj"), kind=APIKey.Kind.PROJECT,
                provider=APIKey.Provider.COMPATIBLE, base_url=simulator,
                permissions=(APIKey.Permissions.RESTRICTED if environment == "production" else APIKey.Permissions.ALL),
                created_by=admin,
            )
            if environment == Project.Environment.PRODUCTION:
                sa = ServiceAccount.objects.create(project=project, name="billing-service", openai_id="user-demo-svc")
                api_key_create(
                    organization=org, project=project, service_account=sa, name="billing-service key",
                    secret=_fake_key("svcacct"), kind=APIKey.Kind.SERVICE_ACCOUNT,
                    provider=APIKey.Provider.COMPATIBLE, base_url=simulator,
                    permissions=APIKey.Permissions.READ_ONLY, created_by=admin,
                )
        api_key_create(
            organization=org, name="Organization admin key", secret=_fake_key("admin"),
            kind=APIKey.Kind.ADMIN, provider=APIKey.Provider.COMPATIBLE, base_url=simulator,
            created_by=admin,
        )
        self._demo_usage(org)
        self.stdout.write(self.style.SUCCESS("Demo data loaded: organization 'Acme Corp' with 3 projects."))
        for username, password in passwords.items():
            self.stdout.write(f"  user {username!r} password {password!r}")

    def _demo_usage(self, org: Organization) -> None:
        """A week of recorded calls so the usage pages and spend have something to show.

        Deterministic (seeded RNG); one model is unpriced on purpose, to show how the
        console reports calls it cannot price instead of counting them as $0.
        """
        import random
        from datetime import timedelta

        from django.utils import timezone

        from usage.services import usage_record_create

        rng = random.Random(42)
        now = timezone.now()
        for project in org.projects.all():
            key = project.api_keys.filter(kind=APIKey.Kind.PROJECT).first()
            for n in range(40):
                model = rng.choice(DEMO_MODELS)
                prompt = rng.randint(200, 4000)
                output = rng.randint(50, 1200)
                usage_record_create(
                    project=project, api_key=key, source="ingest", model=model,
                    response_id=f"resp_demo_{project.pk}_{n}",
                    occurred_at=now - timedelta(minutes=rng.randint(5, 7 * 24 * 60)),
                    latency_ms=rng.randint(300, 4000),
                    usage={
                        "input_tokens": prompt,
                        "input_tokens_details": {"cached_tokens": prompt // 4},
                        "output_tokens": output,
                        "output_tokens_details": {"reasoning_tokens": output // 3 if model.startswith("gpt-5") else 0},
                        "total_tokens": prompt + output,
                    },
                )
