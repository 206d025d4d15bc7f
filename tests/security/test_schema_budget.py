"""Checking one value against a project schema is bounded by ``SCHEMA_EVAL_BUDGET`` (issue 13).

A schema can be small and still take exponential time: two ``$ref``s under an ``anyOf``, chained
20 levels deep, is 2**20 branches for a value that fails them all (minutes before the budget).
The budget counts steps, not seconds, so the bounds below are generous wall-clock guards only.
"""

from __future__ import annotations

import time

import pytest

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from marketplace.models import Task
from tests.crowd.work_api import _one_lease, _submit
from tests.factories import BatchFactory, ProjectFactory, WorkerFactory, client_for, db_snapshot, open_batch

pytestmark = pytest.mark.django_db

BOUND_SECONDS = 2.0
DEFAULT_BUDGET = 50_000


def _timed(call):
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def _branching(levels: int, leaf: dict) -> dict:
    """Two references to the next level under an ``anyOf``, ``levels`` deep. A value that passes
    ``leaf`` passes the first branch at every level (cheap); one that fails it tries 2**levels."""
    defs = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)
    }
    return {"$defs": {**defs, f"d{levels}": leaf}, "$ref": "#/$defs/d0"}


def _too_costly(schema_field: str, limit: int = DEFAULT_BUDGET) -> str:
    noun = schema_field.replace("_", " ")
    return f"The {noun} is too costly to evaluate for this value (more than {limit:,} steps)."


def _answer_too_costly(limit: int = DEFAULT_BUDGET) -> dict:
    return {
        "code": "invalid",
        "message": "The answer could not be checked against the answer schema.",
        "detail": {"answer": [_too_costly("answer_schema", limit)]},
    }


# --- submit -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("levels", "lean"), [(14, True), (20, True), (20, False)], ids=["14-token", "20-token", "20-session"]
)
def test_a_branching_answer_schema_is_refused_on_submit_within_the_budget(levels, lean):
    # given an open batch whose answer schema branches 2**levels ways for a number
    batch = open_batch(
        project=ProjectFactory(answer_schema=_branching(levels, {"type": "string"})), regular=1
    )
    worker = WorkerFactory()
    client = client_for(worker.user)
    lease = _one_lease(client, batch)
    if not lean:  # the DRF view, not the lean token path in front of it
        client.credentials()
        client.force_authenticate(worker.user)
    before = db_snapshot()

    # when
    response, seconds = _timed(lambda: _submit(client, lease.pk, 1))

    # then a field-level 400 in time; the lease is untouched
    assert seconds < BOUND_SECONDS
    assert response.status_code == 400
    assert response.json() == _answer_too_costly()
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.ACTIVE
    assert db_snapshot() == before


def test_a_branching_answer_schema_still_accepts_a_value_its_first_branches_take(worker_client):
    # given the same 20-level schema: a string passes the first branch at every level
    batch = open_batch(project=ProjectFactory(answer_schema=_branching(20, {"type": "string"})), regular=1)
    lease = _one_lease(worker_client, batch)

    # when
    response, seconds = _timed(lambda: _submit(worker_client, lease.pk, "cat"))

    # then
    assert seconds < BOUND_SECONDS
    assert response.status_code == 200
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.SUBMITTED


def test_many_costly_patterns_over_a_long_answer_are_refused_before_they_run(worker_client):
    # given 20 patterns whose RE2 program (3,996 instructions) outgrows the DFA: each search over
    # 100 kB of a's and b's took 2.9 s, so 58 s for the answer
    pattern = "a[ab]{1000}[ab]{1000}[ab]{1000}[ab]{990}c"
    schema = {"type": "string", "allOf": [{"pattern": f"{pattern}{'d' * i}"} for i in range(20)]}
    batch = open_batch(project=ProjectFactory(answer_schema=schema), regular=1)
    lease = _one_lease(worker_client, batch)
    before = db_snapshot()

    # when
    response, seconds = _timed(lambda: _submit(worker_client, lease.pk, "ab" * 50_000))

    # then
    assert seconds < BOUND_SECONDS
    assert response.status_code == 400
    assert response.json() == _answer_too_costly()
    assert db_snapshot() == before


def test_many_cheap_patterns_over_a_long_answer_are_checked(worker_client):
    # given 20 plain patterns over a 10 kB answer
    schema = {
        "type": "string",
        "maxLength": 20_000,
        "allOf": [{"pattern": f"^[a-z ]+{chr(ord('a') + i)}[a-z ]*$"} for i in range(20)],
    }
    batch = open_batch(project=ProjectFactory(answer_schema=schema), regular=1)
    client = client_for(WorkerFactory().user)
    lease = _one_lease(worker_client, batch)
    text = "the quick brown fox jumps over a lazy dog " * 250

    # when
    response, seconds = _timed(lambda: _submit(worker_client, lease.pk, text))
    other = _one_lease(client, open_batch(project=ProjectFactory(answer_schema=schema), regular=1))
    wrong = _submit(client, other.pk, text.upper())

    # then every pattern ran, and a failing answer gets the schema's own errors
    assert seconds < BOUND_SECONDS
    assert response.status_code == 200
    assert wrong.status_code == 400
    assert wrong.json()["message"] == "The answer does not match the answer schema."
    assert len(wrong.json()["detail"]["answer"]) == 20


# --- task uploads and gold answers -----------------------------------------------------------------


@pytest.mark.parametrize("levels", [14, 20])
def test_a_branching_input_schema_refuses_the_upload_at_the_costly_row(levels, requester, requester_client):
    # given an input schema that is cheap for rows with a text and branches 2**levels ways otherwise
    schema = _branching(levels, {"type": "object", "required": ["text"]})
    batch = BatchFactory(project=ProjectFactory(requester=requester, input_schema=schema))
    rows = [
        {"input": {"text": "a cat"}},
        {"input": {"text": "a dog"}, "color": "brown"},
        {"input": {"caption": "no text"}},
        {"input": {"caption": "never checked"}},
    ]
    before = db_snapshot()

    # when a plain (not atomic) upload is sent
    response, seconds = _timed(
        lambda: requester_client.post(f"/api/v1/batches/{batch.pk}/tasks", rows, format="json")
    )

    # then the whole upload is refused at row 2, with the invalid rows found until then
    assert seconds < BOUND_SECONDS
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_rows",
        "message": "Row 2 is too costly to check against the project's schemas; nothing was created.",
        "detail": {
            "rows": [
                {"index": 1, "detail": {"row": ["Unknown field(s): color."]}},
                {"index": 2, "detail": {"input": [_too_costly("input_schema")]}},
            ],
            "invalid": 2,
        },
    }
    assert Task.objects.count() == 0
    assert db_snapshot() == before


def test_a_branching_answer_schema_refuses_an_upload_of_gold_answers(requester, requester_client):
    # given
    schema = _branching(20, {"type": "string"})
    batch = BatchFactory(project=ProjectFactory(requester=requester, answer_schema=schema))
    rows = [
        {"input": {"text": "a cat"}, "gold_answer": "cat"},
        {"input": {"text": "a dog"}, "gold_answer": 2},
    ]
    before = db_snapshot()

    # when
    response, seconds = _timed(
        lambda: requester_client.post(f"/api/v1/batches/{batch.pk}/tasks?atomic=true", rows, format="json")
    )

    # then
    assert seconds < BOUND_SECONDS
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_rows",
        "message": "Row 1 is too costly to check against the project's schemas; nothing was created.",
        "detail": {
            "rows": [{"index": 1, "detail": {"gold_answer": [_too_costly("answer_schema")]}}],
            "invalid": 1,
        },
    }
    assert db_snapshot() == before


# --- realistic schemas ---------------------------------------------------------------------------


def _form() -> tuple[dict, dict]:
    """An answer object with 30 properties: enums, patterns, bounded numbers, tag lists."""
    properties: dict = {}
    answer: dict = {}
    for i in range(10):
        properties[f"choice_{i}"] = {"type": "string", "enum": [f"option {k}" for k in range(12)]}
        answer[f"choice_{i}"] = "option 7"
    for i in range(10):
        properties[f"code_{i}"] = {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{4,8}$", "maxLength": 12}
        answer[f"code_{i}"] = "AB-123456"
    for i in range(6):
        properties[f"score_{i}"] = {"type": "integer", "minimum": 1, "maximum": 5}
        answer[f"score_{i}"] = 4
    for i in range(4):
        properties[f"tags_{i}"] = {
            "type": "array",
            "items": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"},
            "maxItems": 20,
            "uniqueItems": True,
        }
        answer[f"tags_{i}"] = [f"tag-{k}" for k in range(10)]
    schema = {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }
    return schema, answer


def test_the_demo_sentiment_schema_checks_answers_as_before(worker_client):
    # given the demo's answer schema
    schema = {"type": "string", "enum": ["positive", "negative", "neutral"]}
    batch = open_batch(project=ProjectFactory(answer_schema=schema), regular=2)
    first, second = _one_lease(worker_client, batch), _one_lease(worker_client, batch)

    # when
    accepted = _submit(worker_client, first.pk, "neutral")
    refused = _submit(worker_client, second.pk, "meh")

    # then
    assert accepted.status_code == 200
    assert refused.status_code == 400
    assert refused.json() == {
        "code": "invalid",
        "message": "The answer does not match the answer schema.",
        "detail": {"answer": ["$: 'meh' is not one of ['positive', 'negative', 'neutral']"]},
    }


def test_a_30_property_answer_schema_checks_answers_as_before(worker_client):
    # given
    schema, answer = _form()
    batch = open_batch(project=ProjectFactory(answer_schema=schema), regular=2)
    first, second = _one_lease(worker_client, batch), _one_lease(worker_client, batch)
    wrong = {**answer, "code_3": "ab-12", "score_5": 9, "tags_0": ["x", "x"]}

    # when
    accepted = _submit(worker_client, first.pk, answer)
    refused = _submit(worker_client, second.pk, wrong)

    # then
    assert accepted.status_code == 200
    assert Assignment.objects.get(pk=first.pk).answer == answer
    assert refused.status_code == 400
    assert refused.json() == {
        "code": "invalid",
        "message": "The answer does not match the answer schema.",
        "detail": {
            "answer": [
                "$.code_3: 'ab-12' does not match '^[A-Z]{2}-[0-9]{4,8}$'",
                "$.score_5: 9 is greater than the maximum of 5",
                "$.tags_0: ['x', 'x'] has non-unique elements",
            ]
        },
    }


def test_unique_items_of_many_objects_is_checked_in_linear_time(worker_client):
    # given: jsonschema compared objects pairwise, 21 s for 3,000 of them
    schema = {"type": "array", "uniqueItems": True}
    batch = open_batch(project=ProjectFactory(answer_schema=schema), regular=2)
    first, second = _one_lease(worker_client, batch), _one_lease(worker_client, batch)
    distinct = [{"a": i, "b": [i, {"c": True}]} for i in range(3000)]

    # when
    response, seconds = _timed(lambda: _submit(worker_client, first.pk, distinct))
    repeated = _submit(worker_client, second.pk, [{"a": 1, "b": 2}, 1, True, {"b": 2, "a": 1.0}])

    # then objects equal in any key order, and 1 == 1.0, are duplicates; 1 and true are not
    assert seconds < BOUND_SECONDS
    assert response.status_code == 200
    assert repeated.status_code == 400
    assert repeated.json()["detail"] == {
        "answer": ["$: [{'a': 1, 'b': 2}, 1, True, {'b': 2, 'a': 1.0}] has non-unique elements"]
    }


def test_a_reference_to_an_anchor_is_looked_up_without_rereading_the_schema(worker_client):
    # given a 50 kB schema whose items refer to an $anchor: each lookup crawled the whole schema
    # again (10 s for 2,000 items)
    schema = {
        "type": "array",
        "items": {"$ref": "#item"},
        "$defs": {
            "item": {"$anchor": "item", "type": "integer"},
            **{f"pad{i}": {"type": "string", "description": "x" * 20} for i in range(1000)},
        },
    }
    batch = open_batch(project=ProjectFactory(answer_schema=schema), regular=1)
    lease = _one_lease(worker_client, batch)

    # when
    response, seconds = _timed(lambda: _submit(worker_client, lease.pk, list(range(2000))))

    # then
    assert seconds < BOUND_SECONDS
    assert response.status_code == 200


# --- the setting ---------------------------------------------------------------------------------


def test_the_budget_setting_is_honoured_on_submit(worker_client, settings):
    # given a budget too small for even the label schema (type + a 3-value enum)
    settings.SCHEMA_EVAL_BUDGET = 3
    batch = open_batch(regular=1)
    lease = _one_lease(worker_client, batch)
    before = db_snapshot()

    # when a valid answer is submitted
    response = _submit(worker_client, lease.pk, "cat")

    # then
    assert response.status_code == 400
    assert response.json() == _answer_too_costly(3)
    assert db_snapshot() == before


def test_the_budget_setting_is_honoured_on_upload(requester, requester_client, settings):
    # given
    settings.SCHEMA_EVAL_BUDGET = 3
    batch = BatchFactory(project=ProjectFactory(requester=requester))
    before = db_snapshot()

    # when
    response = requester_client.post(
        f"/api/v1/batches/{batch.pk}/tasks", [{"input": {"text": "a cat"}}], format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_rows",
        "message": "Row 0 is too costly to check against the project's schemas; nothing was created.",
        "detail": {
            "rows": [{"index": 0, "detail": {"input": [_too_costly("input_schema", 3)]}}],
            "invalid": 1,
        },
    }
    assert db_snapshot() == before


def test_an_upload_may_spend_at_most_the_upload_budget_in_all(requester, requester_client, settings):
    # given a per-row budget every row stays under, and an upload budget only a few rows fit in
    settings.SCHEMA_EVAL_BUDGET = 1_000
    settings.SCHEMA_UPLOAD_BUDGET = 100
    batch = BatchFactory(project=ProjectFactory(requester=requester))
    rows = [{"input": {"text": f"a cat {i}"}} for i in range(200)]
    before = db_snapshot()

    # when the whole upload is checked
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/tasks", rows, format="json")

    # then it stops once the rows together overdraw it, and nothing is created
    assert response.status_code == 400
    assert response.json() == {
        "code": "upload_too_costly",
        "message": "Checking this upload against the project's schemas takes more than 100 steps in all; "
        "nothing was created. Upload fewer rows at a time.",
        "detail": {"limit": 100},
    }
    assert db_snapshot() == before

    # and the same rows within the default upload budget are created
    settings.SCHEMA_UPLOAD_BUDGET = 10_000_000
    created = requester_client.post(f"/api/v1/batches/{batch.pk}/tasks", rows, format="json")
    assert (created.status_code, created.json()["created"]) == (201, 200)
