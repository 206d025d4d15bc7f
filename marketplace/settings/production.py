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
# HTTPS only: browsers that saw the site once refuse plain HTTP to it for a year. Django sends the
# header on HTTPS requests; behind a load balancer that ends TLS, set TRUST_X_FORWARDED_PROTO so a
# request it forwarded as https counts as secure.
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers check health over plain HTTP
