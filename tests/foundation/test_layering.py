"""The layering contract ([tool.importlinter] in pyproject.toml) holds, and it bites.

The contract is only worth something if it fails on a forbidden import and covers every
module: a new module of platformadmin that sits in no layer would escape it unseen.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
APPS = ("orgs", "keys", "usage", "platformadmin")
# platformadmin's wiring: in no layer by design (settings, the Celery app, the package itself).
WIRING = {"platformadmin", "platformadmin.settings", "platformadmin.celery"}


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def contracts() -> list[dict]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["importlinter"]["contracts"]


def layered_modules() -> set[str]:
    """Every module named in the layers contract (optional ones without their brackets)."""
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    names: set[str] = set()
    for layer in layers["layers"]:
        for part in layer.replace("|", ":").split(":"):
            names.add(part.strip().strip("()"))
    return names


def test_the_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_it_fails_on_a_forbidden_import(tmp_path):
    """orgs is the bottom app: `import usage` in orgs/models.py must break the contract."""
    for app in APPS:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    models = tmp_path / "orgs" / "models.py"
    models.write_text(models.read_text() + "\nimport usage  # noqa: E402,F401\n")

    result = lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "orgs is not allowed to import usage" in result.stdout
    assert "orgs.models -> usage" in result.stdout


def test_every_platformadmin_module_is_in_a_layer_or_wiring():
    """A module outside every layer is checked by nothing: name it in the contract."""
    layered = layered_modules()
    unplaced = []
    for path in sorted((ROOT / "platformadmin").glob("*.py")):
        module = "platformadmin" if path.stem == "__init__" else f"platformadmin.{path.stem}"
        if module in WIRING:
            continue
        if module not in layered:
            unplaced.append(module)
    for path in sorted((ROOT / "platformadmin").iterdir()):
        if path.is_dir() and (path / "__init__.py").exists():
            if f"platformadmin.{path.name}" not in layered:
                unplaced.append(f"platformadmin.{path.name}")
    assert unplaced == [], f"add these to a layer in [tool.importlinter]: {unplaced}"


def test_every_exception_has_a_reason():
    """Each ignore_imports entry is preceded by a comment line saying why."""
    text = (ROOT / "pyproject.toml").read_text().splitlines()
    ignored = {i for c in contracts() for i in c.get("ignore_imports", [])}
    assert ignored, "the contract lists its exceptions"
    for entry in ignored:
        (line_no,) = [n for n, line in enumerate(text) if line.strip().startswith(f'"{entry}"')]
        assert text[line_no - 1].strip().startswith("#"), f"no reason above {entry!r}"
