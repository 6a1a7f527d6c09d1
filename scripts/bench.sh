#!/usr/bin/env bash
# Benchmark Vigil's token endpoint against django-oauth-toolkit (docs/benchmarks.md).
#   ./scripts/bench.sh --quick            about 4 minutes (make bench-quick)
#   ./scripts/bench.sh                    full run: 8 and 32 devices, open loop, 1M-session scale run
#   ./scripts/bench.sh --sessions 1000000 seed a million sessions in both systems
# Needs the machine's PostgreSQL (postgres://postgres@127.0.0.1:5432, or BENCH_PG) and Redis
# (127.0.0.1:6379, database 13 is flushed). Everything it starts and creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/venv.sh
dot_venv=bench/.venv-dot
dot_stamp="$dot_venv/.requirements.sha256"
dot_want=$(sha256sum bench/dot_project/requirements.txt | cut -d' ' -f1)
if [ ! -x "$dot_venv/bin/python" ] || [ ! -f "$dot_stamp" ] || [ "$(cat "$dot_stamp")" != "$dot_want" ]; then
  echo "bench: creating $dot_venv (django-oauth-toolkit baseline)"
  python3 -m venv "$dot_venv"
  "$dot_venv/bin/python" -m pip install --quiet -r bench/dot_project/requirements.txt
  echo "$dot_want" > "$dot_stamp"
fi
exec .venv/bin/python bench/run.py "$@"
