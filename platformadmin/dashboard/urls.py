"""The usage dashboard, mounted at /dashboard/ (namespace "dashboard").

Overview and drill-downs: overview.py; the request log, the record page and the CSV
exports: request_log.py."""

from __future__ import annotations

from django.urls import path

from . import overview, request_log

app_name = "dashboard"

urlpatterns = [
    path("", overview.dashboard_home, name="home"),
    path("<uuid:org_id>/", overview.overview, name="overview"),
    path("projects/<uuid:project_id>/", overview.project_usage, name="project"),
    path("keys/<uuid:key_id>/", overview.key_usage, name="key"),
    path("<uuid:org_id>/requests/", request_log.request_log, name="request-log"),
    path(
        "<uuid:org_id>/requests/<int:record_id>/", request_log.record_detail, name="record-detail"
    ),
    path("<uuid:org_id>/requests.csv", request_log.request_log_csv, name="request-log-csv"),
    path("<uuid:org_id>/usage.csv", request_log.overview_csv, name="overview-csv"),
]
