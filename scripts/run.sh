#!/usr/bin/env bash
# Sets up what the service needs (scripts/setup.sh --run), then runs it in the foreground.
# Configuration comes from the environment (PORT, HOST, REDIS_URL, PARTSBOARD_*; see README).
# Without REDIS_URL it starts a throwaway, non-persistent local Redis and stops it on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --run
exec .venv/bin/python -m server "$@"
