"""Queries per request on the hot paths, pinned so an N+1 or an extra round trip cannot creep in.

The numbers are PostgreSQL's (the claim and submit have hand-written fast paths there). Tests run
inside a transaction, so a service's ``atomic()`` block costs a SAVEPOINT and a RELEASE here that
production (autocommit) does not pay; the comments count the production queries too.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crowd.models import Assignment, Reliability
from crowd.services.claims import assignment_claim
from crowd.services.submissions import assignment_submit
from marketplace import schemas
from marketplace.enums import BatchStatus
from marketplace.models import Task
from tests.factories import AssignmentFactory, BatchFactory, WorkerFactory, client_for, make_tasks, open_batch

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _claim(client, batch, count):
    return client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": count}, format="json")


def _submit(client, assignment_id, **headers):
    return client.post(
        f"/api/v1/work/assignments/{assignment_id}/submit", {"answer": "cat"}, format="json", **headers
    )


# --- claim ----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 5])
def test_claim_costs_three_queries_whatever_the_count(worker_client, django_assert_num_queries, count):
    # given
    batch = open_batch(regular=10)

    # then: token lookup, batch + my active leases + overdue check, the one-statement claim
    with django_assert_num_queries(3):
        response = _claim(worker_client, batch, count)
    assert len(response.json()["assignments"]) == count


@pytest.mark.parametrize("count", [1, 5])
def test_claim_from_an_all_gold_batch_costs_three_queries(worker_client, django_assert_num_queries, count):
    # given gold_rate 1.0: every lease is gold, served beside regular work still open
    batch = open_batch(regular=2, gold=10, gold_rate=1.0)

    # then
    with django_assert_num_queries(3):
        response = _claim(worker_client, batch, count)
    assert len(response.json()["assignments"]) == count
    assert set(Assignment.objects.values_list("is_gold", flat=True)) == {True}


def test_claim_from_an_exhausted_batch_costs_four_queries(worker_client, django_assert_num_queries):
    # given
    batch = open_batch(regular=1, overlap=1)
    _claim(client_for(WorkerFactory().user), batch, 1)

    # then: an empty claim is confirmed by a second statement that waits on locked rows
    with django_assert_num_queries(4):
        response = _claim(worker_client, batch, 5)
    assert response.json() == {"assignments": []}


def test_claim_that_expires_overdue_leases_first_costs_one_more_statement(
    worker_client, django_assert_num_queries
):
    # given another worker's leases ran out
    batch = open_batch(regular=3, overlap=1)
    other = client_for(WorkerFactory().user)
    _claim(other, batch, 3)
    Assignment.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    # then: the expiry statement, in a savepoint inside the test transaction (4 in production)
    with django_assert_num_queries(6):
        response = _claim(worker_client, batch, 3)
    assert len(response.json()["assignments"]) == 3


def test_claim_refused_for_too_many_leases_costs_two_queries(worker_client, django_assert_num_queries):
    # given
    batch = open_batch(regular=5, max_claims_per_request=2)
    _claim(worker_client, batch, 2)

    # then
    with django_assert_num_queries(2):
        response = _claim(worker_client, batch, 1)
    assert response.status_code == 409


def test_claim_from_a_paused_batch_costs_two_queries(worker_client, django_assert_num_queries):
    # given
    batch = open_batch(regular=5, status=BatchStatus.PAUSED)

    # then
    with django_assert_num_queries(2):
        response = _claim(worker_client, batch, 1)
    assert response.status_code == 409


# --- submit ---------------------------------------------------------------------------------


def _leases(client, batch, n):
    return [lease["id"] for lease in _claim(client, batch, n).json()["assignments"]]


def test_submit_costs_three_queries(worker_client, django_assert_num_queries):
    # given the project's answer validator is already compiled (any earlier submit did it)
    batch = open_batch(regular=2)
    first, second = _leases(worker_client, batch, 2)
    _submit(worker_client, first)

    # then: token lookup, read the lease, the conditional write that also bumps the task
    with django_assert_num_queries(3):
        response = _submit(worker_client, second, HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 200


def test_first_submit_of_a_project_also_loads_its_answer_schema(worker_client, django_assert_num_queries):
    # given
    batch = open_batch(regular=1)
    (lease,) = _leases(worker_client, batch, 1)
    schemas._answer_validators.clear()

    # then
    with django_assert_num_queries(4):
        response = _submit(worker_client, lease)
    assert response.status_code == 200


def test_submit_of_a_gold_lease_costs_three_queries(worker_client, django_assert_num_queries):
    # given
    batch = open_batch(regular=1, gold=3, gold_rate=1.0)
    first, second = _leases(worker_client, batch, 2)
    _submit(worker_client, first)

    # then: token, the read (which brings the known answer to score against), and one write that
    # records the answer, its event and both reliability counts
    with django_assert_num_queries(3):
        response = _submit(worker_client, second)
    assert response.status_code == 200
    assert "gold" not in response.content.decode()
    worker_id = Assignment.objects.get(pk=second).worker_id
    rows = Reliability.objects.filter(worker_id=worker_id).order_by("project_id")
    assert [(r.project_id, r.gold_total) for r in rows] == [(batch.project_id, 2), (None, 2)]


def test_gold_answers_of_parallel_first_submits_are_all_counted(transactional_db):
    """Two sessions of one worker submit their first gold answers at once: the upserts of the
    reliability rows meet on the unique indexes, and no count is lost."""
    batch = open_batch(regular=1, gold=8, gold_rate=1.0)
    worker = WorkerFactory()
    leases = [lease.id for lease in assignment_claim(worker=worker, batch=batch, count=8)]
    gold = dict(Task.objects.filter(batch=batch, is_gold=True).values_list("id", "gold_answer"))
    task_of = dict(Assignment.objects.filter(pk__in=leases).values_list("id", "task_id"))
    barrier = threading.Barrier(len(leases))

    def submit(lease: int) -> None:
        try:
            barrier.wait()
            answer = gold[task_of[lease]] if lease % 2 else "dog"
            assignment_submit(worker=worker, assignment_id=lease, answer=answer)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    correct = sum(1 for lease in leases if lease % 2)
    rows = {r.project_id: (r.gold_correct, r.gold_total) for r in Reliability.objects.filter(worker=worker)}
    assert rows == {batch.project_id: (correct, len(leases)), None: (correct, len(leases))}
    assert Assignment.objects.filter(pk__in=leases, status="submitted").count() == len(leases)
    assert Assignment.objects.filter(pk__in=leases, gold_correct=True).count() == correct


def test_idempotent_submit_replay_costs_five_queries(worker_client, django_assert_num_queries):
    # given
    batch = open_batch(regular=1)
    (lease,) = _leases(worker_client, batch, 1)
    _submit(worker_client, lease, HTTP_IDEMPOTENCY_KEY="k-1")

    # then: the fast read, then the locked read that finds the same key (3 in production)
    with django_assert_num_queries(5):
        response = _submit(worker_client, lease, HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 200


@pytest.mark.parametrize("action", ["skip", "release"])
def test_skip_and_release_cost_eight_queries(worker_client, django_assert_num_queries, action):
    # given
    batch = open_batch(regular=1)
    (lease,) = _leases(worker_client, batch, 1)

    # then: token, lock the lease, end it, its event (added by issue 3: every transition is
    # logged), lock and bump the task (6 in production)
    with django_assert_num_queries(8):
        response = worker_client.post(f"/api/v1/work/assignments/{lease}/{action}")
    assert response.status_code == 200


# --- lists do not grow with their rows ------------------------------------------------------


def _worker_with_assignments(n: int):
    worker = WorkerFactory()
    for _ in range(n):
        batch = open_batch(regular=1)  # one batch each: every row has its own task and batch
        AssignmentFactory(task=batch.tasks.get(), worker=worker, status="submitted", answer="cat")
    return worker


@pytest.mark.parametrize("rows", [1, 25])
def test_my_assignments_cost_two_queries_however_many_rows(django_assert_num_queries, rows):
    # given
    client = client_for(_worker_with_assignments(rows).user)

    # then: token lookup, one page of assignments joined to their tasks
    with django_assert_num_queries(2):
        response = client.get("/api/v1/work/assignments?status=submitted")
    assert len(response.json()["results"]) == rows


@pytest.mark.parametrize("rows", [1, 25])
def test_batch_answers_cost_three_queries_however_many_rows(django_assert_num_queries, rows):
    # given answers of as many different workers
    batch = open_batch(regular=rows)
    for task in batch.tasks.all():
        AssignmentFactory(task=task, status="submitted", answer="cat")
    client = client_for(batch.project.requester.user)

    # then: token lookup, the batch, one page of answers joined to their tasks
    with django_assert_num_queries(3):
        response = client.get(f"/api/v1/batches/{batch.pk}/assignments?status=submitted")
    assert len(response.json()["results"]) == rows


@pytest.mark.parametrize("rows", [1, 25])
def test_work_batches_cost_three_queries_however_many_rows(worker_client, django_assert_num_queries, rows):
    # given
    for _ in range(rows):
        open_batch(regular=1)

    # then: token lookup, the count, one page of batches joined to their projects
    with django_assert_num_queries(3):
        response = worker_client.get("/api/v1/work/batches")
    assert response.json()["count"] == rows


@pytest.mark.parametrize("rows", [1, 25])
def test_batch_tasks_cost_three_queries_however_many_rows(django_assert_num_queries, rows):
    # given
    batch = BatchFactory()
    make_tasks(batch, rows, gold=1)
    client = client_for(batch.project.requester.user)

    # then: token lookup, the batch, one page of tasks
    with django_assert_num_queries(3):
        response = client.get(f"/api/v1/batches/{batch.pk}/tasks")
    assert len(response.json()["results"]) == rows + 1
