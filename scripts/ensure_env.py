"""Write a local .env for the embedded demo if there is none (stdlib only).

It holds a DEBUG flag, a random SECRET_KEY, a fresh encryption key ring, the bundled
simulator's URL and, in OUTBOUND_ALLOWED_ORIGINS, exactly the simulator's origin: the
server's outgoing requests go only to public addresses otherwise (platformadmin/netguard.py),
and the simulator listens on 127.0.0.1. `make run` works on a fresh clone with nothing
configured. Never used in production.

SIM_PORT (default 8765) is the simulator's port, as in scripts/run-console.sh. An older
.env without OUTBOUND_ALLOWED_ORIGINS gets the line added. When SIM_PORT differs from the
port in the .env's simulator URL (a loopback one, as written here), both lines follow it:
OPENAI_SIMULATOR_URL and, in OUTBOUND_ALLOWED_ORIGINS, the old simulator origin (other
origins stay); seed_demo then re-points the demo keys.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import sys
from pathlib import Path

ENV = Path(__file__).resolve().parent.parent / ".env"
_port = (os.environ.get("SIM_PORT") or "8765").strip()
if not _port.isdigit() or not 1 <= int(_port) <= 65535:
    sys.exit(
        f"SIM_PORT={_port!r} is not a port number: use 1-65535, e.g. `make run SIM_PORT=8766`."
    )
SIM_PORT = int(_port)
SIM_ORIGIN = f"http://127.0.0.1:{SIM_PORT}"
# The simulator URL this script writes (and seed_demo's keys use), on any port.
LOOPBACK_SIM_URL = re.compile(
    r"^OPENAI_SIMULATOR_URL=(http://(?:127\.0\.0\.1|localhost):(\d+))/v1/?[ \t]*$", re.M
)


def _follow_sim_port(text: str) -> str:
    """The .env with its loopback simulator URL and origin moved to SIM_PORT (if it moved)."""
    match = LOOPBACK_SIM_URL.search(text)
    if match is None or int(match.group(2)) == SIM_PORT:
        return text
    old = match.group(1)
    text = LOOPBACK_SIM_URL.sub(f"OPENAI_SIMULATOR_URL={SIM_ORIGIN}/v1", text, count=1)

    def origins(line: re.Match) -> str:
        listed = [o.strip() for o in line.group(1).split(",") if o.strip()]
        kept = [o for o in listed if o.rstrip("/") != old]
        return "OUTBOUND_ALLOWED_ORIGINS=" + ",".join(
            kept + ([SIM_ORIGIN] if SIM_ORIGIN not in kept else [])
        )

    text = re.sub(r"^OUTBOUND_ALLOWED_ORIGINS=(.*)$", origins, text, flags=re.M)
    print(
        f"SIM_PORT is {SIM_PORT}: {ENV.name} now points the simulator URL and OUTBOUND_ALLOWED_ORIGINS at "
        f"{SIM_ORIGIN} (was {old})."
    )
    return text


def _simulator_origin(text: str) -> str:
    """The origin of the .env's OPENAI_SIMULATOR_URL (the one seed_demo's keys use)."""
    match = re.search(r"^OPENAI_SIMULATOR_URL=(https?://[^/\s]+)", text, flags=re.M)
    return match.group(1) if match else SIM_ORIGIN


if not ENV.exists():
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    ENV.write_text(
        "# Written by `make run` for the local demo. Do not use in production.\n"
        "DEBUG=true\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"FIELD_ENCRYPTION_KEYS=v1:{key}\n"
        f"OPENAI_SIMULATOR_URL={SIM_ORIGIN}/v1\n"
        "# Outgoing requests go only to public addresses, except these exact origins.\n"
        f"OUTBOUND_ALLOWED_ORIGINS={SIM_ORIGIN}\n"
    )
    ENV.chmod(0o600)
    print(
        f"Wrote {ENV.name} with a new SECRET_KEY and encryption key (keep it: it decrypts var/db.sqlite3)."
    )
else:
    text = ENV.read_text()
    moved = _follow_sim_port(text)
    if moved != text:
        ENV.write_text(moved)
        text = moved
    if not re.search(r"^OUTBOUND_ALLOWED_ORIGINS=", text, flags=re.M):
        origin = _simulator_origin(text)
        with ENV.open("a") as env_file:
            env_file.write(
                ("" if text.endswith("\n") or not text else "\n")
                + "# Outgoing requests go only to public addresses, except these exact origins.\n"
                + f"OUTBOUND_ALLOWED_ORIGINS={origin}\n"
            )
        print(f"Added OUTBOUND_ALLOWED_ORIGINS={origin} (the simulator) to {ENV.name}.")
