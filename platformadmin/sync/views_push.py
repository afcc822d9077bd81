"""Pages of the Admin API sync: push (see docs/sync.md)."""

from __future__ import annotations

urlpatterns: list = []
