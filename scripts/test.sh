#!/usr/bin/env bash
# Install everything and run the whole test suite (also what .ci/run calls).
# Uses PostgreSQL and Redis when reachable; with CI=true they are required.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh requirements-dev.txt
# Browser tests drive Debian's chromium through Playwright (no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (browser tests)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; } \
    || echo "# could not install chromium: browser tests will skip (and fail under CI=true)" >&2
fi
exports=$(.venv/bin/python scripts/services.py)
eval "$exports"
.venv/bin/python -m ruff check .
.venv/bin/python manage.py makemigrations --check --dry-run --settings=marketplace.settings.test >/dev/null \
  || { echo "models and migrations disagree: run makemigrations" >&2; exit 1; }
exec .venv/bin/python -m pytest "$@"
