"""Worker API: submitting answers."""

from __future__ import annotations

import json

import pytest

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from marketplace.enums import BatchStatus
from marketplace.models import Batch
from tests.crowd.work_api import (
    ASSIGNMENT_NOT_FOUND,
    _expire,
    _one_lease,
    _result,
    _slots,
    _submit,
)
from tests.factories import (
    ProjectFactory,
    WorkerFactory,
    client_for,
    db_snapshot,
    iso,
    open_batch,
)

pytestmark = pytest.mark.django_db


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

    # when the client retries the same request
    replay = _submit(worker_client, lease.pk, "cat", key="submit-1")

    # then
    assert first.status_code == 200
    assert replay.status_code == 200
    assert replay.content == first.content
    assert first.json() == _result(lease)
    assert first.json()["answer"] == "cat"
    assert db_snapshot() == after_first
    assert _slots(batch) == [(1, 1, "open")]


def test_the_same_idempotency_key_with_another_answer_is_409(worker_client):
    # given an accepted submit
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)
    _submit(worker_client, lease.pk, "cat", key="submit-1")
    before = db_snapshot()

    # when the key comes back with a different body
    response = _submit(worker_client, lease.pk, "dog", key="submit-1")

    # then it is refused, as the money endpoints refuse a reused key, and nothing changed
    assert response.status_code == 409
    assert response.json() == {
        "code": "idempotency_key_reused",
        "message": "This Idempotency-Key was used to submit a different answer.",
        "detail": {"assignment": lease.pk},
    }
    assert db_snapshot() == before


def test_a_replay_is_recognised_however_the_database_stored_the_json(worker):
    # given an object answer with a float, submitted once (jsonb reorders keys)
    project = ProjectFactory(answer_schema={"type": "object"})
    batch = open_batch(regular=1, project=project)
    client = client_for(worker.user)
    lease = _one_lease(client, batch)
    answer = {"z": 1.0, "a": [True, None, "x"]}
    first = _submit(client, lease.pk, answer, key="k")

    # when the same answer is replayed, and then one where true became 1
    replay = _submit(client, lease.pk, {"a": [True, None, "x"], "z": 1.0}, key="k")
    changed = _submit(client, lease.pk, {"z": 1.0, "a": [1, None, "x"]}, key="k")

    # then the replay is the first result and the changed body is refused
    assert (first.status_code, replay.status_code, replay.json()) == (200, 200, first.json())
    assert (changed.status_code, changed.json()["code"]) == (409, "idempotency_key_reused")


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
