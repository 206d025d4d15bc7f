"""Settings shared by every environment, driven by environment variables.

With nothing set the site runs on a SQLite file and Celery runs tasks eagerly, so a newcomer gets a
working site from one command. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get("SECRET_KEY", "dev-insecure-secret-key-change-me")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.headless",
    "marketplace",
    "crowd",
    "payments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before everything else, so a refused request costs one round trip to Redis and nothing more.
    "marketplace.ratelimit.RateLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "marketplace.urls"
WSGI_APPLICATION = "marketplace.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes SQLite's write lock at BEGIN, so concurrent claims serialise instead of
    # failing with "database is locked" when a reader upgrades to a writer.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "marketplace.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Bulk task uploads carry up to 100,000+ rows in one body; the upload view streams the body and
# enforces its own limit (TASK_UPLOAD_MAX_BYTES), other views keep Django's default.
TASK_UPLOAD_MAX_BYTES = int(os.environ.get("TASK_UPLOAD_MAX_BYTES", str(256 * 1024 * 1024)))
TASK_UPLOAD_MAX_ROWS = int(os.environ.get("TASK_UPLOAD_MAX_ROWS", "200000"))

# --- django-allauth -------------------------------------------------------------------------
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
HEADLESS_ONLY = False
HEADLESS_CLIENTS = ("app", "browser")
LOGIN_REDIRECT_URL = "/api/docs/"
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "crowdmarket@localhost")

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "marketplace.authentication.ApiTokenAuthentication",
        "allauth.headless.contrib.rest_framework.authentication.XSessionTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["marketplace.api.parsers.StrictJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "marketplace.api.negotiation.JsonOnlyNegotiation",
    "DEFAULT_PAGINATION_CLASS": "marketplace.api.pagination.DefaultPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "marketplace.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Crowdmarket API",
    "DESCRIPTION": "Self-hosted crowdsourcing task marketplace: requesters post batches, workers "
    "claim leases and submit answers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The UI's JavaScript and CSS come from this site's static files, never from a CDN. (No ReDoc
    # page: its bundle loads a logo from cdn.redoc.ly whatever it is told.)
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "BatchStatusEnum": "marketplace.enums.BatchStatus",
        "TaskStatusEnum": "marketplace.enums.TaskStatus",
        "AssignmentStatusEnum": "crowd.enums.AssignmentStatus",
        "RoleEnum": "marketplace.enums.Role",
    },
}

# --- Untrusted input --------------------------------------------------------------------------
# Request JSON goes through one strict decoder (marketplace/strict_json.py: finite numbers only,
# nesting bounded), and project JSON Schemas are bounded when they are created or edited.
JSON_MAX_DEPTH = int(os.environ.get("JSON_MAX_DEPTH", "64"))
PROJECT_SCHEMA_MAX_BYTES = int(os.environ.get("PROJECT_SCHEMA_MAX_BYTES", str(64 * 1024)))
PROJECT_SCHEMA_MAX_DEPTH = int(os.environ.get("PROJECT_SCHEMA_MAX_DEPTH", "32"))
# Units of work one value may cost to check against a project schema (marketplace/schema_budget.py).
SCHEMA_EVAL_BUDGET = int(os.environ.get("SCHEMA_EVAL_BUDGET", "50000"))
# ... and all the rows of one task upload together (about 10 to 35 s of work at most).
SCHEMA_UPLOAD_BUDGET = int(os.environ.get("SCHEMA_UPLOAD_BUDGET", "10000000"))
# API routes take ids through <id:...> (marketplace/api/converters.py): bigint-sized integers.
SPECTACULAR_SETTINGS["PATH_CONVERTER_OVERRIDES"] = {"id": {"type": "integer", "maximum": 2**63 - 1}}

# --- Celery ---------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not (REDIS_URL or os.environ.get("CELERY_BROKER_URL"))
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# Celery's Django fixup closes the database connection after every task unless told to reuse it;
# marketplace/celery.py closes broken or expired ones instead, as Django does per request.
CELERY_DB_REUSE_MAX = 10_000
CELERY_BEAT_SCHEDULE = {
    "assignment-expire-sweep": {
        "task": "crowd.tasks.assignment_expire_sweep",
        "schedule": timedelta(seconds=int(os.environ.get("LEASE_SWEEP_SECONDS", "60"))),
    },
    "assignment-auto-accept-sweep": {
        "task": "crowd.tasks.assignment_auto_accept_sweep",
        "schedule": timedelta(minutes=10),
    },
}

# --- Cache and rate limits (marketplace/ratelimit.py) -------------------------------------------
# With Redis, the cache (allauth's own log-in and sign-up limits) and our rate limits are shared by
# every web process; without it (the demo) each process counts for itself.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
RATE_LIMIT_ENABLED = env_bool("RATE_LIMIT_ENABLED", True)
RATE_LIMIT_REDIS_URL = os.environ.get("RATE_LIMIT_REDIS_URL", REDIS_URL)
RATE_LIMIT_KEY_PREFIX = os.environ.get("RATE_LIMIT_KEY_PREFIX", "rl")
# "<count>/<s|min|hour|day>", fixed windows. See the README for what each one counts.
RATE_LIMITS = {
    "ip": os.environ.get("RATE_LIMIT_IP", "6000/min"),
    "credential": os.environ.get("RATE_LIMIT_CREDENTIAL", "1200/min"),
    "anonymous": os.environ.get("RATE_LIMIT_ANONYMOUS", "300/min"),
    "auth": os.environ.get("RATE_LIMIT_AUTH", "20/min"),
    "auth_failures": os.environ.get("RATE_LIMIT_AUTH_FAILURES", "30/hour"),
}
# Trusted proxies in front of the site (a load balancer: 1): the client address is then read from
# X-Forwarded-For. 0 trusts nobody and uses the connection's address.
NUM_PROXIES = int(os.environ.get("NUM_PROXIES", "0"))

# --- Domain ---------------------------------------------------------------------------------
# A task's consensus is computed by a Celery drain this long after the submit that completed it
# (crowd/services/submissions.py consensus_drain_soon); one drain serves every task due by then.
CONSENSUS_DRAIN_DELAY_MS = int(os.environ.get("CONSENSUS_DRAIN_DELAY_MS", "1000"))
# Control (gold) answers count in anything a worker sees only this long after they were given:
# work/me's reliability, batches' reliability filters, the gold review mode's verdicts.
GOLD_REVEAL_DELAY_HOURS = int(os.environ.get("GOLD_REVEAL_DELAY_HOURS", "24"))
# HMAC key for the stable per-requester worker pseudonyms shown to requesters.
PSEUDONYM_KEY = os.environ.get("PSEUDONYM_KEY", SECRET_KEY)
# Lazily expire at most this many stale leases per claim; the beat sweep handles the rest.
LEASE_LAZY_EXPIRE_LIMIT = 50
# Claims start at a random task among this many ids from a batch's oldest task with a free slot:
# work still completes roughly in upload order, while parallel claims spread over index pages
# (see crowd/services/claim_sql.py). 1 = strictly oldest first.
CLAIM_WINDOW = int(os.environ.get("CLAIM_WINDOW", "256"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- payments -------------------------------------------------------------------------------
# Stripe: the key and webhook secret come from the environment; STRIPE_API_BASE points the SDK at
# the project's Stripe fake on loopback (`manage.py stripe_fake`) for the demo and Celery.
STRIPE_API_KEY = os.environ.get("STRIPE_API_KEY", "sk_test_crowdmarket_dev")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_crowdmarket_dev")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
STRIPE_MAX_NETWORK_RETRIES = int(os.environ.get("STRIPE_MAX_NETWORK_RETRIES", "2"))
STRIPE_WEBHOOK_TOLERANCE = int(os.environ.get("STRIPE_WEBHOOK_TOLERANCE", "300"))
STRIPE_SUCCESS_URL = os.environ.get("STRIPE_SUCCESS_URL", "http://127.0.0.1:8000/api/docs/?funding=success")
STRIPE_CANCEL_URL = os.environ.get("STRIPE_CANCEL_URL", "http://127.0.0.1:8000/api/docs/?funding=cancel")
STRIPE_ONBOARDING_RETURN_URL = os.environ.get(
    "STRIPE_ONBOARDING_RETURN_URL", "http://127.0.0.1:8000/api/docs/"
)
STRIPE_ONBOARDING_REFRESH_URL = os.environ.get(
    "STRIPE_ONBOARDING_REFRESH_URL", "http://127.0.0.1:8000/api/docs/"
)
# Platform fee in basis points of the worker's price (1000 = 10 %).
PLATFORM_FEE_BPS = int(os.environ.get("PLATFORM_FEE_BPS", "1000"))
# Earnings stay pending this long (for appeals and chargebacks) before workers can withdraw them.
EARNINGS_HOLD_DAYS = int(os.environ.get("EARNINGS_HOLD_DAYS", "7"))
PAYOUT_MINIMUM_CENTS = int(os.environ.get("PAYOUT_MINIMUM_CENTS", "500"))
FUNDING_MINIMUM_CENTS = int(os.environ.get("FUNDING_MINIMUM_CENTS", "100"))
FUNDING_MAXIMUM_CENTS = int(os.environ.get("FUNDING_MAXIMUM_CENTS", "10000000"))
# Checks of the ledger that only the apps posting to it can make (payments knows no tasks): dotted
# paths of callables returning problem lines, run by ``reconcile_ledger`` and the beat task below.
LEDGER_RECONCILE_CHECKS = ["marketplace.services.budget.assignment_payments_reconcile"]
CELERY_BEAT_SCHEDULE["ledger-reconcile"] = {
    "task": "payments.tasks.ledger_reconcile",
    "schedule": timedelta(seconds=int(os.environ.get("LEDGER_RECONCILE_SECONDS", "3600"))),
}
CELERY_BEAT_SCHEDULE["pending-to-available-sweep"] = {
    "task": "payments.tasks.pending_to_available_sweep",
    "schedule": timedelta(seconds=int(os.environ.get("EARNINGS_SWEEP_SECONDS", "3600"))),
}
CELERY_BEAT_SCHEDULE["stripe-events-process-pending"] = {
    "task": "payments.tasks.stripe_events_process_pending",
    "schedule": timedelta(seconds=int(os.environ.get("STRIPE_EVENT_SWEEP_SECONDS", "60"))),
}
CELERY_BEAT_SCHEDULE["payouts-requeue-stuck"] = {
    "task": "payments.tasks.payouts_requeue_stuck",
    "schedule": timedelta(seconds=int(os.environ.get("PAYOUT_REQUEUE_SECONDS", "300"))),
}
CELERY_BEAT_SCHEDULE["refunds-requeue-stuck"] = {
    "task": "payments.tasks.refunds_requeue_stuck",
    "schedule": timedelta(seconds=int(os.environ.get("REFUND_REQUEUE_SECONDS", "300"))),
}
CELERY_BEAT_SCHEDULE["appeals-escalate"] = {
    "task": "crowd.tasks.appeals_escalate",
    "schedule": timedelta(seconds=int(os.environ.get("APPEAL_ESCALATE_SECONDS", "600"))),
}
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["AppealStatusEnum"] = "crowd.enums.AppealStatus"
CELERY_BEAT_SCHEDULE["consensus-refit-sweep"] = {
    "task": "marketplace.tasks.consensus_refit_sweep",
    "schedule": timedelta(seconds=int(os.environ.get("CONSENSUS_REFIT_SECONDS", "900"))),
}
# Snapshots of batch results are written under MEDIA_ROOT/snapshots/ (issue 4).
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["AggregationMethodEnum"] = "marketplace.enums.AggregationMethod"
