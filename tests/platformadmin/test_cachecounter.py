"""The one fixed-window counter over the shared cache (public cache API only)."""

from __future__ import annotations

import pytest
import time_machine
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache

from platformadmin import cachecounter


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()


def test_windows_are_named_by_their_index_and_say_when_they_end():
    window = cachecounter.window("t", seconds=60, now=1_900_000_005.2)
    assert window.key == f"t:{1_900_000_005 // 60}"
    assert window.retry_after == 60 - (1_900_000_005 % 60)  # 55 s left, rounded up
    assert cachecounter.window("t", seconds=60, now=1_900_000_019.9).retry_after == 1


def test_incr_creates_the_counter_then_adds():
    assert cachecounter.incr("c", timeout=60) == 1
    assert cachecounter.incr("c", 5, timeout=60) == 6
    assert cachecounter.read("c") == 6 and cachecounter.read("absent") == 0


def test_a_counter_expires_with_its_window():
    """On a local-memory cache, where the clock can be moved (Redis expires on its own clock)."""
    local = LocMemCache("cachecounter-expiry", {})
    with time_machine.travel(1_900_000_000, tick=False) as traveller:
        cachecounter.incr("e", timeout=120, cache=local)
        traveller.shift(121)
        assert cachecounter.read("e", cache=local) == 0
        assert cachecounter.incr("e", timeout=120, cache=local) == 1  # starts again


def test_adjust_corrects_a_live_window_and_leaves_a_gone_one_gone():
    cachecounter.incr("a", 10, timeout=60)
    cachecounter.adjust("a", -4)
    assert cachecounter.read("a") == 6
    cachecounter.adjust("gone", -4)
    assert cache.get("gone") is None


def test_total_sums_windows_in_one_read():
    cachecounter.incr("w:1", 2, timeout=60)
    cachecounter.incr("w:3", 5, timeout=60)
    assert cachecounter.total(["w:1", "w:2", "w:3"]) == 7
