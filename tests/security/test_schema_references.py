"""A project's JSON Schemas never make the server fetch a URL or read a file (issue 13, part 1).

Remote and ``file://`` references are refused when a project is created or edited; a schema stored
before that check is refused when it would be used, and nothing is ever retrieved: the listener
counts zero connections and the file's content appears in no response.
"""

from __future__ import annotations

import json
import time

import pytest

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from marketplace.models import Project, Task
from tests.crowd.work_api import _one_lease, _submit
from tests.factories import BatchFactory, ProjectFactory, WorkerFactory, client_for, db_snapshot, open_batch

from .conftest import FILE_SECRET, REMOTE_SECRET

pytestmark = pytest.mark.django_db


def _outside(keyword: str, reference: str, where: str = "$") -> str:
    return (
        f"{where}.{keyword}: only references within the schema (starting with #) are allowed, "
        f"not {reference!r}"
    )


def _references(listener, closed_port, secret_file) -> dict[str, str]:
    return {
        "listener": listener.url,
        "closed port": f"http://127.0.0.1:{closed_port}/x.json",
        "file": secret_file.as_uri(),
        "relative": "other.json",
    }


def _create(client, **schemas):
    return client.post("/api/v1/projects", {"name": "Refs", **schemas}, format="json")


@pytest.mark.parametrize("field", ["input_schema", "answer_schema"])
@pytest.mark.parametrize("target", ["listener", "closed port", "file", "relative"])
def test_a_reference_outside_the_schema_is_refused_at_creation(
    field, target, requester_client, listener, closed_port, secret_file
):
    # given a schema whose $ref leaves the document
    reference = _references(listener, closed_port, secret_file)[target]
    before = db_snapshot()

    # when a project is created with it
    response = _create(requester_client, **{field: {"type": "object", "$ref": reference}})

    # then a 400 naming the reference; nothing fetched, read or stored
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid JSON Schema.",
        "detail": {field: [_outside("$ref", reference)]},
    }
    assert listener.hits == 0
    assert db_snapshot() == before


def test_dynamic_and_nested_references_outside_the_schema_are_refused(requester_client, listener):
    # given references to the listener in every place a schema can hold one
    schema = {
        "$id": f"http://127.0.0.1:{listener.port}/root.json",
        "properties": {"a": {"$dynamicRef": listener.url}, "b": {"items": {"$ref": "b.json"}}},
        "$defs": {"c": {"anyOf": [{"$ref": listener.url}]}},
    }

    # when
    response = _create(requester_client, answer_schema=schema)

    # then each is named by its path; nothing was fetched
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid JSON Schema.",
        "detail": {
            "answer_schema": sorted(
                [
                    _outside("$dynamicRef", listener.url, "$.properties.a"),
                    _outside("$ref", "b.json", "$.properties.b.items"),
                    _outside("$ref", listener.url, "$.$defs.c.anyOf[0]"),
                ]
            )
        },
    }
    assert listener.hits == 0
    assert Project.objects.count() == 0


def test_a_remote_dialect_is_refused_and_not_fetched(requester_client, listener):
    # when
    response = _create(requester_client, input_schema={"$schema": listener.url, "type": "object"})

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid JSON Schema.",
        "detail": {
            "input_schema": [
                f"$.$schema: unsupported dialect {listener.url!r}; use draft 2020-12 (the default: omit "
                "$schema), draft-07, draft-06 or draft-04"
            ]
        },
    }
    assert listener.hits == 0


def test_editing_a_schema_to_a_remote_reference_is_refused(requester, requester_client, listener):
    # given
    project = ProjectFactory(requester=requester)
    before = db_snapshot()

    # when
    response = requester_client.patch(
        f"/api/v1/projects/{project.pk}", {"answer_schema": {"$ref": listener.url}}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json()["detail"] == {"answer_schema": [_outside("$ref", listener.url)]}
    assert listener.hits == 0
    assert db_snapshot() == before


def test_same_document_references_work(requester_client):
    # given a schema built from $defs, an anchor and a recursive reference
    schema = {
        "$defs": {
            "label": {"$anchor": "label", "type": "string", "enum": ["cat", "dog"]},
            "tree": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}},
            },
        },
        "type": "object",
        "properties": {"label": {"$ref": "#label"}, "tree": {"$ref": "#/$defs/tree"}},
        "required": ["label"],
    }
    project = Project.objects.get(pk=_create(requester_client, input_schema=schema).json()["id"])
    batch = BatchFactory(project=project)
    rows = [
        {"input": {"label": "cat", "tree": {"kids": [{"kids": []}]}}},
        {"input": {"label": "cow"}},
        {"input": {"label": "dog", "tree": {"kids": [{"kids": 1}]}}},
    ]

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/tasks", rows, format="json")

    # then
    assert response.status_code == 201
    assert response.json()["errors"] == [
        {"index": 1, "detail": {"input": ["$.label: 'cow' is not one of ['cat', 'dog']"]}},
        {"index": 2, "detail": {"input": ["$.tree.kids[0].kids: 1 is not of type 'array'"]}},
    ]
    assert Task.objects.filter(batch=batch).count() == 1


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"$ref": "#/$defs/missing"}, "$.$ref: '#/$defs/missing' does not resolve within the schema"),
        ({"$ref": "#nowhere"}, "$.$ref: '#nowhere' does not resolve within the schema"),
        (
            {"$ref": "#/const", "const": {"$ref": "http://x/"}},
            "$.$ref: '#/const' does not point at a subschema",
        ),
        ({"$ref": "#"}, "$: its references loop back to it without reading the value"),
        (
            {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"not": {"$ref": "#/$defs/a"}}}},
            "$.$defs.b: its references loop back to it without reading the value",
        ),
    ],
)
def test_same_document_references_that_cannot_work_are_refused(schema, problem, requester_client):
    # when
    response = _create(requester_client, answer_schema=schema)

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid JSON Schema.",
        "detail": {"answer_schema": [problem]},
    }
    assert Project.objects.count() == 0


# --- schemas stored before the check --------------------------------------------------------


def _unusable(field: str, problem: str) -> dict:
    return {
        "code": "schema_unusable",
        "message": f"The project's {field} cannot be used: {problem}. Fix it, or create a new project.",
        "detail": {field: [problem]},
    }


@pytest.mark.parametrize("target", ["listener", "closed port", "file"])
def test_a_stored_remote_input_schema_is_never_fetched_on_upload(
    target, requester, requester_client, listener, closed_port, secret_file
):
    # given a project saved with a remote reference before references were checked
    reference = _references(listener, closed_port, secret_file)[target]
    project = ProjectFactory(requester=requester, input_schema={"$ref": reference})
    batch = BatchFactory(project=project)
    before = db_snapshot()

    # when tasks are uploaded
    response = requester_client.post(
        f"/api/v1/batches/{batch.pk}/tasks", [{"input": {"x": 1}}], format="json"
    )

    # then a 400 instead of a fetch: no connection, no content, nothing stored
    assert response.status_code == 400
    assert response.json() == _unusable("input_schema", _outside("$ref", reference))
    assert listener.hits == 0
    assert REMOTE_SECRET not in response.content.decode() and FILE_SECRET not in response.content.decode()
    assert db_snapshot() == before


def test_a_stored_remote_answer_schema_refuses_gold_answers_without_fetching(
    requester, requester_client, listener
):
    # given
    project = ProjectFactory(requester=requester, answer_schema={"$ref": listener.url})
    batch = BatchFactory(project=project)
    before = db_snapshot()

    # when a gold row is uploaded
    rows = [{"input": {"text": "a cat"}, "gold_answer": "cat"}]
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/tasks", rows, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == _unusable("answer_schema", _outside("$ref", listener.url))
    assert listener.hits == 0
    assert db_snapshot() == before


@pytest.mark.parametrize("target", ["listener", "closed port", "file"])
@pytest.mark.parametrize("lean", [True, False], ids=["token", "session"])
def test_a_stored_remote_answer_schema_is_never_fetched_on_submit(
    target, lean, listener, closed_port, secret_file
):
    # given an open batch whose answer schema was stored with a remote reference
    reference = _references(listener, closed_port, secret_file)[target]
    batch = open_batch(project=ProjectFactory(answer_schema={"$ref": reference}), regular=1)
    worker = WorkerFactory()
    client = client_for(worker.user)
    lease = _one_lease(client, batch)
    if not lean:  # the DRF view, not the lean token path in front of it
        client.credentials()
        client.force_authenticate(worker.user)
    before = db_snapshot()

    # when the worker submits
    response = _submit(client, lease.pk, 1)

    # then
    assert response.status_code == 400
    assert response.json() == _unusable("answer_schema", _outside("$ref", reference))
    assert listener.hits == 0
    assert REMOTE_SECRET not in response.content.decode() and FILE_SECRET not in response.content.decode()
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.ACTIVE
    assert db_snapshot() == before


def test_a_stored_schema_with_a_remote_reference_deep_inside_is_refused(
    requester, requester_client, listener
):
    # given a remote reference reached only through a same-document one
    schema = {"$ref": "#/$defs/a", "$defs": {"a": {"properties": {"x": {"$ref": listener.url}}}}}
    batch = BatchFactory(project=ProjectFactory(requester=requester, input_schema=schema))

    # when
    response = requester_client.post(
        f"/api/v1/batches/{batch.pk}/tasks", [{"input": {"x": 1}}], format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == _unusable(
        "input_schema", _outside("$ref", listener.url, "$.$defs.a.properties.x")
    )
    assert listener.hits == 0
    assert json.dumps(schema) == json.dumps(Project.objects.get().input_schema)


def test_creating_a_project_never_runs_its_schema(requester_client):
    # given references that fan out 2**20 ways: validating a value would take minutes
    defs = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]} for i in range(20)
    }
    schema = {"$defs": {**defs, "d20": {"type": "string"}}, "$ref": "#/$defs/d0"}

    # when
    started = time.perf_counter()
    response = _create(requester_client, answer_schema=schema)

    # then the checks are static: the request is quick whatever the schema would cost to run
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 201
