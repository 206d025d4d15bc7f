"""Find PostgreSQL and Redis for the test suite and benchmarks; print shell exports.

Without CI: use each service when it answers, otherwise fall back (SQLite, eager Celery) and say so.
With CI=true: try to start a stopped service, then fail if it still does not answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

PG_URL = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
START_PG = "pg_ctlcluster --skip-systemctl-redirect {v} main start"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no"


def pg_ok() -> bool:
    if not PG_URL.startswith("postgres"):
        return True
    try:
        import psycopg

        with psycopg.connect(PG_URL.replace("postgres://", "postgresql://", 1), connect_timeout=3):
            return True
    except Exception as exc:
        print(f"# PostgreSQL not reachable: {exc}".replace("\n", " "), file=sys.stderr)
        return False


def redis_ok() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping())
    except Exception as exc:
        print(f"# Redis not reachable: {exc}", file=sys.stderr)
        return False


def try_start(kind: str) -> None:
    if kind == "pg" and shutil.which("pg_ctlcluster") and os.path.isdir("/etc/postgresql"):
        for version in os.listdir("/etc/postgresql"):
            subprocess.run(START_PG.format(v=version), shell=True, check=False, capture_output=True)
    if kind == "redis" and shutil.which("redis-server"):
        subprocess.run(START_REDIS, shell=True, check=False, capture_output=True)
    time.sleep(2)


def main() -> int:
    ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    pg, rd = pg_ok(), redis_ok()
    if ci and not pg:
        try_start("pg")
        pg = pg_ok()
    if ci and not rd:
        try_start("redis")
        rd = redis_ok()
    if ci and not (pg and rd):
        print(
            "# CI=true: PostgreSQL and Redis are required and at least one is unreachable.", file=sys.stderr
        )
        return 1
    if pg:
        print(f"export DATABASE_URL='{PG_URL}'")
        print(f"echo '==> database: PostgreSQL ({PG_URL})' >&2")
    else:
        print("unset DATABASE_URL")
        print("echo '==> database: SQLite fallback (PostgreSQL unreachable; concurrency tests skip)' >&2")
    if rd:
        print(f"export REDIS_URL='{REDIS_URL}'")
        print(f"echo '==> broker: Redis ({REDIS_URL})' >&2")
    else:
        print("unset REDIS_URL")
        print("echo '==> broker: none, Celery eager (Redis unreachable; broker tests skip)' >&2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
