"""The Django admin for quality control, and the worker's batch detail honouring eligibility."""

from __future__ import annotations

import pytest

from crowd.enums import Actor, RestrictionScope
from crowd.models import Restriction
from marketplace.models import BatchSkillFilter, Skill, User
from tests.factories import WorkerFactory, client_for, open_batch

pytestmark = pytest.mark.django_db

BATCH_NOT_FOUND = {"code": "not_found", "message": "Batch not found.", "detail": {}}


@pytest.fixture
def admin_client(client):
    admin = User.objects.create_superuser(email="admin@example.com", password="pw-Secret-123")
    client.force_login(admin)
    client.admin = admin
    return client


def test_admin_adds_a_restriction_without_typing_when_or_who(admin_client, worker):
    # when an admin adds a platform restriction with only worker, scope, reason and end time
    response = admin_client.post(
        "/admin/crowd/restriction/add/",
        {
            "worker": worker.pk,
            "scope": RestrictionScope.PLATFORM,
            "reason": "Fraud.",
            "ends_at_0": "",
            "ends_at_1": "",
        },
    )

    # then it is saved, stamped with now and the admin
    assert response.status_code == 302, response.content.decode()[:2000]
    restriction = Restriction.objects.get()
    assert (restriction.worker_id, restriction.scope, restriction.reason) == (worker.pk, "platform", "Fraud.")
    assert (restriction.created_by, restriction.created_by_user) == (Actor.ADMIN, admin_client.admin)
    assert restriction.created_at is not None and restriction.ends_at is None


def test_admin_lists_and_adds_skills(admin_client, requester):
    assert admin_client.get("/admin/marketplace/skill/").status_code == 200
    response = admin_client.post(
        "/admin/marketplace/skill/add/", {"requester": requester.pk, "name": "Birds", "description": ""}
    )
    assert response.status_code == 302
    assert list(Skill.objects.values_list("requester_id", "name")) == [(requester.pk, "Birds")]


def test_batch_detail_is_404_for_a_restricted_worker_or_unmet_filter(requester):
    # given an open batch, a worker restricted from its project, and a batch needing a skill
    batch = open_batch(project__requester=requester, regular=1)
    skilled = open_batch(project__requester=requester, regular=1)
    BatchSkillFilter.objects.create(
        batch=skilled, skill=Skill.objects.create(requester=requester, name="Birds"), op="exists"
    )
    restricted, other = WorkerFactory(), WorkerFactory()
    Restriction.objects.create(
        worker=restricted,
        scope=RestrictionScope.PROJECT,
        project=batch.project,
        reason="Spam.",
        created_by=Actor.REQUESTER,
        created_at=batch.created_at,
    )

    # when each asks for the batches
    denied = client_for(restricted.user).get(f"/api/v1/work/batches/{batch.pk}")
    unskilled = client_for(other.user).get(f"/api/v1/work/batches/{skilled.pk}")
    allowed = client_for(other.user).get(f"/api/v1/work/batches/{batch.pk}")

    # then the ineligible ones are 404, exactly like another tenant's object; the list agrees
    assert (denied.status_code, denied.json()) == (404, BATCH_NOT_FOUND)
    assert (unskilled.status_code, unskilled.json()) == (404, BATCH_NOT_FOUND)
    assert allowed.status_code == 200 and allowed.json()["id"] == batch.pk
    assert client_for(restricted.user).get("/api/v1/work/batches").json()["count"] == 0
    assert [b["id"] for b in client_for(other.user).get("/api/v1/work/batches").json()["results"]] == [
        batch.pk
    ]
