#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run them (extra args go to pytest).
# Creates .venv with requirements-dev.txt, installs Debian's chromium for the browser tests, and
# fetches the real weights through the app's own resolver on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null
  else
    sudo sh -c 'apt-get update -qq && apt-get install -y -qq chromium' >/dev/null
  fi
fi
export GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python -m pytest -q "$@"
