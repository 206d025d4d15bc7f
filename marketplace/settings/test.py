"""Tests: the database and broker come from DATABASE_URL / REDIS_URL set by scripts/test.sh."""

import os

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tests drive Celery eagerly unless a test starts a real worker against the Redis broker.
CELERY_TASK_ALWAYS_EAGER = True
LOGGING = {"version": 1, "disable_existing_loggers": False}
# Parallel runs on one PostgreSQL (several checkouts, several people) each need their own test
# database: TEST_DB_NAME=test_alice bash scripts/test.sh
if os.environ.get("TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DB_NAME"]}  # noqa: F405
# Each test run counts for itself: nothing cached or counted leaks between tests or parallel runs.
# The rate-limit tests turn the limits on (and point them at Redis) themselves.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
RATE_LIMIT_ENABLED = False
