"""The ingestion API, mounted at /api/v1/."""

from __future__ import annotations

app_name = "api"

urlpatterns: list = []
