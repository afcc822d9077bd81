"""Pages of the Admin API sync: reconcile (see docs/sync.md)."""

from __future__ import annotations

urlpatterns: list = []
