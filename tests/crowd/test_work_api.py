"""Worker API: browse open batches, claim leases, submit, skip, release, list my assignments."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from crowd.services.claims import assignment_claim
from marketplace.enums import BatchStatus
from marketplace.models import Batch, Task
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    ProjectFactory,
    WorkerFactory,
    client_for,
    db_snapshot,
    iso,
    open_batch,
)

pytestmark = pytest.mark.django_db

ASSIGNMENT_NOT_FOUND = {"code": "not_found", "message": "Assignment not found.", "detail": {}}
BATCH_NOT_FOUND = {"code": "not_found", "message": "Batch not found.", "detail": {}}


def _claim(client, batch, count=None):
    body = {} if count is None else {"count": count}
    return client.post(f"/api/v1/work/batches/{batch.pk}/claim", body, format="json")


def _submit(client, assignment_id, answer="cat", key=None):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(
        f"/api/v1/work/assignments/{assignment_id}/submit", {"answer": answer}, format="json", **headers
    )


def _lease(assignment: Assignment) -> dict:
    """A claim item as the worker must see it."""
    return {
        "id": assignment.pk,
        "batch": assignment.batch_id,
        "input": assignment.task.input,
        "expires_at": iso(assignment.expires_at),
    }


def _result(assignment: Assignment) -> dict:
    """The body of submit / skip / release."""
    assignment.refresh_from_db()
    return {
        "id": assignment.pk,
        "batch": assignment.batch_id,
        "status": assignment.status,
        "answer": assignment.answer,
        "submitted_at": iso(assignment.submitted_at),
        "ended_at": iso(assignment.ended_at),
        "explanation": None,  # issue 3: training feedback only
    }


def _mine(assignment: Assignment) -> dict:
    """An item of /work/assignments."""
    assignment.refresh_from_db()
    return {
        "id": assignment.pk,
        "batch": assignment.batch_id,
        "status": assignment.status,
        "input": assignment.task.input,
        "answer": assignment.answer,
        "claimed_at": iso(assignment.claimed_at),
        "expires_at": iso(assignment.expires_at),
        "submitted_at": iso(assignment.submitted_at),
        "ended_at": iso(assignment.ended_at),
        # Issue 3: the verdict (in ``status``), its time and reason, training feedback.
        "reviewed_at": iso(assignment.reviewed_at),
        "review_reason": assignment.review_reason,
        "explanation": None,
    }


def _slots(batch: Batch) -> list[tuple[int, int, str]]:
    return list(
        Task.objects.filter(batch=batch).order_by("id").values_list("slots_taken", "answers_count", "status")
    )


# --- browsing batches -----------------------------------------------------------------------


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


# --- claiming -------------------------------------------------------------------------------


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


# --- submitting -----------------------------------------------------------------------------


def _one_lease(client, batch) -> Assignment:
    lease_id = _claim(client, batch, 1).json()["assignments"][0]["id"]
    return Assignment.objects.select_related("task").get(pk=lease_id)


def test_submit_records_the_answer(worker_client):
    # given
    batch = open_batch(regular=1, overlap=2)
    lease = _one_lease(worker_client, batch)

    # when
    response = _submit(worker_client, lease.pk, "dog")

    # then
    assert response.status_code == 200
    lease.refresh_from_db()
    assert (lease.status, lease.answer, lease.ended_at) == ("submitted", "dog", None)
    assert lease.submitted_at is not None
    assert response.json() == _result(lease)
    assert _slots(batch) == [(1, 1, "open")]


def test_the_last_answer_completes_the_task(worker_client):
    # given
    batch = open_batch(regular=1, overlap=2)
    other = client_for(WorkerFactory().user)
    _submit(other, _one_lease(other, batch).pk)
    lease = _one_lease(worker_client, batch)

    # when
    response = _submit(worker_client, lease.pk)

    # then
    assert response.status_code == 200
    assert _slots(batch) == [(2, 2, "complete")]


@pytest.mark.parametrize(
    ("answer", "errors"),
    [
        ("bird", ["$: 'bird' is not one of ['cat', 'dog', 'other']"]),
        (3, ["$: 3 is not one of ['cat', 'dog', 'other']", "$: 3 is not of type 'string'"]),
        (
            {"label": "cat"},
            [
                "$: {'label': 'cat'} is not one of ['cat', 'dog', 'other']",
                "$: {'label': 'cat'} is not of type 'string'",
            ],
        ),
    ],
)
def test_submit_an_answer_outside_the_schema_is_400(worker_client, answer, errors):
    # given
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)
    before = db_snapshot()

    # when
    response = _submit(worker_client, lease.pk, answer)

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "The answer does not match the answer schema.",
        "detail": {"answer": errors},
    }
    assert db_snapshot() == before


def test_submit_checks_fields_of_an_object_answer():
    # given a project whose answers are objects
    project = ProjectFactory(
        answer_schema={
            "type": "object",
            "properties": {"label": {"enum": ["cat", "dog"]}, "confidence": {"type": "number", "maximum": 1}},
            "required": ["label", "confidence"],
        }
    )
    batch = open_batch(project=project, regular=1)
    client = client_for(WorkerFactory().user)
    lease = _one_lease(client, batch)

    # when
    response = _submit(client, lease.pk, {"label": "cow", "confidence": 2})

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "The answer does not match the answer schema.",
        "detail": {
            "answer": [
                "$.confidence: 2 is greater than the maximum of 1",
                "$.label: 'cow' is not one of ['cat', 'dog']",
            ]
        },
    }
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.ACTIVE


@pytest.mark.parametrize("answer", ["cat\x00", {"label\x00": "cat"}, ["\udc00"]])
def test_submit_an_answer_postgresql_cannot_store_is_400(answer):
    # given a project that accepts any answer
    batch = open_batch(project=ProjectFactory(answer_schema={}), regular=1)
    client = client_for(WorkerFactory().user)
    lease = _one_lease(client, batch)
    before = db_snapshot()

    # when the answer arrives as JSON escapes (json.dumps writes \\u0000 and \\udc00)
    response = client.post(
        f"/api/v1/work/assignments/{lease.pk}/submit",
        json.dumps({"answer": answer}),
        content_type="application/json",
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "The answer cannot be stored.",
        "detail": {"answer": ["Must not contain the NUL character (\\u0000) or an unpaired surrogate."]},
    }
    assert db_snapshot() == before


def test_submit_without_an_answer_is_400(worker_client):
    # given
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)
    before = db_snapshot()

    # when
    response = worker_client.post(f"/api/v1/work/assignments/{lease.pk}/submit", {}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid input.",
        "detail": {"answer": ["This field is required."]},
    }
    assert db_snapshot() == before


def test_submit_replayed_with_the_same_idempotency_key_returns_the_first_result(worker_client):
    # given
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)
    first = _submit(worker_client, lease.pk, "cat", key="submit-1")
    after_first = db_snapshot()

    # when the client retries, even with a different body
    replay = _submit(worker_client, lease.pk, "dog", key="submit-1")

    # then
    assert first.status_code == 200
    assert replay.status_code == 200
    assert replay.content == first.content
    assert first.json() == _result(lease)
    assert first.json()["answer"] == "cat"
    assert db_snapshot() == after_first
    assert _slots(batch) == [(1, 1, "open")]


@pytest.mark.parametrize("key", [None, "another-key"])
def test_a_second_submit_without_the_same_key_is_409(worker_client, key):
    # given
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)
    _submit(worker_client, lease.pk, "cat", key="submit-1")
    before = db_snapshot()

    # when
    response = _submit(worker_client, lease.pk, "dog", key=key)

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "assignment_submitted",
        "message": "The assignment is submitted.",
        "detail": {"status": "submitted"},
    }
    assert db_snapshot() == before


def test_a_second_submit_after_one_without_a_key_is_409(worker_client):
    # given
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)
    _submit(worker_client, lease.pk, "cat")
    before = db_snapshot()

    # when
    response = _submit(worker_client, lease.pk, "cat")

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "assignment_submitted"
    assert db_snapshot() == before


def test_submit_with_an_overlong_idempotency_key_is_400(worker_client):
    # given
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)
    before = db_snapshot()

    # when
    response = _submit(worker_client, lease.pk, "cat", key="k" * 201)

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Idempotency-Key is too long.",
        "detail": {"Idempotency-Key": ["At most 200 characters."]},
    }
    assert db_snapshot() == before


def _expire(lease: Assignment) -> Assignment:
    """Move the lease's deadline into the past (no clock mocking needed)."""
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    lease.refresh_from_db()
    return lease


def test_submit_after_the_lease_expired_is_409_and_returns_the_slot(worker_client):
    # given
    batch = open_batch(regular=1)
    lease = _expire(_one_lease(worker_client, batch))
    assert _slots(batch) == [(1, 0, "open")]

    # when
    response = _submit(worker_client, lease.pk, "cat", key="late")

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "assignment_expired",
        "message": "The lease expired before the answer arrived.",
        "detail": {"status": "expired", "expires_at": iso(lease.expires_at)},
    }
    lease.refresh_from_db()
    assert (lease.status, lease.answer, lease.submitted_at, lease.submit_key) == ("expired", None, None, "")
    assert lease.ended_at is not None
    assert _slots(batch) == [(0, 0, "open")]


def test_submit_again_after_expiry_is_409_assignment_expired_and_returns_no_second_slot(worker_client):
    # given
    batch = open_batch(regular=1)
    lease = _expire(_one_lease(worker_client, batch))
    _submit(worker_client, lease.pk)
    before = db_snapshot()

    # when
    response = _submit(worker_client, lease.pk)

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "assignment_expired",
        "message": "The assignment is expired.",
        "detail": {"status": "expired"},
    }
    assert db_snapshot() == before


def test_submit_to_a_paused_batch_is_accepted(worker_client):
    # given
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)
    Batch.objects.filter(pk=batch.pk).update(status=BatchStatus.PAUSED)

    # when
    response = _submit(worker_client, lease.pk)

    # then
    assert response.status_code == 200
    assert response.json()["status"] == "submitted"


def test_submit_after_the_batch_closed_is_409(project, requester_client, worker_client):
    # given
    batch = open_batch(project=project, regular=1)
    lease = _one_lease(worker_client, batch)
    assert requester_client.post(f"/api/v1/batches/{batch.pk}/close").status_code == 200
    before = db_snapshot()

    # when
    response = _submit(worker_client, lease.pk)

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "assignment_released",
        "message": "The assignment is released.",
        "detail": {"status": "released"},
    }
    assert db_snapshot() == before


@pytest.mark.parametrize("action", ["submit", "skip", "release"])
def test_acting_on_someone_elses_assignment_is_404(worker_client, action):
    # given
    batch = open_batch(regular=1)
    theirs = _one_lease(client_for(WorkerFactory().user), batch)
    before = db_snapshot()

    # when
    response = worker_client.post(
        f"/api/v1/work/assignments/{theirs.pk}/{action}", {"answer": "cat"}, format="json"
    )

    # then
    assert response.status_code == 404
    assert response.json() == ASSIGNMENT_NOT_FOUND
    assert db_snapshot() == before


@pytest.mark.parametrize("action", ["submit", "skip", "release"])
def test_acting_on_a_missing_assignment_is_404(worker_client, action):
    # when
    response = worker_client.post(
        f"/api/v1/work/assignments/999999999/{action}", {"answer": "cat"}, format="json"
    )

    # then
    assert response.status_code == 404
    assert response.json() == ASSIGNMENT_NOT_FOUND


# --- skip and release -----------------------------------------------------------------------


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


# --- my assignments -------------------------------------------------------------------------


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
