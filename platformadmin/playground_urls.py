"""The playground, mounted at /playground/."""

from __future__ import annotations

from django.urls import path

from . import playground

app_name = "playground"

urlpatterns = [
    path("", playground.index, name="index"),
    path("run", playground.run, name="run"),
    path("stream", playground.stream, name="stream"),
    path("stop", playground.stop, name="stop"),
]
