"""Pages of the Admin API sync: pull (see docs/sync.md)."""

from __future__ import annotations

urlpatterns: list = []
