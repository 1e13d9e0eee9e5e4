#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs every check: ruff, mypy, pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/server -x`;
# PARTSBOARD_TEST_WORKERS=0 runs pytest in one process.
# Exits non-zero when any check fails, and when pytest ran no test (its exit code 5).
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || { echo "[test] set-up failed" >&2; exit 1; }

failed=()
echo "[test] ruff check ."
.venv/bin/ruff check . || failed+=(ruff)
echo "[test] mypy rooms server client bench"
.venv/bin/mypy rooms server client bench || failed+=(mypy)
# Two workers, one test file each at a time (a file's module fixtures stay in one process):
# most tests wait on sockets and subprocesses, so two cores finish in about 60% of the time.
workers=${PARTSBOARD_TEST_WORKERS:-2}
echo "[test] pytest -q -n $workers --dist loadfile $*"
.venv/bin/pytest -q -n "$workers" --dist loadfile "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests: that is a failure" >&2
  failed+=("pytest (no tests)")
elif [ "$rc" -ne 0 ]; then
  failed+=("pytest (exit $rc)")
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "[test] FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "[test] all checks passed"
