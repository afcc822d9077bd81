"""Console pages of the orgs app (mounted at /orgs/). Public ids (UUID) in every URL.

The organization page, the project page, its checklist, its settings and model-limit
form (organization-detail, project-detail, project-checklist, project-settings,
project-limit-set) compose keys and usage: they live in platformadmin/project_views.py,
and platformadmin/urls.py adds them to this namespace."""

from __future__ import annotations

from django.urls import path

from . import views_members
from .views import audit, organizations, projects

app_name = "orgs"

urlpatterns = [
    path("new/", organizations.organization_create, name="organization-create"),
    path("<uuid:org_id>/edit/", organizations.organization_edit, name="organization-edit"),
    path("<uuid:org_id>/projects/new/", organizations.project_create, name="project-create"),
    path(
        "<uuid:org_id>/invitations/new/",
        views_members.organization_invite,
        name="organization-invite",
    ),
    path(
        "<uuid:org_id>/invitations/update/",
        views_members.invitation_update,
        name="invitation-update",
    ),
    path(
        "<uuid:org_id>/members/update/",
        views_members.organization_member_update,
        name="organization-member-update",
    ),
    path(
        "<uuid:org_id>/members/remove/",
        views_members.organization_member_remove,
        name="organization-member-remove",
    ),
    path("<uuid:org_id>/audit/", audit.audit_log_view, name="audit-log"),
    path("<uuid:org_id>/audit.csv", audit.audit_log_export, name="audit-export"),
    path(
        "projects/<uuid:project_id>/limits/remove/",
        projects.project_limit_remove,
        name="project-limit-remove",
    ),
    path(
        "projects/<uuid:project_id>/invitations/new/",
        views_members.project_invite,
        name="project-invite",
    ),
    path(
        "projects/<uuid:project_id>/members/update/",
        views_members.project_member_update,
        name="project-member-update",
    ),
    path(
        "projects/<uuid:project_id>/members/remove/",
        views_members.project_member_remove,
        name="project-member-remove",
    ),
    path(
        "projects/<uuid:project_id>/service-accounts/new/",
        projects.service_account_create,
        name="service-account-create",
    ),
]
