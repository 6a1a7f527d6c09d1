#!/usr/bin/env bash
# Run the iOS and Android device simulators against the server that `make up` started.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/venv.sh
port="${PORT:-8000}"
export DJANGO_DEBUG=1 IDP_ISSUER="${IDP_ISSUER:-http://localhost:${port}}"
# The operator's step of the DeviceCheck scenario runs here: its security events go where
# `make up` sends them (var/log/security.jsonl), not between the demo's lines.
mkdir -p var/log
export VIGIL_SECURITY_LOG="${VIGIL_SECURITY_LOG:-$PWD/var/log/security.jsonl}"
exec .venv/bin/python manage.py device_demo --issuer "$IDP_ISSUER" "$@"
