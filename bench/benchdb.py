"""Database set-up the benchmarks share: a dedicated PostgreSQL database, recreated empty, and
Django configured on it with production settings (so timings see what a deployment runs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def recreate_database(database_url: str) -> None:
    import psycopg

    base, _, name = pg_url(database_url).rpartition("/")
    name = name.split("?")[0]
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing odd database name {name!r}")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def django_setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "marketplace.settings.production"
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
