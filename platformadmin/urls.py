"""URL configuration: each app mounts its own urls.py."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("orgs/", include("orgs.urls")),
    path("keys/", include("keys.urls")),
    path("usage/", include("usage.urls")),
    path("playground/", include("platformadmin.playground_urls")),
    path("api/v1/", include("usage.api_urls")),
]
