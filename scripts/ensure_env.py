"""Write a local .env for the embedded demo if there is none (stdlib only).

It holds a DEBUG flag, a random SECRET_KEY and a fresh encryption key ring, so
`make run` works on a fresh clone with nothing configured. Never used in production.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

ENV = Path(__file__).resolve().parent.parent / ".env"

if not ENV.exists():
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    ENV.write_text(
        "# Written by `make run` for the local demo. Do not use in production.\n"
        "DEBUG=true\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"FIELD_ENCRYPTION_KEYS=v1:{key}\n"
        "OPENAI_SIMULATOR_URL=http://127.0.0.1:8765/v1\n"
    )
    ENV.chmod(0o600)
    print(f"Wrote {ENV.name} with a new SECRET_KEY and encryption key (keep it: it decrypts var/db.sqlite3).")
