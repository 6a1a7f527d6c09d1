"""The pages are translated (issue 16, item 5): every message in locale/de and locale/es has a
translation (no empty msgstr, nothing fuzzy, the same placeholders), the committed .mo files
are what the .po files compile to, and the .po files hold exactly the messages the sources
mark today (``makemessages`` re-run over a copy of the tree)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ["de", "es"]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def catalog(language: str, root: Path = ROOT) -> list:
    with (root / "locale" / language / "LC_MESSAGES" / "django.po").open("rb") as handle:
        return [m for m in read_po(handle) if m.id]


def _text(value: str | tuple[str, ...]) -> list[str]:
    return list(value) if isinstance(value, tuple) else [value]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated(language: str) -> None:
    messages = catalog(language)
    assert len(messages) > 150
    untranslated = [m.id for m in messages if not all(s.strip() for s in _text(m.string))]
    fuzzy = [m.id for m in messages if m.fuzzy]
    assert untranslated == [] and fuzzy == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_every_placeholder_and_never_a_double_quote(language: str) -> None:
    for message in catalog(language):
        wanted = set(PLACEHOLDER.findall(" ".join(_text(message.id))))
        for text in _text(message.string):
            assert set(PLACEHOLDER.findall(text)) == wanted, message.id
            assert '"' not in text, f"{message.id}: a double quote would end an HTML attribute"


def test_the_committed_mo_files_are_compiled_from_the_po_files() -> None:
    result = subprocess.run([sys.executable, "scripts/compile_translations.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def sources() -> list[str]:
    """Every Python package at the top of the tree (the apps and the project), and the templates."""
    packages = [p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name not in {"tests", "bench"}]
    return sorted(packages) + ["templates"]


def test_the_po_files_hold_exactly_the_messages_the_sources_mark(tmp_path: Path) -> None:
    if shutil.which("xgettext") is None:
        if os.environ.get("VIGIL_REQUIRE_SERVICES") == "1":
            pytest.fail("GNU gettext's xgettext is missing (.ci/run installs it)")
        pytest.skip("[service-missing:gettext] needs GNU gettext's xgettext (apt-get install gettext)")
    for name in sources():
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", tmp_path / "manage.py")
    for language in LANGUAGES:
        (tmp_path / "locale" / language / "LC_MESSAGES").mkdir(parents=True)
    env = {**os.environ, "VIGIL_TESTING": "1", "DJANGO_SETTINGS_MODULE": "vigil.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", *[f"-l{lang}" for lang in LANGUAGES], "--no-location"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for language in LANGUAGES:
        fresh = {m.id for m in catalog(language, tmp_path)}
        ours = {m.id for m in catalog(language)}
        assert fresh - ours == set(), f"not in locale/{language}: run makemessages and translate"
        assert ours - fresh == set(), f"no longer in the sources, still in locale/{language}"
