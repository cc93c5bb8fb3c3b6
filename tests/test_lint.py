"""The lint rules pinned in pyproject.toml ([tool.ruff]) hold for the whole repository."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    # a failure, not a skip: CI installs the dev extra, so a missing ruff is a broken setup
    if importlib.util.find_spec("ruff") is None:
        pytest.fail('ruff is not installed; install the dev extra: pip install -e ".[dev]"')
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(REPO_ROOT)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"
