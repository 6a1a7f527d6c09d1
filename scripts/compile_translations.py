#!/usr/bin/env python3
"""Compile locale/<lang>/LC_MESSAGES/django.po into django.mo with Babel (pure Python).

Why not ``manage.py compilemessages``: it needs GNU gettext's ``msgfmt``, a system package a
new host or CI machine may lack; Babel is a pip dependency (requirements.txt) and writes the
same catalogs, byte for byte the same every time. Fuzzy entries are left out, as msgfmt does.
The .mo files are committed, so a deployment needs no compile step; ``scripts/venv.sh`` runs
this after installing (it rewrites a .mo only when its .po changed) and
``tests/test_translations.py`` fails when a committed .mo is stale (``--check``).

    .venv/bin/python scripts/compile_translations.py           # write what changed
    .venv/bin/python scripts/compile_translations.py --check   # exit 1 if a .mo is stale
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE = Path(__file__).resolve().parent.parent / "locale"


def compiled(po: Path) -> bytes:
    with po.open("rb") as handle:
        catalog = read_po(handle, abort_invalid=True)
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for po in sorted(LOCALE.glob("*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        data = compiled(po)
        if mo.exists() and mo.read_bytes() == data:
            continue
        stale.append(mo)
        if not check:
            mo.write_bytes(data)
    for mo in stale:
        print(f"{'stale' if check else 'compiled'}: {mo.relative_to(LOCALE.parent)}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
