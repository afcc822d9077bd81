"""Console pages of the orgs app."""

from __future__ import annotations

app_name = "orgs"

urlpatterns: list = []
