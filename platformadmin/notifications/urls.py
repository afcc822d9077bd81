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
    path("orgs/<uuid:org_id>/channels/", views.channel_list, name="channel-list"),
    path("orgs/<uuid:org_id>/channels/new/", views.channel_create, name="channel-create"),
    path("channels/<uuid:channel_id>/edit/", views.channel_edit, name="channel-edit"),
    path(
        "channels/<uuid:channel_id>/secret/",
        views.channel_secret_rotate,
        name="channel-secret-rotate",
    ),
    path("channels/<uuid:channel_id>/delete/", views.channel_delete, name="channel-delete"),
    path("channels/<uuid:channel_id>/test/", views.channel_test, name="channel-test"),
    path("orgs/<uuid:org_id>/history/", views.notification_history, name="history"),
    path(
        "history/<uuid:notification_id>/",
        views.notification_detail,
        name="notification-detail",
    ),
]
