"""Worker API: my assignments."""

from __future__ import annotations

import pytest

from crowd.models import Assignment
from tests.crowd.work_api import (
    ASSIGNMENT_NOT_FOUND,
    _claim,
    _mine,
    _one_lease,
    _submit,
)
from tests.factories import (
    WorkerFactory,
    client_for,
    open_batch,
)

pytestmark = pytest.mark.django_db


def test_my_assignments_newest_first_and_only_mine(worker, worker_client):
    # given
    batch = open_batch(regular=4)
    first, second, third = (_one_lease(worker_client, batch) for _ in range(3))
    _submit(worker_client, first.pk, "cat")
    worker_client.post(f"/api/v1/work/assignments/{second.pk}/skip")
    _one_lease(client_for(WorkerFactory().user), batch)

    # when
    everything = worker_client.get("/api/v1/work/assignments")

    # then
    assert everything.status_code == 200
    assert everything.json() == {
        "next": None,
        "previous": None,
        "results": [_mine(third), _mine(second), _mine(first)],
    }


@pytest.mark.parametrize(("status", "expected"), [("active", 2), ("submitted", 0), ("skipped", 1)])
def test_my_assignments_filtered_by_status(worker_client, status, expected):
    # given
    batch = open_batch(regular=4)
    leases = [_one_lease(worker_client, batch) for _ in range(3)]
    worker_client.post(f"/api/v1/work/assignments/{leases[0].pk}/skip")
    wanted = [a for a in reversed(leases) if Assignment.objects.get(pk=a.pk).status == status]

    # when
    response = worker_client.get(f"/api/v1/work/assignments?status={status}")

    # then
    assert response.status_code == 200
    assert response.json()["results"] == [_mine(a) for a in wanted]
    assert len(wanted) == expected


def test_my_assignments_with_an_unknown_status_is_400(worker_client):
    # when
    response = worker_client.get("/api/v1/work/assignments?status=bogus")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Unknown status.",
        "detail": {
            "status": ["Choose one of: active, submitted, expired, skipped, released, accepted, rejected."]
        },
    }


def test_my_assignments_are_cursor_paginated(worker_client):
    # given
    batch = open_batch(regular=5, max_claims_per_request=5)
    _claim(worker_client, batch, 5)
    ids = sorted(Assignment.objects.values_list("id", flat=True), reverse=True)

    # when
    pages, url = [], "/api/v1/work/assignments?page_size=2"
    while url:
        body = worker_client.get(url).json()
        pages.append([row["id"] for row in body["results"]])
        url = body["next"]

    # then
    assert pages == [ids[0:2], ids[2:4], ids[4:]]


def test_my_assignment_detail(worker_client):
    # given
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)

    # when
    response = worker_client.get(f"/api/v1/work/assignments/{lease.pk}")

    # then
    assert response.status_code == 200
    assert response.json() == _mine(lease)


def test_someone_elses_assignment_detail_is_404(worker_client):
    # given
    batch = open_batch(regular=1)
    theirs = _one_lease(client_for(WorkerFactory().user), batch)

    # when
    response = worker_client.get(f"/api/v1/work/assignments/{theirs.pk}")

    # then
    assert response.status_code == 404
    assert response.json() == ASSIGNMENT_NOT_FOUND
