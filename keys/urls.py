"""Console pages of the keys app (mounted at /keys/).

``keys:key-create``, ``keys:key-detail`` and ``keys:key-test`` call the client layer, so their
views live above this app in platformadmin/key_views.py; platformadmin/urls.py adds them to
this namespace.
"""

from __future__ import annotations

from django.urls import path

from . import views, views_rotation

app_name = "keys"

urlpatterns = [
    path("<uuid:key_id>/reveal/", views.key_reveal, name="key-reveal"),
    path("<uuid:key_id>/rotate/", views.key_rotate, name="key-rotate"),
    path("<uuid:key_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("rotation/<uuid:org_id>/", views_rotation.rotation, name="rotation"),
]
