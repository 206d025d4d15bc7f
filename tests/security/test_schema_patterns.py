"""Requester regular expressions run on RE2, in linear time (issue 13, part 1).

``^(a+)+$`` on 35 characters held a gunicorn worker until its timeout under Python's ``re``; on
RE2 a 100 kB input takes milliseconds. The bounds below are generous on purpose: a backtracking
engine would not finish them in hours.
"""

from __future__ import annotations

import time

import pytest

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from marketplace.models import Project, Task
from tests.crowd.work_api import _one_lease, _submit
from tests.factories import BatchFactory, ProjectFactory, WorkerFactory, client_for, db_snapshot, open_batch

pytestmark = pytest.mark.django_db

CATASTROPHIC = "^(a+)+$"
LONG = "a" * 100_000 + "!"  # no match: a backtracking engine tries every split of the a's
BOUND_SECONDS = 1.0


def _timed(call):
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def test_a_catastrophic_answer_pattern_on_a_long_answer_is_refused_fast(worker_client):
    # given
    batch = open_batch(
        project=ProjectFactory(answer_schema={"type": "string", "pattern": CATASTROPHIC}), regular=1
    )
    lease = _one_lease(worker_client, batch)
    before = db_snapshot()

    # when
    response, seconds = _timed(lambda: _submit(worker_client, lease.pk, LONG))

    # then
    assert seconds < BOUND_SECONDS
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "The answer does not match the answer schema.",
        "detail": {"answer": [f"$: {LONG!r} does not match {CATASTROPHIC!r}"]},
    }
    assert db_snapshot() == before


def test_a_long_answer_that_matches_is_accepted_fast(worker_client):
    # given
    batch = open_batch(
        project=ProjectFactory(answer_schema={"type": "string", "pattern": CATASTROPHIC}), regular=1
    )
    lease = _one_lease(worker_client, batch)

    # when
    response, seconds = _timed(lambda: _submit(worker_client, lease.pk, LONG[:-1]))

    # then
    assert seconds < BOUND_SECONDS
    assert response.status_code == 200
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.SUBMITTED


@pytest.mark.parametrize(
    "input_schema",
    [
        {"type": "object", "properties": {"text": {"type": "string", "pattern": CATASTROPHIC}}},
        {"type": "object", "patternProperties": {CATASTROPHIC: {"type": "integer"}}},
        {"type": "object", "patternProperties": {CATASTROPHIC: True}, "additionalProperties": False},
        {"type": "object", "patternProperties": {CATASTROPHIC: True}, "unevaluatedProperties": False},
        {"type": "object", "propertyNames": {"pattern": CATASTROPHIC}},
        {  # draft-07, and a recursive reference back to the root that carries the pattern
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": ["object", "string"],
            "pattern": CATASTROPHIC,
            "additionalProperties": {"$ref": "#"},
        },
    ],
    ids=[
        "pattern",
        "patternProperties",
        "additionalProperties",
        "unevaluatedProperties",
        "propertyNames",
        "draft-07",
    ],
)
def test_catastrophic_patterns_on_a_long_upload_finish_fast(input_schema, requester, requester_client):
    # given a requester's own project and a row whose keys and values are 100 kB
    batch = BatchFactory(project=ProjectFactory(requester=requester, input_schema=input_schema))
    rows = [{"input": {"text": LONG, LONG: LONG, LONG[:-1]: "x"}}, {"input": {"text": LONG[:-1]}}]

    # when
    response, seconds = _timed(
        lambda: requester_client.post(f"/api/v1/batches/{batch.pk}/tasks", rows, format="json")
    )

    # then every keyword that matches a pattern answered in time, and something was checked
    assert seconds < BOUND_SECONDS
    assert response.status_code in (200, 201)
    assert [error["index"] for error in response.json()["errors"]][:1] == [0]
    assert Task.objects.filter(batch=batch).count() == 2 - response.json()["invalid"]


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (
            {"properties": {"code": {"type": "string", "pattern": "^(?=a)b"}}},
            "$.properties.code.pattern: RE2 cannot compile it (invalid perl operator: (?=); "
            "it has no look-arounds or backreferences",
        ),
        (
            {"items": {"patternProperties": {"(a)\\1": {}}}},
            '$.items.patternProperties["(a)\\\\1"]: RE2 cannot compile it (invalid escape sequence: \\1); '
            "it has no look-arounds or backreferences",
        ),
        (
            {"anyOf": [{"pattern": "[a-"}]},
            "$.anyOf[0].pattern: RE2 cannot compile it (missing ]: [a-); "
            "it has no look-arounds or backreferences",
        ),
        (
            {"pattern": "(.*a.*b){1000}"},
            "$.pattern: too complex for RE2 (program size 18,004; the limit is 5,000)",
        ),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_at_creation(schema, problem, requester_client):
    # given
    before = db_snapshot()

    # when
    response = requester_client.post(
        "/api/v1/projects", {"name": "P", "answer_schema": schema}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid JSON Schema.",
        "detail": {"answer_schema": [problem]},
    }
    assert db_snapshot() == before


def test_a_stored_pattern_re2_cannot_run_fails_safe(worker_client):
    # given an answer schema saved before patterns were checked, with a look-ahead
    schema = {"type": "string", "pattern": "^(?!bad)"}
    batch = open_batch(project=ProjectFactory(answer_schema=schema), regular=1)
    lease = _one_lease(worker_client, batch)
    before = db_snapshot()

    # when
    response = _submit(worker_client, lease.pk, "good")

    # then a clear 400, never a 500, and the lease is untouched
    problem = "$.pattern: RE2 cannot compile it (invalid perl operator: (?!); "
    problem += "it has no look-arounds or backreferences"
    assert response.status_code == 400
    assert response.json() == {
        "code": "schema_unusable",
        "message": f"The project's answer_schema cannot be used: {problem}. Fix it, or create a new project.",
        "detail": {"answer_schema": [problem]},
    }
    assert db_snapshot() == before


def test_ecma_unicode_escapes_in_patterns_work(requester_client):
    # given a JSON Schema (ECMA-262) pattern spelled with \\u escapes
    schema = {"type": "string", "pattern": "^[\\u0041-\\u005A]+$"}

    # when
    response = requester_client.post(
        "/api/v1/projects", {"name": "P", "answer_schema": schema}, format="json"
    )
    project = Project.objects.get()
    batch = open_batch(project=project, regular=1)
    client = client_for(WorkerFactory().user)
    wrong = _submit(client, _one_lease(client, batch).pk, "abc")

    # then
    assert response.status_code == 201
    assert wrong.status_code == 400
    assert wrong.json()["detail"] == {"answer": ["$: 'abc' does not match '^[\\\\u0041-\\\\u005A]+$'"]}
    assert _submit(client, Assignment.objects.get().pk, "ABC").status_code == 200


def test_a_dialect_below_the_root_is_refused(requester_client):
    # given: jsonschema would switch to its own (Python re) validator for this subschema
    schema = {"properties": {"a": {"$schema": "http://json-schema.org/draft-07/schema#", "pattern": "a"}}}

    # when
    response = requester_client.post("/api/v1/projects", {"name": "P", "input_schema": schema}, format="json")

    # then
    assert response.status_code == 400
    assert response.json()["detail"] == {
        "input_schema": ["$.properties.a.$schema: only allowed at the top level"]
    }


def test_an_unpaired_surrogate_under_a_pattern_is_a_400_not_a_500(worker_client):
    # given
    batch = open_batch(project=ProjectFactory(answer_schema={"type": "string", "pattern": "^a"}), regular=1)
    lease = _one_lease(worker_client, batch)

    # when the answer holds an unpaired surrogate (as a JSON escape)
    response = worker_client.post(
        f"/api/v1/work/assignments/{lease.pk}/submit",
        '{"answer": "a\\udc00"}',
        content_type="application/json",
    )

    # then
    assert response.status_code == 400
    assert response.json()["message"] == "The answer cannot be stored."
