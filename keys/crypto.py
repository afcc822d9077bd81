"""Encryption of secrets at rest: a versioned key ring and AES-256-GCM.

Format of a stored value: ``v<N>:<urlsafe base64 of nonce(12) || ciphertext+tag>``.
The version prefix says which key of the ring sealed it (as Vault transit does),
so keys can be added and old ones retired after ``manage.py reencrypt_secrets``.

Every ciphertext is bound to its row and column through GCM's associated data
(``<app>.<model>.<field>:<public id>``): a ciphertext copied onto another row, or
into another column, fails authentication instead of decrypting.

The key ring comes from FIELD_ENCRYPTION_KEYS: ``v3:<key>,v2:<key>``, newest first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

NONCE_BYTES = 12
KEY_BYTES = 32
_ENTRY = re.compile(r"^v(?P<version>[1-9][0-9]{0,5}):(?P<key>[A-Za-z0-9_\-]+=*)$")
_TOKEN = re.compile(r"^v(?P<version>[1-9][0-9]{0,5}):(?P<body>[A-Za-z0-9_\-]+=*)$")

HOW_TO_FIX = (
    "Generate a key with `python manage.py generate_encryption_key` and set "
    "FIELD_ENCRYPTION_KEYS to it (e.g. FIELD_ENCRYPTION_KEYS=v1:<key>). To add a key, "
    "put the new one first: FIELD_ENCRYPTION_KEYS=v2:<new>,v1:<old>; then run "
    "`python manage.py reencrypt_secrets` before dropping the old one."
)


class KeyRingError(ImproperlyConfigured):
    """The key ring in the environment is missing or malformed."""


class DecryptionError(Exception):
    """A stored secret cannot be decrypted: unknown key version, or tampered/moved data.

    The message never contains the ciphertext or any part of a key.
    """


@dataclass(frozen=True, repr=False)
class KeyRing:
    """Keys by version; the first is the newest and seals everything new."""

    keys: dict[int, bytes]
    newest: int

    def __repr__(self) -> str:  # never show key material
        return f"<KeyRing versions={sorted(self.keys, reverse=True)} newest=v{self.newest}>"

    @classmethod
    def parse(cls, value: str) -> KeyRing:
        value = (value or "").strip()
        if not value:
            raise KeyRingError(f"FIELD_ENCRYPTION_KEYS is not set. {HOW_TO_FIX}")
        keys: dict[int, bytes] = {}
        order: list[int] = []
        for position, raw in enumerate(value.split(","), start=1):
            entry = raw.strip()
            match = _ENTRY.match(entry)
            if not match:
                raise KeyRingError(
                    f"FIELD_ENCRYPTION_KEYS entry #{position} is malformed: expected "
                    f"'v<number>:<base64 key>'. {HOW_TO_FIX}"
                )
            version = int(match["version"])
            try:
                key = base64.urlsafe_b64decode(match["key"])
            except (binascii.Error, ValueError):
                key = b""
            if len(key) != KEY_BYTES:
                raise KeyRingError(
                    f"FIELD_ENCRYPTION_KEYS entry v{version} is not a base64 32-byte key "
                    f"(AES-256). {HOW_TO_FIX}"
                )
            if version in keys:
                raise KeyRingError(
                    f"FIELD_ENCRYPTION_KEYS lists version v{version} twice. {HOW_TO_FIX}"
                )
            keys[version] = key
            order.append(version)
        if order[0] != max(order):
            raise KeyRingError(
                f"FIELD_ENCRYPTION_KEYS must list the newest (highest) version first; "
                f"v{max(order)} is not first. {HOW_TO_FIX}"
            )
        return cls(keys=keys, newest=order[0])

    @property
    def newest_prefix(self) -> str:
        return f"v{self.newest}:"

    def encrypt(self, plaintext: str, *, aad: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.newest]).encrypt(
            nonce, plaintext.encode("utf-8"), aad.encode("utf-8")
        )
        return f"v{self.newest}:" + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, *, aad: str) -> str:
        match = _TOKEN.match(token or "")
        if not match:
            raise DecryptionError("stored secret is not in the 'vN:<data>' format")
        version = int(match["version"])
        key = self.keys.get(version)
        if key is None:
            raise DecryptionError(
                f"stored secret was sealed with key v{version}, which is not in "
                f"FIELD_ENCRYPTION_KEYS; add it back and run reencrypt_secrets"
            )
        try:
            blob = base64.urlsafe_b64decode(match["body"])
            nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
            return AESGCM(key).decrypt(nonce, sealed, aad.encode("utf-8")).decode("utf-8")
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise DecryptionError(
                "stored secret failed authentication: it was altered or belongs to another row"
            ) from exc

    @staticmethod
    def version_of(token: str) -> int | None:
        match = _TOKEN.match(token or "")
        return int(match["version"]) if match else None


@lru_cache(maxsize=8)
def _ring_for(value: str) -> KeyRing:
    return KeyRing.parse(value)


def get_key_ring() -> KeyRing:
    """The key ring from settings (parsed once per distinct value)."""
    return _ring_for(settings.FIELD_ENCRYPTION_KEYS)


def generate_key(version: int = 1) -> str:
    """A new key-ring entry, ``v<version>:<urlsafe base64 of 32 random bytes>``."""
    return f"v{version}:" + base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def fingerprint(secret: str) -> str:
    """Keyed fingerprint (HMAC-SHA256) of a secret, for duplicate detection.

    Keyed so that the database alone does not allow confirming a guessed key.
    """
    key = settings.SECRET_FINGERPRINT_KEY or ("fingerprint:" + settings.SECRET_KEY)
    return hmac.new(key.encode(), secret.encode("utf-8"), hashlib.sha256).hexdigest()
