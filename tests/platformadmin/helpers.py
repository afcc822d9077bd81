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


def ensure_catalog() -> None:
    """Re-seed the model catalog if a transactional test's flush emptied it.

    The catalog comes from a data migration; ``transaction=True`` tests flush every table
    afterwards, so the tests after them would otherwise find no models.
    """
    import importlib

    from django.apps import apps

    from usage.models import CatalogModel

    if not CatalogModel.objects.exists():
        importlib.import_module("usage.migrations.0002_seed_catalog").seed(apps, None)
