"""Console pages of the keys app (mounted at /keys/).

``keys:key-test`` (Test connection) calls the client layer, so its view lives above this app
in platformadmin/key_views.py; platformadmin/urls.py adds it to this namespace.
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "keys"

urlpatterns = [
    path("projects/<uuid:project_id>/new/", views.key_create, name="key-create"),
    path("<uuid:key_id>/", views.key_detail, name="key-detail"),
    path("<uuid:key_id>/reveal/", views.key_reveal, name="key-reveal"),
    path("<uuid:key_id>/rotate/", views.key_rotate, name="key-rotate"),
    path("<uuid:key_id>/revoke/", views.key_revoke, name="key-revoke"),
]
