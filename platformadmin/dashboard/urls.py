"""The usage dashboard, mounted at /dashboard/ (namespace "dashboard").

Overview and drill-downs: overview.py; the request log, the record page and the CSV
exports: request_log.py."""

from __future__ import annotations

from django.urls import path

from . import overview

app_name = "dashboard"

urlpatterns = [
    path("", overview.dashboard_home, name="home"),
    path("<uuid:org_id>/", overview.overview, name="overview"),
    path("projects/<uuid:project_id>/", overview.project_usage, name="project"),
    path("keys/<uuid:key_id>/", overview.key_usage, name="key"),
]
