"""Worker API: browsing open batches."""

from __future__ import annotations

import pytest

from marketplace.enums import BatchStatus
from marketplace.models import Batch
from tests.crowd.work_api import (
    BATCH_NOT_FOUND,
)
from tests.factories import (
    BatchFactory,
    ProjectFactory,
    open_batch,
)

pytestmark = pytest.mark.django_db


def _work_batch(batch: Batch) -> dict:
    batch.refresh_from_db()
    project = batch.project
    return {
        "id": batch.pk,
        "name": batch.name,
        "project": project.name,
        "instructions": project.instructions,
        "input_schema": project.input_schema,
        "answer_schema": project.answer_schema,
        "price_cents": batch.price_cents,
        "currency": batch.currency,
        "lease_seconds": batch.lease_seconds,
        "max_claims_per_request": batch.max_claims_per_request,
        "priority": batch.priority,
        "status": batch.status,
    }


def test_work_batches_lists_only_open_batches_of_others_highest_priority_first(worker, worker_client):
    # given
    low = open_batch(regular=1, priority=0)
    high = open_batch(regular=1, priority=5)
    BatchFactory(status=BatchStatus.DRAFT)
    BatchFactory(status=BatchStatus.PAUSED)
    BatchFactory(status=BatchStatus.CLOSED)
    own_project = ProjectFactory(requester__user=worker.user)
    open_batch(project=own_project, regular=1, priority=9)

    # when
    response = worker_client.get("/api/v1/work/batches")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [_work_batch(high), _work_batch(low)],
    }


def test_work_batch_detail_of_an_open_batch(worker_client):
    # given
    batch = open_batch(regular=1)

    # when
    response = worker_client.get(f"/api/v1/work/batches/{batch.pk}")

    # then
    assert response.status_code == 200
    assert response.json() == _work_batch(batch)


def test_work_batch_detail_of_a_draft_or_my_own_batch_is_404(worker, worker_client):
    # given
    draft = BatchFactory(status=BatchStatus.DRAFT)
    own = open_batch(project=ProjectFactory(requester__user=worker.user), regular=1)

    for batch in (draft, own):
        # when
        response = worker_client.get(f"/api/v1/work/batches/{batch.pk}")

        # then
        assert response.status_code == 404
        assert response.json() == BATCH_NOT_FOUND
