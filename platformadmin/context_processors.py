"""Template context shared by every console page."""

from __future__ import annotations

from django.conf import settings


def console(request) -> dict:
    return {"SIMULATOR_URL": settings.OPENAI_SIMULATOR_URL}
