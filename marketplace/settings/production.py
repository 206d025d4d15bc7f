"""Production: DEBUG off, secrets required, persistent database connections, secure cookies."""

import os

from .base import *  # noqa: F403
from .base import DATABASES, env_bool

DEBUG = False
SECRET_KEY = os.environ["SECRET_KEY"]
# Persistent connections: a gunicorn worker reuses its PostgreSQL connection between requests.
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "600"))
# No per-request "SELECT 1": a connection that broke fails one request and is then replaced.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DB_HEALTH_CHECKS", False)
# Server-side binding lets psycopg prepare the hot-path statements after a few runs, so
# PostgreSQL stops re-planning them on every request. Turn it off behind a transaction-mode
# pooler (PgBouncer < 1.21), which cannot keep prepared statements.
_postgres = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if _postgres and env_bool("DB_SERVER_SIDE_BINDING", True):
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options["server_side_binding"] = True
    # Django turns psycopg's automatic preparing off unless asked: without this every claim is
    # planned afresh, which profiling showed costs PostgreSQL more than running it.
    options["prepare_threshold"] = int(os.environ.get("DB_PREPARE_THRESHOLD", "5"))
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
