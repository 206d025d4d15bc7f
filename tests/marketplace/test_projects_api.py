"""Projects API: create, list, read, edit; schemas must be JSON Schema and freeze once published."""

from __future__ import annotations

import pytest

from marketplace.enums import BatchStatus
from marketplace.models import Project
from tests.factories import (
    LABEL_ANSWER_SCHEMA,
    TEXT_INPUT_SCHEMA,
    BatchFactory,
    ProjectFactory,
    db_snapshot,
    iso,
)

pytestmark = pytest.mark.django_db

PROJECT_NOT_FOUND = {"code": "not_found", "message": "Project not found.", "detail": {}}


def _body(project: Project) -> dict:
    project.refresh_from_db()
    return {
        "id": project.pk,
        "name": project.name,
        "instructions": project.instructions,
        "input_schema": project.input_schema,
        "answer_schema": project.answer_schema,
        "answer_comparison": project.answer_comparison,  # issue 3: gold scoring
        "created_at": iso(project.created_at),
        "updated_at": iso(project.updated_at),
    }


# --- create ---------------------------------------------------------------------------------


def test_create_project(requester, requester_client):
    # given
    payload = {
        "name": "Animals",
        "instructions": "Which animal is it?",
        "input_schema": TEXT_INPUT_SCHEMA,
        "answer_schema": LABEL_ANSWER_SCHEMA,
    }

    # when
    response = requester_client.post("/api/v1/projects", payload, format="json")

    # then
    assert response.status_code == 201
    project = Project.objects.get()
    assert project.requester_id == requester.pk
    assert response.json() == {
        "id": project.pk,
        **payload,
        "answer_comparison": {},  # issue 3: exact comparison by default
        "created_at": iso(project.created_at),
        "updated_at": iso(project.updated_at),
    }


def test_create_project_defaults_to_empty_schemas(requester_client):
    # when
    response = requester_client.post("/api/v1/projects", {"name": "Free text"}, format="json")

    # then
    assert response.status_code == 201
    project = Project.objects.get()
    assert (project.instructions, project.input_schema, project.answer_schema) == ("", {}, {})
    assert response.json() == _body(project)


@pytest.mark.parametrize(
    ("field", "schema", "reason"),
    [
        (
            "input_schema",
            {"type": "nope"},
            "Not a valid JSON Schema: 'nope' is not valid under any of the given schemas",
        ),
        (
            "answer_schema",
            {"type": "object", "required": "text"},
            "Not a valid JSON Schema: 'text' is not of type 'array'",
        ),
        ("answer_schema", {"minLength": -1}, "Not a valid JSON Schema: -1 is less than the minimum of 0"),
        ("input_schema", ["not", "an", "object"], "Must be a JSON object."),
        ("answer_schema", "string", "Must be a JSON object."),
        (
            "input_schema",
            {"description": "NUL \x00 from a PDF"},
            "Must not contain the NUL character (\\u0000) or an unpaired surrogate.",
        ),
    ],
)
def test_create_project_with_an_invalid_schema_is_400(requester_client, field, schema, reason):
    # given
    before = db_snapshot()

    # when
    response = requester_client.post("/api/v1/projects", {"name": "Bad", field: schema}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid JSON Schema.",
        "detail": {field: [reason]},
    }
    assert db_snapshot() == before


def test_create_project_without_a_name_is_400(requester_client):
    # given
    before = db_snapshot()

    # when
    response = requester_client.post("/api/v1/projects", {"instructions": "x"}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid input.",
        "detail": {"name": ["This field is required."]},
    }
    assert db_snapshot() == before


def test_create_project_with_a_malformed_body_is_400(requester_client):
    # given
    before = db_snapshot()

    # when
    response = requester_client.post("/api/v1/projects", '{"name": ', content_type="application/json")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "malformed_request",
        "message": "JSON parse error - Expecting value: line 1 column 10 (char 9)",
        "detail": {},
    }
    assert db_snapshot() == before


# --- list and read --------------------------------------------------------------------------


def test_list_projects_shows_only_mine_newest_first(requester, requester_client):
    # given
    older = ProjectFactory(requester=requester, name="older")
    newer = ProjectFactory(requester=requester, name="newer")
    ProjectFactory(name="someone else's")

    # when
    response = requester_client.get("/api/v1/projects")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [_body(newer), _body(older)],
    }


def test_get_project(project, requester_client):
    # when
    response = requester_client.get(f"/api/v1/projects/{project.pk}")

    # then
    assert response.status_code == 200
    assert response.json() == _body(project)


def test_get_unknown_project_is_404(requester_client):
    # when
    response = requester_client.get("/api/v1/projects/999999999")

    # then
    assert response.status_code == 404
    assert response.json() == PROJECT_NOT_FOUND


def test_get_another_requesters_project_is_404(requester_client):
    # given
    theirs = ProjectFactory()

    # when
    response = requester_client.get(f"/api/v1/projects/{theirs.pk}")

    # then
    assert response.status_code == 404
    assert response.json() == PROJECT_NOT_FOUND


# --- edit -----------------------------------------------------------------------------------


def test_patch_project_fields(project, requester_client):
    # given
    new_schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}

    # when
    response = requester_client.patch(
        f"/api/v1/projects/{project.pk}",
        {"name": "Renamed", "instructions": "New words", "answer_schema": new_schema},
        format="json",
    )

    # then
    assert response.status_code == 200
    project.refresh_from_db()
    assert (project.name, project.instructions, project.answer_schema) == ("Renamed", "New words", new_schema)
    assert project.input_schema == TEXT_INPUT_SCHEMA
    assert response.json() == _body(project)


def test_patch_schema_while_every_batch_is_a_draft_is_allowed(project, requester_client):
    # given
    BatchFactory(project=project, status=BatchStatus.DRAFT)

    # when
    response = requester_client.patch(
        f"/api/v1/projects/{project.pk}", {"input_schema": {"type": "object"}}, format="json"
    )

    # then
    assert response.status_code == 200
    project.refresh_from_db()
    assert project.input_schema == {"type": "object"}


def test_patch_with_an_invalid_schema_is_400_and_changes_nothing(project, requester_client):
    # given
    before = db_snapshot()

    # when
    response = requester_client.patch(
        f"/api/v1/projects/{project.pk}",
        {"name": "Renamed", "answer_schema": {"type": "nope"}},
        format="json",
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid JSON Schema.",
        "detail": {
            "answer_schema": ["Not a valid JSON Schema: 'nope' is not valid under any of the given schemas"]
        },
    }
    assert db_snapshot() == before


@pytest.mark.parametrize("published_status", [BatchStatus.OPEN, BatchStatus.PAUSED, BatchStatus.CLOSED])
@pytest.mark.parametrize("field", ["input_schema", "answer_schema"])
def test_patch_schema_after_a_batch_was_published_is_409(project, requester_client, published_status, field):
    # given
    BatchFactory(project=project, status=BatchStatus.DRAFT)
    BatchFactory(project=project, status=published_status)
    before = db_snapshot()

    # when
    response = requester_client.patch(
        f"/api/v1/projects/{project.pk}", {"name": "Renamed", field: {"type": "object"}}, format="json"
    )

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "schema_frozen",
        "message": "Schemas cannot change once a batch of the project has been published.",
        "detail": {field: ["Frozen: a batch of this project has been published."]},
    }
    assert db_snapshot() == before


def test_patch_after_publishing_may_change_instructions_and_resend_the_same_schema(project, requester_client):
    # given
    BatchFactory(project=project, status=BatchStatus.OPEN)

    # when
    response = requester_client.patch(
        f"/api/v1/projects/{project.pk}",
        {"instructions": "Clearer words", "answer_schema": LABEL_ANSWER_SCHEMA},
        format="json",
    )

    # then
    assert response.status_code == 200
    project.refresh_from_db()
    assert project.instructions == "Clearer words"
    assert project.answer_schema == LABEL_ANSWER_SCHEMA
    assert response.json() == _body(project)


def test_patch_another_requesters_project_is_404_and_changes_nothing(requester_client):
    # given
    theirs = ProjectFactory()
    before = db_snapshot()

    # when
    response = requester_client.patch(f"/api/v1/projects/{theirs.pk}", {"name": "Mine now"}, format="json")

    # then
    assert response.status_code == 404
    assert response.json() == PROJECT_NOT_FOUND
    assert db_snapshot() == before
