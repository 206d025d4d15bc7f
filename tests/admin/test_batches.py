"""Batches, tasks, projects and users in the admin: nothing carrying state or money is edited or
deleted by hand; pause and close are actions calling the lifecycle services."""

from __future__ import annotations

import pytest

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from marketplace.enums import BatchStatus
from marketplace.models import Batch, Task, User
from marketplace.services.batches import batch_close
from tests.admin.helpers import FEE, PRICE, act, answered, change_form_data, events, messages_of
from tests.factories import (
    OPEN_BATCH_CUSHION_CENTS,
    BatchFactory,
    ProjectFactory,
    WorkerFactory,
    client_for,
    db_snapshot,
    open_batch,
)
from tests.payments.factories import balances

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/marketplace/batch/"


def test_a_closed_batch_shows_no_editable_state_or_money_and_cannot_be_deleted(requester, staff):
    # given a closed batch
    batch = open_batch(project__requester=requester, regular=2, price_cents=PRICE, overlap=1)
    batch_close(batch=batch)
    url = f"{CHANGELIST}{batch.pk}/change/"
    before = (db_snapshot(), balances())

    # when an admin opens it, posts it reopened at another price and overlap, then deletes it
    page = staff.get(url)
    edit = staff.post(url, change_form_data(page, status="open", price_cents=1, overlap=9, name="Renamed"))
    delete = staff.post(f"{CHANGELIST}{batch.pk}/delete/", {"post": "yes"})
    bulk = staff.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [batch.pk], "post": "yes"}, follow=True
    )

    # then the page shows the values but no input, no save and no delete; every POST is refused
    html = page.content.decode()
    assert page.status_code == 200
    for field in ("status", "price_cents", "currency", "overlap", "name", "priority", "reserved_cents"):
        assert f'name="{field}"' not in html, field
    assert 'name="_save"' not in html and "deletelink" not in html
    assert "Reserved cents" in html and "Spent cents" in html  # the money shows, read-only
    assert (edit.status_code, delete.status_code) == (403, 403)
    assert messages_of(bulk) == ["No action selected."]  # delete_selected is not offered
    assert (db_snapshot(), balances()) == before
    batch.refresh_from_db()
    assert (batch.status, batch.price_cents, batch.overlap) == (BatchStatus.CLOSED, PRICE, 1)


def test_tasks_and_projects_cannot_be_added_changed_or_deleted_where_they_hold_state(requester, staff):
    # given a published batch's task and project
    batch = open_batch(project__requester=requester, regular=1)
    task = Task.objects.get(batch=batch)
    project = batch.project
    before = db_snapshot()

    # when an admin edits the task's counters, moves the project, and deletes both
    task_page = staff.get(f"/admin/marketplace/task/{task.pk}/change/")
    task_edit = staff.post(
        f"/admin/marketplace/task/{task.pk}/change/",
        change_form_data(task_page, slots_taken=3, status="complete"),
    )
    project_page = staff.get(f"/admin/marketplace/project/{project.pk}/change/")
    task_delete = staff.post(f"/admin/marketplace/task/{task.pk}/delete/", {"post": "yes"})
    project_delete = staff.post(f"/admin/marketplace/project/{project.pk}/delete/", {"post": "yes"})
    add = staff.get("/admin/marketplace/task/add/")

    # then the task is view-only, the project's requester and frozen schemas show no input
    html = project_page.content.decode()
    assert task_page.status_code == 200 and 'name="slots_taken"' not in task_page.content.decode()
    assert (task_edit.status_code, task_delete.status_code, project_delete.status_code) == (403, 403, 403)
    assert add.status_code == 403
    assert 'name="name"' in html and 'name="instructions"' in html
    for field in ("requester", "input_schema", "answer_schema"):
        assert f'name="{field}"' not in html, field
    assert db_snapshot() == before


def test_a_project_edit_goes_through_the_service(requester, staff):
    # given a project whose only batch is a draft
    project = ProjectFactory(requester=requester, name="Birds")
    BatchFactory(project=project, status=BatchStatus.DRAFT)
    url = f"/admin/marketplace/project/{project.pk}/change/"
    page = staff.get(url)

    # when the admin renames it
    response = staff.post(url, change_form_data(page, name="Birds of prey"))

    # then it is saved (the schemas stay editable while every batch is a draft)
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.name, project.requester_id) == ("Birds of prey", requester.pk)
    assert 'name="answer_schema"' in page.content.decode()


def test_pause_then_close_move_the_batch_like_the_api_and_close_returns_the_reserve(requester, staff):
    # given an open batch with one answer paid and one lease still out
    batch = open_batch(project__requester=requester, regular=3, price_cents=PRICE, overlap=1)
    worker = WorkerFactory()
    client = client_for(worker.user)
    leases = client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": 2}, format="json").json()
    answered_id, leased_id = sorted(lease["id"] for lease in leases["assignments"])
    client.post(f"/api/v1/work/assignments/{answered_id}/submit", {"answer": "cat"}, format="json")
    client_for(requester.user).post(
        "/api/v1/assignments/review", {"ids": [answered_id], "verdict": "accept"}, format="json"
    )
    reserve = 3 * (PRICE + FEE)
    paid = {
        "platform:stripe_clearing": -(reserve + OPEN_BATCH_CUSHION_CENTS),
        f"requester:{requester.pk}:available": OPEN_BATCH_CUSHION_CENTS,
        f"requester:{requester.pk}:reserved": reserve - (PRICE + FEE),
        f"worker:{worker.pk}:pending": PRICE,
        "platform:fee_revenue": FEE,
    }
    assert balances() == paid

    # when the admin pauses it, then closes it
    paused = act(staff, CHANGELIST, "pause", [batch.pk])
    status_after_pause = Batch.objects.get(pk=batch.pk).status
    balances_after_pause = balances()
    closed = act(staff, CHANGELIST, "close", [batch.pk])

    # then the pause moved no money; the close released the lease and returned the unspent reserve
    assert messages_of(paused) == ["Paused 1 batch(es)."]
    assert (status_after_pause, balances_after_pause) == (BatchStatus.PAUSED, paid)
    assert messages_of(closed) == ["Closed 1 batch(es)."]
    batch.refresh_from_db()
    assert (batch.status, batch.reserved_cents, batch.spent_cents) == (
        BatchStatus.CLOSED,
        PRICE + FEE,
        PRICE + FEE,
    )
    assert balances() == {
        "platform:stripe_clearing": -(reserve + OPEN_BATCH_CUSHION_CENTS),
        f"requester:{requester.pk}:available": OPEN_BATCH_CUSHION_CENTS + reserve - (PRICE + FEE),
        f"worker:{worker.pk}:pending": PRICE,
        "platform:fee_revenue": FEE,
    }
    assert Assignment.objects.get(pk=leased_id).status == AssignmentStatus.RELEASED
    assert events(leased_id)[-1] == ("active", "released", "system", None, "The batch was closed.")


def test_a_transition_the_service_refuses_is_named_and_changes_nothing(requester, staff):
    # given a closed batch and an open one
    closed = open_batch(project__requester=requester, regular=1)
    batch_close(batch=closed)
    batch, _, _ = answered(requester)
    before = (db_snapshot(), balances())

    # when the admin pauses both
    response = act(staff, CHANGELIST, "pause", [closed.pk, batch.pk])

    # then the open one is paused, the closed one named with the service's reason
    assert messages_of(response) == [
        "Paused 1 batch(es).",
        f"Not changed: {closed.pk}: Cannot move a batch from closed to paused.",
    ]
    assert Batch.objects.get(pk=closed.pk).status == BatchStatus.CLOSED
    assert Batch.objects.get(pk=batch.pk).status == BatchStatus.PAUSED
    assert balances() == before[1]


def test_users_who_own_money_cannot_be_deleted(requester, worker, staff):
    # given a requester, a worker, and a user with neither profile
    bystander = User.objects.create_user("bystander@example.com", "pw-Secret-123")

    # when an admin deletes each, one by one and in bulk
    one_by_one = [
        staff.post(f"/admin/marketplace/user/{user.pk}/delete/", {"post": "yes"}).status_code
        for user in (requester.user, worker.user)
    ]
    bulk = staff.post(
        "/admin/marketplace/user/",
        {"action": "delete_selected", "_selected_action": [requester.user_id, worker.user_id], "post": "yes"},
    )
    profiles = [
        staff.post(f"/admin/{path}/{pk}/delete/", {"post": "yes"}).status_code
        for path, pk in (("marketplace/requester", requester.pk), ("crowd/worker", worker.pk))
    ]
    plain = staff.post(f"/admin/marketplace/user/{bystander.pk}/delete/", {"post": "yes"})

    # then only the user without money goes
    assert one_by_one == [403, 403]
    assert bulk.status_code == 403
    assert profiles == [403, 403]
    assert plain.status_code == 302
    assert set(User.objects.values_list("email", flat=True)) == {
        requester.user.email,
        worker.user.email,
        "admin@example.com",
    }
