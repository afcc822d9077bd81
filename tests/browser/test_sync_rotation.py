"""A rotation started by hand in Chromium: the owner opens the service-account key, goes
to Rotate through OpenAI, confirms, and sees the rotation in its grace period (the new key
current, the old one still valid at OpenAI until the deadline)."""

from __future__ import annotations

import pytest

from keys.models import APIKey
from platformadmin.sync.models import KeyRotation
from tests.sync.conftest import linked  # noqa: F401  (the fixtures, shared with tests/sync)
from tests.sync.test_rotation import svc  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_owner_rotates_a_service_account_key(
    page,
    login,
    live_server,
    screenshot,
    svc,  # noqa: F811
    owner,
):
    login(owner)
    page.goto(f"{live_server.url}/keys/{svc.key.public_id}/")
    page.click("#key-rotate-upstream")
    page.wait_for_load_state("networkidle")
    assert page.locator("#rotation-key").input_value() == str(svc.key.public_id)
    page.check("input[name=confirm]")
    screenshot("sync-rotation-start")
    page.click("button:has-text('Rotate through OpenAI')")
    page.wait_for_load_state("networkidle")
    message = page.locator(".messages").inner_text()
    assert "is current" in message and "redeploy" in message
    row = page.locator("#rotations tbody tr").first
    assert row.get_attribute("data-step") == "promoted"
    assert "redeploy before then" in row.inner_text()
    rotation = KeyRotation.objects.get()
    assert rotation.step == KeyRotation.Step.PROMOTED
    current = APIKey.objects.filter(service_account=svc.account, status="active")
    assert [k.pk for k in current] == [rotation.pending_key_id]
    assert len(svc.upstream_keys()) == 2  # the old key works until the grace period ends
    screenshot("sync-rotation-promoted")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.wait_for_load_state("networkidle")
    width = page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )
    assert width <= 390 + 1, f"the page scrolls sideways at 390 px ({width} px wide)"
    screenshot("sync-rotation-390")
