"""Console pages of the usage app, mounted at /usage/."""

from __future__ import annotations

from django.urls import path

from . import budget_views, views

app_name = "usage"

urlpatterns = [
    path("projects/<uuid:project_id>/", views.project_usage, name="project-usage"),
    path(
        "projects/<uuid:project_id>/ingestion-tokens/",
        views.ingestion_tokens,
        name="ingestion-tokens",
    ),
    path(
        "projects/<uuid:project_id>/ingestion-tokens/<uuid:token_id>/revoke/",
        views.ingestion_token_revoke,
        name="ingestion-token-revoke",
    ),
    path("organizations/<uuid:org_id>/budgets/", budget_views.budget_list, name="budget-list"),
    path(
        "organizations/<uuid:org_id>/budgets/new/",
        budget_views.budget_create_view,
        name="budget-create",
    ),
    path("budgets/<uuid:budget_id>/", budget_views.budget_detail, name="budget-detail"),
    path("budgets/<uuid:budget_id>/edit/", budget_views.budget_edit, name="budget-edit"),
]
