"""Factories for the test suite. Secrets are generated at run time and obviously fake."""

from __future__ import annotations

import secrets

import factory
from django.contrib.auth import get_user_model

from keys.models import APIKey
from keys.services import api_key_create_unaudited
from orgs.models import (
    Organization,
    OrganizationMembership,
    Project,
    ProjectMembership,
    ServiceAccount,
)

TEST_PASSWORD = "correct horse battery staple 42"


def fake_secret(kind: str = "proj") -> str:
    """An obviously fake key of the given prefix, random so fingerprints never collide."""
    return f"sk-{kind}-test{secrets.token_urlsafe(18)}"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Project {n}")


class ServiceAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceAccount

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"svc-{n}")


def make_api_key(project: Project, *, secret: str | None = None, **kwargs) -> APIKey:
    """A stored key through the real service (so it is encrypted like any other)."""
    kwargs.setdefault("name", f"key {secrets.token_hex(3)}")
    return api_key_create_unaudited(
        organization=project.organization,
        project=project,
        secret=secret or fake_secret("proj"),
        **kwargs,
    )


def add_org_member(user, organization, role: str) -> OrganizationMembership:
    return OrganizationMembership.objects.create(user=user, organization=organization, role=role)


def add_project_member(user, project, role: str) -> ProjectMembership:
    return ProjectMembership.objects.create(user=user, project=project, role=role)
