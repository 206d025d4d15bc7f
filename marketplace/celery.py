"""The Celery app. Without REDIS_URL tasks run eagerly in-process (see settings.base)."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings.local")

app = Celery("marketplace")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_hygiene(sender: Any = None, **kwargs: Any) -> None:
    """Treat each task like a request: drop a database connection that broke or outlived
    ``CONN_MAX_AGE`` and keep the others. Celery's own Django fixup would otherwise close the
    connection after every task (we set ``CELERY_DB_REUSE_MAX`` so it rarely does), and a new
    PostgreSQL connection per task cost more than the task. Eager tasks run inside the caller's
    request or test transaction, whose connection is not ours to close."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
