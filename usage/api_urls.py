"""The ingestion API, mounted at /api/v1/."""

from __future__ import annotations

from django.urls import path

from . import api

app_name = "api"

urlpatterns = [
    path("usage", api.ingest_usage, name="usage-ingest"),
    path("openapi.json", api.openapi_document, name="openapi"),
]
