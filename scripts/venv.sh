#!/usr/bin/env bash
# Create .venv and install requirements.txt when it changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi
# The pages' translations (locale/*/LC_MESSAGES/django.mo; committed, rewritten only when a .po changed).
.venv/bin/python scripts/compile_translations.py
