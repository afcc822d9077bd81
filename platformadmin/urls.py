"""URL configuration: each app mounts its own urls.py."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from keys import urls as keys_urls
from orgs import urls as orgs_urls
from orgs import views_auth
from orgs import views_members as orgs_members

from . import key_views, project_views, views

# The keys namespace: the keys app's pages plus the key pages that call the client layer
# (platformadmin/key_views.py: keys may not import the layer above it).
keys_urlpatterns = [
    path("projects/<uuid:project_id>/new/", key_views.key_create, name="key-create"),
    path("<uuid:key_id>/", key_views.key_detail, name="key-detail"),
    *keys_urls.urlpatterns,
    path("<uuid:key_id>/test/", key_views.key_test, name="key-test"),
]

# The orgs namespace: the orgs app's pages plus the organization page, the project page,
# checklist, settings and limits, which compose keys and usage (platformadmin/project_views.py: orgs may not import them).
orgs_urlpatterns = [
    path("<uuid:org_id>/", project_views.organization_detail, name="organization-detail"),
    path("projects/<uuid:project_id>/", project_views.project_detail, name="project-detail"),
    path(
        "projects/<uuid:project_id>/checklist/",
        project_views.project_checklist_view,
        name="project-checklist",
    ),
    path(
        "projects/<uuid:project_id>/settings/",
        project_views.project_settings,
        name="project-settings",
    ),
    path(
        "projects/<uuid:project_id>/limits/set/",
        project_views.project_limit_set,
        name="project-limit-set",
    ),
    *orgs_urls.urlpatterns,
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password-reset/", views_auth.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        views_auth.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("accounts/2fa/", views_auth.otp_verify, name="otp-verify"),
    path("accounts/2fa/setup/", views_auth.otp_setup, name="otp-setup"),
    # Public: the one-time link of an invitation e-mail (unknown/used/expired → 404).
    path("invitations/<str:token>/", orgs_members.invitation_accept, name="invitation-accept"),
    path("admin/", admin.site.urls),
    path("orgs/", include((orgs_urlpatterns, orgs_urls.app_name))),
    path("keys/", include((keys_urlpatterns, keys_urls.app_name))),
    path("usage/", include("usage.urls")),
    path("sync/", include("platformadmin.sync.urls")),
    path("dashboard/", include("platformadmin.dashboard.urls")),
    path("playground/", include("platformadmin.playground_urls")),
    path("notifications/", include("platformadmin.notifications.urls")),
    path("api/v1/", include("usage.api_urls")),
]
