"""URLs of the Admin API sync (namespace "sync"); each page module lists its own."""

from __future__ import annotations

from . import views_pull, views_push, views_reconcile, views_rotation

app_name = "sync"
urlpatterns = [
    *views_pull.urlpatterns,
    *views_push.urlpatterns,
    *views_rotation.urlpatterns,
    *views_reconcile.urlpatterns,
]
