"""Worker API: claiming leases, and gold tasks among them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from crowd.services.claims import assignment_claim
from marketplace.enums import BatchStatus
from marketplace.models import Batch, Task
from tests.crowd.work_api import (
    BATCH_NOT_FOUND,
    _claim,
    _lease,
    _slots,
    _submit,
)
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    ProjectFactory,
    WorkerFactory,
    client_for,
    db_snapshot,
    open_batch,
)

pytestmark = pytest.mark.django_db


def test_claim_leases_tasks_in_order_and_takes_their_slots(worker, worker_client, settings):
    # given: strict oldest-first (by default claims start at random within a window of old tasks)
    settings.CLAIM_WINDOW = 1
    batch = open_batch(regular=4, lease_seconds=300)
    before = timezone.now()

    # when
    response = _claim(worker_client, batch, 3)

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    leases = list(Assignment.objects.filter(worker=worker).select_related("task").order_by("id"))
    assert response.json() == {"assignments": [_lease(a) for a in leases]}
    assert sorted(a.task.input["text"] for a in leases) == ["item 0", "item 1", "item 2"]
    for lease in leases:
        assert (lease.status, lease.is_gold, lease.answer) == ("active", False, None)
        assert before <= lease.claimed_at <= timezone.now()
        assert lease.expires_at == lease.claimed_at + timedelta(seconds=300)
    assert _slots(batch) == [(1, 0, "open")] * 3 + [(0, 0, "open")]


@pytest.mark.postgres
def test_claims_start_within_the_window_of_the_oldest_free_tasks(settings):
    # given: overlap 1, a window of 4 ids
    settings.CLAIM_WINDOW = 4
    batch = open_batch(regular=20, overlap=1)
    ids = list(Task.objects.filter(batch=batch).order_by("id").values_list("id", flat=True))

    # when: ten workers claim one task each, one after the other
    claimed = []
    for _ in range(10):
        (lease,) = assignment_claim(worker=WorkerFactory(), batch=batch, count=1)
        claimed.append(Assignment.objects.get(pk=lease.id).task_id)

    # then: each claim took the first free task at or after a start among the 4 oldest free
    # tasks, so ten claims stay within the 13 oldest tasks (10 + 4 - 1)
    assert len(set(claimed)) == 10
    assert {ids.index(t) for t in claimed} <= set(range(13))


def test_claim_without_a_count_claims_one(worker_client):
    # given
    batch = open_batch(regular=3)

    # when
    response = _claim(worker_client, batch)

    # then
    assert response.status_code == 200
    assert len(response.json()["assignments"]) == 1
    assert Assignment.objects.count() == 1


def test_claim_from_an_exhausted_batch_returns_an_empty_list(worker_client):
    # given every slot of the only task is taken by others
    batch = open_batch(regular=1, overlap=2)
    for other in (WorkerFactory(), WorkerFactory()):
        assert len(_claim(client_for(other.user), batch, 1).json()["assignments"]) == 1
    before = db_snapshot()

    # when
    response = _claim(worker_client, batch, 5)

    # then
    assert response.status_code == 200
    assert response.json() == {"assignments": []}
    assert db_snapshot() == before


def test_claim_count_is_clamped_to_max_claims_per_request(worker, worker_client):
    # given
    batch = open_batch(regular=10, max_claims_per_request=3)

    # when
    response = _claim(worker_client, batch, 10)

    # then
    assert response.status_code == 200
    assert len(response.json()["assignments"]) == 3
    assert Assignment.objects.filter(worker=worker, status="active").count() == 3


def test_claim_counts_leases_already_held_toward_the_cap(worker, worker_client):
    # given
    batch = open_batch(regular=10, max_claims_per_request=3)
    _claim(worker_client, batch, 2)

    # when
    response = _claim(worker_client, batch, 5)

    # then
    assert response.status_code == 200
    assert len(response.json()["assignments"]) == 1
    assert Assignment.objects.filter(worker=worker, status="active").count() == 3


def test_claim_while_holding_the_cap_is_409_too_many_active_leases(worker_client):
    # given
    batch = open_batch(regular=10, max_claims_per_request=3)
    _claim(worker_client, batch, 3)
    before = db_snapshot()

    # when
    response = _claim(worker_client, batch, 1)

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "too_many_active_leases",
        "message": "Submit, skip or release your current leases in this batch before claiming more.",
        "detail": {"active": 3, "max_claims_per_request": 3},
    }
    assert db_snapshot() == before


def test_leases_in_another_batch_do_not_count_toward_the_cap(worker_client):
    # given
    first = open_batch(regular=5, max_claims_per_request=2)
    second = open_batch(regular=5, max_claims_per_request=2)
    _claim(worker_client, first, 2)

    # when
    response = _claim(worker_client, second, 2)

    # then
    assert response.status_code == 200
    assert len(response.json()["assignments"]) == 2


@pytest.mark.parametrize("status", [BatchStatus.PAUSED, BatchStatus.CLOSED])
def test_claim_from_a_paused_or_closed_batch_is_409_batch_not_open(worker_client, status):
    # given
    batch = open_batch(regular=3)
    Batch.objects.filter(pk=batch.pk).update(status=status)
    before = db_snapshot()

    # when
    response = _claim(worker_client, batch, 1)

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "batch_not_open",
        "message": f"The batch is {status}, not open.",
        "detail": {},
    }
    assert db_snapshot() == before


def test_claim_from_a_draft_my_own_or_a_missing_batch_is_404(worker, worker_client):
    # given
    draft = BatchFactory(status=BatchStatus.DRAFT)
    Task.objects.create(batch=draft, input={"text": "x"}, overlap=3)
    own = open_batch(project=ProjectFactory(requester__user=worker.user), regular=3)
    missing = Batch(pk=999_999_999)
    before = db_snapshot()

    for batch in (draft, own, missing):
        # when
        response = _claim(worker_client, batch, 1)

        # then
        assert response.status_code == 404
        assert response.json() == BATCH_NOT_FOUND
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("count", "detail"),
    [
        (0, ["Ensure this value is greater than or equal to 1."]),
        (1001, ["Ensure this value is less than or equal to 1000."]),
        ("many", ["A valid integer is required."]),
        (None, ["This field may not be null."]),
    ],
)
def test_claim_with_an_invalid_count_is_400(worker_client, count, detail):
    # given
    batch = open_batch(regular=3)
    before = db_snapshot()

    # when
    response = worker_client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": count}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == {"code": "invalid", "message": "Invalid input.", "detail": {"count": detail}}
    assert db_snapshot() == before


def test_a_worker_never_receives_the_same_task_twice(worker, worker_client):
    # given
    batch = open_batch(regular=7, overlap=3, max_claims_per_request=3)
    seen: list[str] = []

    # when the worker claims and answers until the batch has nothing left for them
    while leases := _claim(worker_client, batch, 3).json()["assignments"]:
        for lease in leases:
            seen.append(lease["input"]["text"])
            assert _submit(worker_client, lease["id"]).status_code == 200

    # then
    assert sorted(seen) == sorted(f"item {i}" for i in range(7))
    assert _slots(batch) == [(1, 1, "open")] * 7


def test_overlap_caps_how_many_workers_get_a_task(worker_client):
    # given one task wanted twice
    batch = open_batch(regular=1, overlap=2)
    first, second = WorkerFactory(), WorkerFactory()
    _submit(client_for(first.user), _claim(client_for(first.user), batch, 1).json()["assignments"][0]["id"])
    _claim(client_for(second.user), batch, 1)

    # when
    response = _claim(worker_client, batch, 1)

    # then
    assert response.json() == {"assignments": []}
    assert _slots(batch) == [(2, 1, "open")]


def test_claim_takes_over_the_slot_of_an_expired_lease(worker_client):
    # given another worker's lease on the only slot ran out
    batch = open_batch(regular=1, overlap=1)
    late = AssignmentFactory(
        task=batch.tasks.get(), expires_at=timezone.now() - timedelta(seconds=1), claimed_at=timezone.now()
    )
    Task.objects.filter(batch=batch).update(slots_taken=1)

    # when
    response = _claim(worker_client, batch, 1)

    # then
    assert response.status_code == 200
    assert [lease["input"] for lease in response.json()["assignments"]] == [{"text": "item 0"}]
    late.refresh_from_db()
    assert late.status == AssignmentStatus.EXPIRED
    assert late.ended_at is not None
    assert _slots(batch) == [(1, 0, "open")]


# --- gold tasks -----------------------------------------------------------------------------


def test_gold_leases_never_take_slots_or_count_answers(worker, worker_client):
    # given a batch that serves only gold, beside regular work that still has room
    batch = open_batch(regular=1, gold=3, gold_rate=1.0, gold_answer="dog")

    # when
    leases = _claim(worker_client, batch, 3).json()["assignments"]
    _submit(worker_client, leases[0]["id"], "cat")
    worker_client.post(f"/api/v1/work/assignments/{leases[1]['id']}/skip")

    # then
    assert len(leases) == 3
    assert set(Assignment.objects.filter(worker=worker).values_list("is_gold", flat=True)) == {True}
    assert _slots(batch) == [(0, 0, "open")] * 4


def test_claim_falls_back_to_regular_work_once_every_gold_task_was_seen(worker, worker_client):
    # given the worker has already answered the only gold task of a half-gold batch
    batch = open_batch(regular=30, gold=1, gold_rate=0.5)
    AssignmentFactory(task=batch.tasks.get(is_gold=True), worker=worker, status="submitted", answer="cat")

    # when they claim one task at a time, 20 times, handing each back
    sizes = []
    for _ in range(20):
        leases = _claim(worker_client, batch, 1).json()["assignments"]
        sizes.append(len(leases))
        for lease in leases:
            worker_client.post(f"/api/v1/work/assignments/{lease['id']}/release")

    # then every claim got regular work: the batch was never exhausted for them
    assert sizes == [1] * 20
