"""Print a new key-ring entry for FIELD_ENCRYPTION_KEYS."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand

from keys.crypto import KeyRing, KeyRingError, generate_key


class Command(BaseCommand):
    help = (
        "Print a new AES-256 key as 'vN:<base64>'. N is one above the newest version in "
        "FIELD_ENCRYPTION_KEYS (or 1). Put it first in FIELD_ENCRYPTION_KEYS, then run "
        "reencrypt_secrets."
    )
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--key-version",
            type=int,
            dest="key_version",
            help="Version number to use (default: next).",
        )

    def handle(self, *args, **options):
        version = options["key_version"]
        if version is None:
            try:
                version = KeyRing.parse(os.environ.get("FIELD_ENCRYPTION_KEYS", "")).newest + 1
            except KeyRingError:
                version = 1
        self.stdout.write(generate_key(version))
