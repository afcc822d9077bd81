"""ASGI entry point (uvicorn); the playground streams, so the console runs on ASGI."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platformadmin.settings")

application = get_asgi_application()
