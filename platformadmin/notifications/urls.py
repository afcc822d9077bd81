"""Notification pages, mounted at /notifications/ (namespace "notifications")."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    # The bell: the signed-in user's own messages (no ids in the URL: nothing to guess).
    path("", views.inbox_list, name="inbox"),
    path("read/", views.inbox_read, name="inbox-read"),
    path("read-all/", views.inbox_read_all, name="inbox-read-all"),
    path("bell/", views.inbox_bell, name="bell"),
    # Per organization: channels (owners change them) and the history (owners and readers).
    path("orgs/<uuid:org_id>/history/", views.notification_history, name="history"),
    path(
        "history/<uuid:notification_id>/",
        views.notification_detail,
        name="notification-detail",
    ),
]
