"""`.env.example` documents every variable the settings read."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_read_from_the_environment_is_documented():
    settings_src = (ROOT / "platformadmin" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\(\))?\.\w+\(\s*"([A-Z_]+)"', settings_src))
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    assert read, "the pattern should find the settings' variables"
    assert read - documented == set(), f"undocumented in .env.example: {sorted(read - documented)}"
