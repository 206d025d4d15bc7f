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


def seed_batch(name: str, *, answer_schema: dict, overlap: int, workers: int) -> int:
    """Migrate the (empty) database, then create, through the services as the API would, one
    requester with a project and a draft batch, and ``workers`` worker profiles (bulk: their rows
    are all a benchmark's SQL needs). Returns the batch id; tasks and answers are the caller's."""
    from django.core.management import call_command

    from crowd.models import Worker
    from marketplace.enums import Role
    from marketplace.models import User
    from marketplace.services.accounts import user_create
    from marketplace.services.batches import batch_create
    from marketplace.services.projects import project_create

    call_command("migrate", verbosity=0, interactive=False)
    owner = user_create(email=f"requester@{name}.invalid", roles=[Role.REQUESTER])
    project = project_create(
        requester=owner.requester,
        name=name,
        instructions="-",
        input_schema={"type": "object"},
        answer_schema=answer_schema,
    )
    batch = batch_create(project=project, name=name, price_cents=0, overlap=overlap)
    users = User.objects.bulk_create(
        [User(email=f"w{i}@{name}.invalid", password="!") for i in range(workers)]
    )
    Worker.objects.bulk_create([Worker(user=u) for u in users])
    return batch.pk
