"""WSGI entry point, for hosts that cannot run ASGI (streaming then buffers)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platformadmin.settings")

application = get_wsgi_application()
