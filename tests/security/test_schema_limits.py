"""Project schemas are bounded in size and nesting when created or edited (issue 13, part 1)."""

from __future__ import annotations

import json

import pytest

from marketplace.models import Project
from tests.factories import ProjectFactory, db_snapshot

pytestmark = pytest.mark.django_db


def _nested(levels: int) -> dict:
    """A valid schema whose JSON nests ``levels`` objects deep."""
    schema: dict = {"type": "string"}
    for _ in range(levels - 1):
        schema = {"not": schema}
    return schema


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def test_a_schema_over_the_size_limit_is_refused(requester_client):
    # given a schema of 65,537 bytes as compact JSON (the default limit is 64 KiB)
    schema = {"type": "string", "description": ""}
    schema["description"] = "x" * (65_537 - len(json.dumps(schema, separators=(",", ":"))))
    before = db_snapshot()

    # when
    response = requester_client.post(
        "/api/v1/projects", {"name": "Big", "answer_schema": schema}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "The JSON Schema is larger than the limit of 65,536 bytes.",
        "detail": {
            "answer_schema": ["65,537 bytes as compact JSON; the limit is 65,536 (PROJECT_SCHEMA_MAX_BYTES)."]
        },
    }
    assert db_snapshot() == before


def test_a_schema_at_the_size_limit_is_accepted(requester_client):
    schema = {"type": "string", "description": ""}
    schema["description"] = "x" * (65_536 - len(json.dumps(schema, separators=(",", ":"))))

    response = requester_client.post(
        "/api/v1/projects", {"name": "Big", "answer_schema": schema}, format="json"
    )

    assert response.status_code == 201


def test_a_schema_over_the_depth_limit_is_refused(requester_client):
    # given
    schema = _nested(33)
    assert _depth(schema) == 33
    before = db_snapshot()

    # when
    response = requester_client.post(
        "/api/v1/projects", {"name": "Deep", "input_schema": schema}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "The JSON Schema is nested deeper than the limit of 32 levels.",
        "detail": {"input_schema": ["Nested deeper than 32 levels (PROJECT_SCHEMA_MAX_DEPTH)."]},
    }
    assert db_snapshot() == before


def test_a_schema_at_the_depth_limit_is_accepted(requester_client):
    schema = _nested(32)
    assert _depth(schema) == 32

    response = requester_client.post(
        "/api/v1/projects", {"name": "Deep", "input_schema": schema}, format="json"
    )

    assert response.status_code == 201


def test_the_limits_apply_to_edits_too(requester, requester_client, settings):
    # given
    settings.PROJECT_SCHEMA_MAX_BYTES = 100
    project = ProjectFactory(requester=requester)
    before = db_snapshot()

    # when
    response = requester_client.patch(
        f"/api/v1/projects/{project.pk}", {"answer_schema": {"enum": ["x" * 100]}}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "The JSON Schema is larger than the limit of 100 bytes.",
        "detail": {
            "answer_schema": ["113 bytes as compact JSON; the limit is 100 (PROJECT_SCHEMA_MAX_BYTES)."]
        },
    }
    assert db_snapshot() == before
    assert Project.objects.get().answer_schema == project.answer_schema
