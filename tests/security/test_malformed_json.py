"""Malformed JSON never gives a 500 (issue 13, part 2).

``NaN``, ``Infinity`` and ``1e400`` (PostgreSQL refuses them) and JSON nested hundreds or thousands
of levels deep (``RecursionError``) used to pass the parsers and fail later. Every entry point that
parses client JSON now refuses them with a 400 and stores nothing: answers (the lean token path
and the DRF view), task inputs and gold answers (JSON array and JSON Lines), project schemas.
"""

from __future__ import annotations

import pytest

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from marketplace.models import Task
from tests.crowd.work_api import _one_lease
from tests.factories import BatchFactory, ProjectFactory, WorkerFactory, client_for, db_snapshot, open_batch

pytestmark = pytest.mark.django_db

HUGE_INT = "1" + "0" * 400
# (JSON text of a value, what the strict decode says about it)
REFUSED = [
    ("NaN", "NaN is not a JSON number"),
    ("Infinity", "Infinity is not a JSON number"),
    ("-Infinity", "-Infinity is not a JSON number"),
    ("1e400", "the number 1e400 is out of range (at most about 1.8e308)"),
    ('{"x": [-1.5e999]}', "the number -1.5e999 is out of range (at most about 1.8e308)"),
    (HUGE_INT, "the number 10000000000000000000...0000000000 is out of range (at most about 1.8e308)"),
    ("[" * 900 + "]" * 900, "nested deeper than 64 levels"),
    ("[" * 5000 + "]" * 5000, "nested deeper than 64 levels"),
]
IDS = ["NaN", "Infinity", "-Infinity", "1e400", "nested 1e999", "401 digits", "900 deep", "5000 deep"]


@pytest.mark.parametrize(("value", "reason"), REFUSED, ids=IDS)
@pytest.mark.parametrize("lean", [True, False], ids=["token", "session"])
def test_a_malformed_answer_is_400_and_nothing_changes(value, reason, lean):
    # given a project that accepts any answer and a worker holding a lease
    batch = open_batch(project=ProjectFactory(answer_schema={}), regular=1)
    worker = WorkerFactory()
    client = client_for(worker.user)
    lease = _one_lease(client, batch)
    if not lean:  # the DRF view, not the lean token path in front of it
        client.credentials()
        client.force_authenticate(worker.user)
    before = db_snapshot()

    # when
    response = client.post(
        f"/api/v1/work/assignments/{lease.pk}/submit",
        f'{{"answer": {value}}}',
        content_type="application/json",
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "malformed_request",
        "message": f"JSON parse error - {reason}",
        "detail": {},
    }
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.ACTIVE
    assert db_snapshot() == before


def test_an_answer_at_the_depth_limit_is_accepted(worker_client):
    # given: the body is one level ({"answer": ...}), the answer 63 more
    batch = open_batch(project=ProjectFactory(answer_schema={}), regular=1)
    lease = _one_lease(worker_client, batch)

    # when
    response = worker_client.post(
        f"/api/v1/work/assignments/{lease.pk}/submit",
        '{"answer": ' + "[" * 63 + "]" * 63 + "}",
        content_type="application/json",
    )

    # then
    assert response.status_code == 200
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.SUBMITTED


@pytest.mark.parametrize("field", ["input", "gold_answer"])
@pytest.mark.parametrize(("value", "reason"), REFUSED, ids=IDS)
def test_a_malformed_value_in_a_json_array_upload_is_400(field, value, reason, requester, requester_client):
    # given
    batch = BatchFactory(project=ProjectFactory(requester=requester, input_schema={}, answer_schema={}))
    row = f'{{"input": {value}}}' if field == "input" else f'{{"input": {{}}, "gold_answer": {value}}}'
    before = db_snapshot()

    # when
    response = requester_client.post(
        f"/api/v1/batches/{batch.pk}/tasks", f'[{{"input": {{}}}}, {row}]', content_type="application/json"
    )

    # then the whole body is refused (the array adds one level to the limit)
    reason = reason.replace("64 levels", "65 levels")
    assert response.status_code == 400
    assert response.json() == {
        "code": "malformed_request",
        "message": f"Malformed JSON: {reason}.",
        "detail": {},
    }
    assert db_snapshot() == before


@pytest.mark.parametrize("field", ["input", "gold_answer"])
def test_malformed_json_lines_are_reported_per_row(field, requester, requester_client):
    # given one good line, then one line per refused value
    batch = BatchFactory(project=ProjectFactory(requester=requester, input_schema={}, answer_schema={}))
    lines = ['{"input": {"ok": true}}']
    for value, _ in REFUSED:
        lines.append(
            f'{{"input": {value}}}' if field == "input" else f'{{"input": {{}}, "gold_answer": {value}}}'
        )

    # when
    response = requester_client.post(
        f"/api/v1/batches/{batch.pk}/tasks", "\n".join(lines), content_type="application/x-ndjson"
    )

    # then the good row is created, every other one is reported
    assert response.status_code == 201
    assert response.json()["errors"] == [
        {"index": i, "detail": {"row": [f"Malformed JSON: {reason}."]}}
        for i, (_, reason) in enumerate(REFUSED, 1)
    ]
    assert list(Task.objects.filter(batch=batch).values_list("input", "gold_answer")) == [
        ({"ok": True}, None)
    ]


@pytest.mark.parametrize(("value", "reason"), REFUSED, ids=IDS)
def test_a_malformed_project_body_is_400(value, reason, requester_client):
    # given
    before = db_snapshot()

    # when
    response = requester_client.post(
        "/api/v1/projects",
        f'{{"name": "P", "answer_schema": {{"const": {value}}}}}',
        content_type="application/json",
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "malformed_request",
        "message": f"JSON parse error - {reason}",
        "detail": {},
    }
    assert db_snapshot() == before


@pytest.mark.parametrize("value", ["NaN", "1e400", "[" * 5000 + "]" * 5000])
def test_a_malformed_claim_body_is_400(value, worker_client):
    # given
    batch = open_batch(regular=1)
    before = db_snapshot()

    # when
    response = worker_client.post(
        f"/api/v1/work/batches/{batch.pk}/claim", f'{{"count": {value}}}', content_type="application/json"
    )

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"
    assert db_snapshot() == before


def test_a_body_that_is_not_utf8_is_400(worker_client):
    # given
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)

    # when
    response = worker_client.post(
        f"/api/v1/work/assignments/{lease.pk}/submit", b'{"answer": "\xff"}', content_type="application/json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "malformed_request",
        "message": "JSON parse error - 'utf-8' codec can't decode byte 0xff in position 12: "
        "invalid start byte",
        "detail": {},
    }
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.ACTIVE
