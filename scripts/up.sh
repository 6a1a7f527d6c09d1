#!/usr/bin/env bash
# Bring the whole system up on embedded defaults: SQLite, a filesystem Celery broker,
# web on http://localhost:8000, a Celery worker and Celery beat. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/venv.sh
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
# Development only (a system check refuses it without DEBUG): trust the device simulators'
# test PKI so `make demo` can attest.
export ATTESTATION_ALLOW_TEST_ROOTS="${ATTESTATION_ALLOW_TEST_ROOTS:-1}"
port="${PORT:-8000}"
export IDP_ISSUER="${IDP_ISSUER:-http://localhost:${port}}"
mkdir -p var/celery-broker/control var/log
# Security events: one JSON line each (stderr in production; a file here, to keep this terminal readable).
export VIGIL_SECURITY_LOG="${VIGIL_SECURITY_LOG:-$PWD/var/log/security.jsonl}"
PY=.venv/bin/python
$PY manage.py migrate --noinput >/dev/null
$PY manage.py bootstrap_demo
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
.venv/bin/celery -A vigil worker --pool=solo --loglevel=INFO >var/log/worker.log 2>&1 & pids+=($!)
.venv/bin/celery -A vigil beat --loglevel=INFO >var/log/beat.log 2>&1 & pids+=($!)
echo "Celery worker and beat: logs in var/log/worker.log and var/log/beat.log"
$PY manage.py runserver "127.0.0.1:${port}" --noreload & pids+=($!)
wait "${pids[-1]}"
