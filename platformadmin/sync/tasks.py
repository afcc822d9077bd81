"""Celery tasks of the Admin API sync live next to their services; importing them here
registers them with the worker (Celery's autodiscovery reads ``<app>.tasks``)."""

from __future__ import annotations

from . import pull, push, rotation, services  # noqa: F401
