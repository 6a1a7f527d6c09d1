"""The type checker and the linter, run over the whole tree as CI runs them (issue 14 §5).

Configuration lives in pyproject.toml; tools are pinned in requirements.txt. mypy keeps its
incremental cache in .mypy_cache (git-ignored), so a rerun checks only what changed.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.static


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    # mypy's Django plugin imports the settings module, which needs a test environment.
    env = {**os.environ, "VIGIL_TESTING": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def _assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{result.stdout}\n{result.stderr}"


def test_mypy_is_clean() -> None:
    _assert_clean(_run(str(BIN / "mypy"), "."))


def test_ruff_check_is_clean() -> None:
    _assert_clean(_run(str(BIN / "ruff"), "check", "--no-cache", "."))


def test_ruff_leaves_nothing_that_needs_a_hand(tmp_path: Path) -> None:
    """What ``ruff check --fix`` would not fix is fixed: on a copy, after it, nothing is left."""
    tree = tmp_path / "tree"
    skip = shutil.ignore_patterns(".venv", ".git", ".mypy_cache", ".ruff_cache", "__pycache__", "var", ".hypothesis")
    shutil.copytree(ROOT, tree, ignore=skip)
    ruff = str(BIN / "ruff")
    subprocess.run([ruff, "check", "--no-cache", "--fix", "--quiet", "."], cwd=tree, capture_output=True, check=False)
    result = subprocess.run([ruff, "check", "--no-cache", "."], cwd=tree, capture_output=True, text=True, check=False)
    _assert_clean(result)


def test_mypy_reads_the_settings_module_pytest_uses() -> None:
    """The Django plugin must type-check against the settings the tests run with."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    assert pyproject["tool"]["django-stubs"]["django_settings_module"] == ini["pytest"]["DJANGO_SETTINGS_MODULE"]
