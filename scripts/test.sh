#!/usr/bin/env bash
# Run every test. Services: DATABASE_URL (PostgreSQL), REDIS_URL (Redis) if set; tests
# that need a missing service skip with the reason (or fail when VIGIL_REQUIRE_SERVICES=1).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/venv.sh
export VIGIL_TESTING=1 DJANGO_ALLOW_ASYNC_UNSAFE=true
exec .venv/bin/python -m pytest "$@"
