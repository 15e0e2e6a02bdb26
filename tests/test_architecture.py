"""Project-level contracts: the method library stays free of Kedro; telemetry stays off."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import background

ROOT = Path(__file__).resolve().parents[1]


def test_method_library_does_not_import_kedro() -> None:
    """import-linter's contracts in pyproject.toml: no Kedro in the method library (spec, config, data,
    model, evaluation, tuning, serving), the layers, and stages that do not import each other."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout  # no Kedro in the method library; the layers; the stages


def test_telemetry_consent_is_recorded_as_refused() -> None:
    assert yaml.safe_load((ROOT / ".telemetry").read_text()) == {"consent": False}


def test_every_parameters_file_has_exactly_one_top_level_key() -> None:
    for path in sorted((ROOT / "conf").glob("*/parameters*.yml")):
        keys = list(yaml.safe_load(path.read_text()) or {})
        assert len(keys) == 1, f"{path} defines {keys}"
        stem = path.stem.removeprefix("parameters_")
        assert keys[0] == stem, f"{path}: top-level key {keys[0]!r} should match the file name"


def test_ruff_lint_and_format_are_clean() -> None:
    """ruff, as configured in pyproject.toml: the lint rules hold and the code is formatted."""
    ruff = Path(sys.executable).with_name("ruff")
    paths = ["src", "tests", "benchmarks", "serving"]
    lint = subprocess.run([str(ruff), "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run([str(ruff), "format", "--check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_is_clean() -> None:
    """mypy, as configured in pyproject.toml (the package, with the pydantic plugin), finds no error.

    ``mypy --no-incremental`` in the repository root, started when the session began (tests/conftest.py:
    it runs beside the other tests on the second core) or now, when this test runs alone."""
    mypy = background.result("mypy", background.MYPY)
    assert mypy.returncode == 0, mypy.stdout[-5000:] + mypy.stderr


def test_no_test_module_imports_another() -> None:
    """Shared helpers live in tests/support (or a conftest), never in a test module another one imports."""
    pattern = re.compile(r"^\s*(?:from|import)\s+tests\.(?:[\w.]+\.)?test_\w+", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if pattern.search(path.read_text())
    ]
    assert offenders == []
