#!/usr/bin/env bash
# Run the iOS and Android device simulators against the server that `make up` started.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/venv.sh
port="${PORT:-8000}"
export DJANGO_DEBUG=1 IDP_ISSUER="${IDP_ISSUER:-http://localhost:${port}}"
exec .venv/bin/python manage.py device_demo --issuer "$IDP_ISSUER" "$@"
