"""Admin API sync: push (see docs/sync.md). Filled in by its owner."""

from __future__ import annotations
