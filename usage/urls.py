"""Console pages of the usage app."""

from __future__ import annotations

app_name = "usage"

urlpatterns: list = []
