"""Batch consensus settings: method and dynamic overlap, validated with field errors."""

from __future__ import annotations

import pytest

from marketplace.models import Batch

pytestmark = pytest.mark.django_db


def _create(client, project, **fields):
    return client.post(
        "/api/v1/batches", {"project": project.pk, "name": "B", "price_cents": 5, **fields}, format="json"
    )


def test_create_with_dynamic_overlap(project, requester_client):
    # when
    response = _create(
        requester_client,
        project,
        overlap=3,
        min_overlap=2,
        max_overlap=6,
        target_confidence=0.9,
        aggregation_method="weighted",
    )

    # then
    assert response.status_code == 201
    body = response.json()
    assert {
        k: body[k] for k in ("aggregation_method", "min_overlap", "max_overlap", "target_confidence")
    } == {
        "aggregation_method": "weighted",
        "min_overlap": 2,
        "max_overlap": 6,
        "target_confidence": 0.9,
    }


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"overlap": 3, "max_overlap": 2, "target_confidence": 0.9},
            {"max_overlap": ["Must be at least overlap (3)."]},
        ),
        (
            {"overlap": 3, "min_overlap": 4, "max_overlap": 5, "target_confidence": 0.9},
            {"min_overlap": ["Must be at most overlap (3)."]},
        ),
        ({"overlap": 3, "max_overlap": 5}, {"target_confidence": ["Required with max_overlap."]}),
        (
            {"max_overlap": 101, "target_confidence": 0.9},
            {"max_overlap": ["Ensure this value is less than or equal to 100."]},
        ),
        (
            {"max_overlap": 5, "target_confidence": 0.4},
            {"target_confidence": ["Ensure this value is greater than or equal to 0.5."]},
        ),
        ({"target_confidence": 0.9}, {"target_confidence": ["Only with max_overlap (dynamic overlap)."]}),
        ({"aggregation_method": "median"}, {"aggregation_method": ['"median" is not a valid choice.']}),
    ],
)
def test_invalid_consensus_settings_are_400(project, requester_client, fields, errors):
    # when
    response = _create(requester_client, project, **fields)

    # then
    assert response.status_code == 400
    assert response.json() == {"code": "invalid", "message": "Invalid input.", "detail": errors}
    assert not Batch.objects.exists()


def test_patch_checks_against_the_stored_overlap(batch, requester_client):
    # given a draft at overlap 3
    # when
    response = requester_client.patch(
        f"/api/v1/batches/{batch.pk}", {"max_overlap": 2, "target_confidence": 0.9}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json()["detail"] == {"max_overlap": ["Must be at least overlap (3)."]}
    batch.refresh_from_db()
    assert batch.max_overlap is None
