"""Pages of the Admin API sync: rotation (see docs/sync.md)."""

from __future__ import annotations

urlpatterns: list = []
