"""Before `make run` starts anything: are the ports it needs free? (stdlib only)

HOST:PORT is the console (uvicorn), 127.0.0.1:SIM_PORT the bundled OpenAI simulator. A
port that is taken is named, with how to choose another, and nothing is started: without
this check the script went on to print the console's address while uvicorn had failed.
"""

from __future__ import annotations

import os
import socket
import sys

CHOICES = (
    (
        "PORT",
        os.environ.get("HOST") or "127.0.0.1",
        os.environ.get("PORT") or "8000",
        "the console",
    ),
    ("SIM_PORT", "127.0.0.1", os.environ.get("SIM_PORT") or "8765", "the OpenAI simulator"),
)


def bind_error(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on, or None. SO_REUSEADDR as uvicorn sets it, so
    a port left in TIME_WAIT by a server that just stopped counts as free, as it is."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return exc
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc
    return None


def main() -> int:
    problems = []
    for name, host, value, what in CHOICES:
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            problems.append(
                f"{name}={value!r} is not a port number: use 1-65535, e.g. `make run {name}=8001`."
            )
            continue
        port = int(value)
        error = bind_error(host, port)
        if error is None:
            continue
        if isinstance(error, socket.gaierror):
            problems.append(
                f"HOST={host!r} is not an address of this machine ({error}): use e.g. "
                "`make run HOST=127.0.0.1`."
            )
        else:
            problems.append(
                f"Port {port} on {host} ({name}, {what}) is taken: another program listens there, "
                f"maybe an earlier `make run` ({error.strerror}). Stop it, or choose another port: "
                f"`make run {name}={port + 1}`."
            )
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("Nothing was started.", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
