"""The lease sweep runs through the real Redis broker in a real (in-process) Celery worker.

The test app is switched from eager mode to Redis (a separate database number, so nothing in the
default one is touched) and back again afterwards; the effect is awaited in PostgreSQL, while a
Redis result backend, configured for this test only, also reports what each run returned.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.utils import timezone

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from crowd.services.claims import assignment_claim
from crowd.tasks import assignment_expire_sweep
from marketplace.celery import app
from marketplace.models import Task
from tests.celery_worker import queued as _queued
from tests.celery_worker import wait_for as _wait_for
from tests.factories import BatchFactory, WorkerFactory, make_tasks, publish_funded

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_expire_sweep_runs_through_redis_in_a_worker(redis_celery):
    # given three overdue leases and one valid one
    batch = BatchFactory(overlap=1)
    make_tasks(batch, 4)
    batch = publish_funded(batch)
    leases = assignment_claim(worker=WorkerFactory(), batch=batch, count=4)
    overdue = [lease.id for lease in leases[:3]]
    Assignment.objects.filter(pk__in=overdue).update(expires_at=timezone.now() - timedelta(seconds=1))

    def expired() -> int:
        return Assignment.objects.filter(pk__in=overdue, status=AssignmentStatus.EXPIRED).count()

    # when the beat task is sent while no worker runs, it waits in Redis and nothing happens
    first = assignment_expire_sweep.delay()
    assert _queued() == 1
    time.sleep(0.3)
    assert expired() == 0

    # then a worker started on the broker picks it up and the leases expire in the database
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=15):
        assert _wait_for(lambda: expired() == 3), "the sweep never ran"
        assert first.get(timeout=15) == 3
        # and the beat schedule's entry, sent by name as beat does, is a harmless re-run
        entry = settings.CELERY_BEAT_SCHEDULE["assignment-expire-sweep"]
        again = app.send_task(entry["task"])
        assert again.get(timeout=15) == 0

    assert _queued() == 0
    slots = Task.objects.filter(batch=batch).order_by("slots_taken").values_list("slots_taken", flat=True)
    assert list(slots) == [0, 0, 0, 1]
    assert Assignment.objects.filter(pk=leases[3].id, status=AssignmentStatus.ACTIVE).exists()
    first.forget()
    again.forget()


def test_eager_mode_is_back_after_the_broker_test():
    # The fixture restored the eager test configuration for every later test.
    assert app.conf.task_always_eager is True
    assert app.conf.result_backend is None
    assert assignment_expire_sweep.delay().get() == 0
