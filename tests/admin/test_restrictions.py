"""Restrictions in the admin: made by ``restriction_create_by_admin`` (the restrict action on workers
and the add form), lifted by ``restriction_lift``; an existing one is never edited or deleted."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crowd.enums import Actor, RestrictionScope
from crowd.models import Restriction
from crowd.quality.restrictions import restriction_create
from marketplace.selectors import worker_pseudonym
from tests.admin.helpers import act, answered, change_form_data, messages_of
from tests.factories import client_for, open_batch

pytestmark = pytest.mark.django_db

COLUMNS = (
    "worker_id",
    "scope",
    "batch_id",
    "project_id",
    "requester_id",
    "reason",
    "created_by",
    "created_by_user_id",
    "rule_id",
    "lifted_at",
    "lifted_by_id",
)


def _row(restriction: Restriction) -> dict:
    row = {c: getattr(restriction, c) for c in COLUMNS}
    row["duration"] = None if restriction.ends_at is None else restriction.ends_at - restriction.created_at
    return row


def test_the_restrict_action_writes_the_row_the_requesters_api_writes_and_bars_the_worker(
    requester, staff, admin_user
):
    # given a worker who answered for the requester, restricted by them for 24 hours on one batch
    batch, worker, _ = answered(requester)
    api = client_for(requester.user).post(
        "/api/v1/restrictions",
        {
            "worker": worker_pseudonym(requester_id=requester.pk, worker_id=worker.pk),
            "batch": batch.pk,
            "scope": "batch",
            "reason": "Too fast.",
            "hours": 24,
        },
        format="json",
    )
    assert api.status_code == 201
    other = open_batch(regular=1)

    # when an admin restricts them on the whole platform for 24 hours: a page asks for the reason
    page = act(staff, "/admin/crowd/worker/", "restrict", [worker.pk])
    done = act(staff, "/admin/crowd/worker/", "restrict", [worker.pk], reason="Fraud.", hours=24)

    # then the admin's row is the API's, at platform scope and stamped with the admin
    assert page.status_code == 200 and b'name="hours"' in page.content
    assert messages_of(done) == ["Restricted 1 worker(s)."]
    by_requester, by_admin = Restriction.objects.order_by("id")
    common = {"worker_id": worker.pk, "rule_id": None, "lifted_at": None, "lifted_by_id": None}
    assert _row(by_requester) == {
        **common,
        "scope": "batch",
        "batch_id": batch.pk,
        "project_id": None,
        "requester_id": None,
        "reason": "Too fast.",
        "created_by": "requester",
        "created_by_user_id": requester.user_id,
        "duration": timedelta(hours=24),
    }
    assert _row(by_admin) == {
        **common,
        "scope": "platform",
        "batch_id": None,
        "project_id": None,
        "requester_id": None,
        "reason": "Fraud.",
        "created_by": "admin",
        "created_by_user_id": admin_user.pk,
        "duration": timedelta(hours=24),
    }
    # and the worker is barred from other requesters' batches too
    claim = client_for(worker.user).post(f"/api/v1/work/batches/{other.pk}/claim", {}, format="json")
    assert (claim.status_code, claim.json()["code"]) == (403, "worker_restricted")


def test_the_add_form_goes_through_the_service_and_shows_its_refusals(worker, requester, staff, admin_user):
    # given a project of the requester
    project = open_batch(project__requester=requester).project
    url = "/admin/crowd/restriction/add/"
    form = {"worker": worker.pk, "reason": "Spam.", "ends_at_0": "", "ends_at_1": ""}

    # when an admin adds a project restriction naming a requester too, one ending yesterday, then a
    # valid one
    extra = staff.post(url, {**form, "scope": "project", "project": project.pk, "requester": requester.pk})
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d")
    ended = staff.post(
        url, {**form, "scope": "project", "project": project.pk, "ends_at_0": past, "ends_at_1": "10:00"}
    )
    refused_rows = Restriction.objects.count()
    added = staff.post(url, {**form, "scope": "project", "project": project.pk})

    # then the refusals are form errors and write nothing; the valid one is the admin's
    assert extra.status_code == 200 and "Leave empty for a project restriction." in extra.content.decode()
    assert ended.status_code == 200 and "Must be in the future (empty: permanent)." in ended.content.decode()
    assert refused_rows == 0
    assert added.status_code == 302
    restriction = Restriction.objects.get()
    assert _row(restriction) == {
        "worker_id": worker.pk,
        "scope": "project",
        "batch_id": None,
        "project_id": project.pk,
        "requester_id": None,
        "reason": "Spam.",
        "created_by": "admin",
        "created_by_user_id": admin_user.pk,
        "rule_id": None,
        "lifted_at": None,
        "lifted_by_id": None,
        "duration": None,
    }


def test_a_restriction_is_never_edited_or_deleted_by_hand(worker, staff):
    # given an active platform restriction
    restriction = restriction_create(
        worker_id=worker.pk,
        scope=RestrictionScope.PLATFORM,
        batch=open_batch(),
        reason="Fraud.",
        created_by=Actor.ADMIN,
        duration=None,
        now=timezone.now(),
    )
    url = f"/admin/crowd/restriction/{restriction.pk}/change/"
    before = list(Restriction.objects.values())

    # when an admin posts it lifted and shortened, then deletes it
    page = staff.get(url)
    edit = staff.post(url, change_form_data(page, lifted_at_0="2020-01-01", lifted_at_1="10:00", reason="x"))
    delete = staff.post(f"/admin/crowd/restriction/{restriction.pk}/delete/", {"post": "yes"})

    # then both are refused and nothing changed
    assert page.status_code == 200 and 'name="reason"' not in page.content.decode()
    assert (edit.status_code, delete.status_code) == (403, 403)
    assert list(Restriction.objects.values()) == before


def test_lift_goes_through_the_service_and_names_the_ones_no_longer_active(worker, staff, admin_user):
    # given an active restriction and one already lifted
    now = timezone.now()
    active, lifted = (
        restriction_create(
            worker_id=worker.pk,
            scope=RestrictionScope.PLATFORM,
            batch=open_batch(),
            reason=reason,
            created_by=Actor.ADMIN,
            duration=None,
            now=now,
        )
        for reason in ("Fraud.", "Spam.")
    )
    Restriction.objects.filter(pk=lifted.pk).update(lifted_at=now)

    # when an admin lifts both
    response = act(staff, "/admin/crowd/restriction/", "lift", [active.pk, lifted.pk])

    # then the active one is lifted by the admin; the other is named
    assert messages_of(response) == [
        "Lifted 1 restriction(s).",
        f"Not changed: {lifted.pk}: The restriction is no longer active.",
    ]
    active.refresh_from_db()
    assert active.lifted_by_id == admin_user.pk and active.lifted_at is not None
    assert Restriction.objects.get(pk=lifted.pk).lifted_at == now
