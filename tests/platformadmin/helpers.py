"""Keys that point at the simulator; a fault token in the secret picks the fault."""

from __future__ import annotations

import secrets

from tests.factories import make_api_key


def sim_key(project, simulator, fault: str = "", **kwargs):
    token = f"fault-{fault}-" if fault else ""
    secret = f"sk-proj-{token}test{secrets.token_urlsafe(18)}"
    kwargs.setdefault("provider", "compatible")
    if simulator is not None:
        kwargs.setdefault("base_url", simulator.base_url)
    return make_api_key(project, secret=secret, **kwargs)
