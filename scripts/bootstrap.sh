#!/usr/bin/env bash
# Create .venv and install the pinned dependencies. Re-running is cheap: it reinstalls only when a
# requirements file changed. Sourced by demo.sh and test.sh; usage: bootstrap.sh [requirements file]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REQ="${1:-requirements-dev.txt}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Python 3.11+ is required (found: $("$PY" --version 2>&1))." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.txt "$REQ" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> installing $REQ"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQ" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import django, rest_framework, allauth, celery, psycopg, stripe' \
    || { echo "dependency install failed" >&2; exit 1; }
  rm -f .venv/.installed-* && touch "$stamp"
fi
