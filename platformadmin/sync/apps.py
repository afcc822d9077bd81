from __future__ import annotations

from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "platformadmin.sync"
    label = "sync"
    verbose_name = "Admin API sync"
    default_auto_field = "django.db.models.BigAutoField"
