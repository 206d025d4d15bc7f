"""Worker API: skipping and releasing leases."""

from __future__ import annotations

import pytest

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from tests.crowd.work_api import (
    _claim,
    _expire,
    _one_lease,
    _result,
    _slots,
    _submit,
)
from tests.factories import (
    WorkerFactory,
    client_for,
    db_snapshot,
    iso,
    open_batch,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("action", "status"), [("skip", "skipped"), ("release", "released")])
def test_skip_and_release_return_the_slot_and_the_worker_never_sees_the_task_again(
    worker_client, action, status
):
    # given
    batch = open_batch(regular=1, overlap=1)
    lease = _one_lease(worker_client, batch)
    assert _slots(batch) == [(1, 0, "open")]

    # when
    response = worker_client.post(f"/api/v1/work/assignments/{lease.pk}/{action}")

    # then
    assert response.status_code == 200
    lease.refresh_from_db()
    assert (lease.status, lease.answer, lease.submitted_at) == (status, None, None)
    assert lease.ended_at is not None
    assert response.json() == _result(lease)
    assert _slots(batch) == [(0, 0, "open")]
    # and the task is never offered to this worker again, though others still get it
    assert _claim(worker_client, batch, 1).json() == {"assignments": []}
    other = _claim(client_for(WorkerFactory().user), batch, 1).json()["assignments"]
    assert [lease["input"] for lease in other] == [{"text": "item 0"}]


@pytest.mark.parametrize("action", ["skip", "release"])
def test_skip_or_release_after_submitting_is_409(worker_client, action):
    # given
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)
    _submit(worker_client, lease.pk)
    before = db_snapshot()

    # when
    response = worker_client.post(f"/api/v1/work/assignments/{lease.pk}/{action}")

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "assignment_submitted",
        "message": "The assignment is submitted.",
        "detail": {"status": "submitted"},
    }
    assert db_snapshot() == before


@pytest.mark.parametrize("action", ["skip", "release"])
def test_skip_or_release_an_expired_lease_is_409_and_returns_the_slot_once(worker_client, action):
    # given
    batch = open_batch(regular=1)
    lease = _expire(_one_lease(worker_client, batch))

    # when
    response = worker_client.post(f"/api/v1/work/assignments/{lease.pk}/{action}")

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "assignment_expired",
        "message": "The lease expired before the answer arrived.",
        "detail": {"status": "expired", "expires_at": iso(lease.expires_at)},
    }
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.EXPIRED
    assert _slots(batch) == [(0, 0, "open")]
