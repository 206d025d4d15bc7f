#!/usr/bin/env bash
# The README's first command: install, migrate, seed the demo data, serve on 127.0.0.1:8000.
# SQLite (db.sqlite3) unless DATABASE_URL is set; Celery runs tasks eagerly in the web process, as
# the demo starts no worker. Re-running keeps the data and prints fresh API tokens.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh requirements.txt
export DJANGO_SETTINGS_MODULE=marketplace.settings.local
# No broker: with REDIS_URL or CELERY_BROKER_URL set, tasks would queue for a worker nobody runs.
unset REDIS_URL CELERY_BROKER_URL
if [ -n "${DATABASE_URL:-}" ]; then
  echo "==> database: DATABASE_URL (${DATABASE_URL%%://*})"
else
  echo "==> database: SQLite ($(pwd)/db.sqlite3)"
fi
echo "==> migrating"
.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py seed_demo
# Stripe cannot be reached from a demo machine: the project's Stripe fake serves the API on
# loopback, and its /pay/<session> and /onboard/<account> pages play the customer's side, posting
# signed webhooks back to this site.
STRIPE_PORT="${STRIPE_FAKE_PORT:-12111}"
export STRIPE_API_BASE="http://127.0.0.1:${STRIPE_PORT}"
.venv/bin/python manage.py stripe_fake --port "$STRIPE_PORT" \
  --webhook-url http://127.0.0.1:8000/api/v1/stripe/webhook &
STRIPE_PID=$!
trap 'kill $STRIPE_PID 2>/dev/null || true' EXIT INT TERM
echo "==> Stripe fake on $STRIPE_API_BASE: top up with POST /api/v1/funding {\"amount_cents\": 5000},"
echo "    then open the returned checkout_url to pay"
echo "==> serving http://127.0.0.1:8000/ (API docs at /api/docs/); Ctrl-C stops"
.venv/bin/python manage.py runserver 127.0.0.1:8000
