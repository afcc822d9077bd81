from __future__ import annotations

import sys

from django.apps import AppConfig
from django.conf import settings

from .crypto import get_key_ring


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "API keys"

    def ready(self) -> None:
        # A missing or malformed key ring stops startup here, with the fix in the
        # message, rather than at the first secret someone tries to store.
        # generate_encryption_key must work precisely when there is no ring yet.
        if settings.FIELD_ENCRYPTION_CHECK_AT_STARTUP and "generate_encryption_key" not in sys.argv:
            get_key_ring()
