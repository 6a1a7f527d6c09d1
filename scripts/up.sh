#!/usr/bin/env bash
# Bring the whole system up on embedded defaults: SQLite, a filesystem Celery broker,
# web on http://localhost:8000 (or $PORT), a Celery worker and Celery beat. Ctrl-C stops them all (and the DeviceCheck stand-in, when it runs).
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
export VIGIL_REQUEST_LOG="${VIGIL_REQUEST_LOG:-$PWD/var/log/requests.jsonl}"
# Metrics (docs/operations.md "Metrics"): web, worker and beat write their samples into one
# fresh directory, and /metrics adds them up. Readable from this machine only, unless a
# VIGIL_METRICS_TOKEN or VIGIL_METRICS_ALLOW of your own is set.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/prometheus-multiproc}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name "*.db" -delete
if [ -z "${VIGIL_METRICS_TOKEN:-}" ] && [ -z "${VIGIL_METRICS_ALLOW:-}" ]; then
  export VIGIL_METRICS_ALLOW="127.0.0.1,::1"
fi
PY=.venv/bin/python
# Development only: Apple's DeviceCheck API played on 127.0.0.1 (attestation/testing/devicecheck_standin.py)
# for the DeviceCheck demo client; the server signs with a key made here. VIGIL_DEVICECHECK_STANDIN=0 skips it.
dc_standin=0
if [ "${VIGIL_DEVICECHECK_STANDIN:-1}" = "1" ] && [ "$ATTESTATION_ALLOW_TEST_ROOTS" = "1" ]; then
  dc_standin=1 dc_key="$PWD/var/devicecheck-standin.p8" dc_port="${DEVICECHECK_STANDIN_PORT:-8101}"
  [ -f "$dc_key" ] || $PY -c "from attestation.testing.devicecheck_standin import new_team_key_pem as k; print(k(), end='')" >"$dc_key"
  export ATTESTATION_DEVICECHECK_BASE_URL="http://127.0.0.1:${dc_port}"
  export ATTESTATION_DEVICECHECK_DEVELOPMENT_BASE_URL="http://127.0.0.1:${dc_port}"
  export ATTESTATION_DEVICECHECK_SIGNING_KEY="$dc_key" ATTESTATION_DEVICECHECK_KEY_ID=DEVSTANDIN
fi
$PY manage.py migrate --noinput >/dev/null
$PY manage.py bootstrap_demo
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
if [ "$dc_standin" = "1" ]; then
  $PY -m attestation.testing.devicecheck_standin --port "$dc_port" --team-id ABCDE12345 --key-file "$dc_key" \
    --key-id DEVSTANDIN >var/log/devicecheck-standin.log 2>&1 & pids+=($!)
fi
.venv/bin/celery -A vigil worker --pool=solo --loglevel=INFO >var/log/worker.log 2>&1 & pids+=($!)
.venv/bin/celery -A vigil beat --loglevel=INFO >var/log/beat.log 2>&1 & pids+=($!)
echo "Celery worker and beat: logs in var/log/worker.log and var/log/beat.log"
echo "Health:  ${IDP_ISSUER}/healthz (alive)  ${IDP_ISSUER}/readyz (database, cache, signing key)"
echo "Metrics: ${IDP_ISSUER}/metrics (Prometheus text; from this machine, or with VIGIL_METRICS_TOKEN)"
echo "Logs:    JSON lines in var/log/requests.jsonl (requests) and var/log/security.jsonl (security events)"
$PY manage.py runserver "127.0.0.1:${port}" --noreload & pids+=($!)
wait "${pids[-1]}"
