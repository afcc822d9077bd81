"""Console pages of the usage app, mounted at /usage/."""

from __future__ import annotations

from django.urls import path

from . import views

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
]
