"""Leases give their capacity back: expiry (lazy at claim time and swept), batch close, skip, release.

After every step the counters must be exact: a regular task's ``slots_taken`` equals its active +
submitted assignments and ``answers_count`` its submitted ones; a gold task keeps both at zero.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.result import EagerResult
from django.db.models import Count, Q
from django.utils import timezone

from crowd.enums import AssignmentStatus
from crowd.models import Assignment, Worker
from crowd.services.claims import Lease, assignment_claim
from crowd.services.leases import leases_expire_all
from crowd.services.submissions import assignment_release, assignment_skip, assignment_submit
from crowd.tasks import assignment_expire_sweep
from marketplace.enums import BatchStatus, TaskStatus
from marketplace.errors import Conflict
from marketplace.models import Batch, Task
from marketplace.services.batches import batch_close
from tests.factories import BatchFactory, WorkerFactory, make_tasks, publish_funded

pytestmark = pytest.mark.django_db

LIVE = (AssignmentStatus.ACTIVE, AssignmentStatus.SUBMITTED)


def _open(*, tasks: int, gold: int = 0, **fields: object) -> Batch:
    batch = BatchFactory(**fields)
    make_tasks(batch, tasks, gold=gold)
    return publish_funded(batch)


def _counter_mismatches(batch: Batch) -> list[tuple[object, ...]]:
    tasks = Task.objects.filter(batch=batch).annotate(
        live=Count("assignments", filter=Q(assignments__status__in=LIVE)),
        answered=Count("assignments", filter=Q(assignments__status=AssignmentStatus.SUBMITTED)),
    )
    return [
        (t.pk, t.is_gold, t.slots_taken, t.answers_count, t.live, t.answered)
        for t in tasks
        if (t.slots_taken, t.answers_count) != ((0, 0) if t.is_gold else (t.live, t.answered))
    ]


def _make_overdue(leases: list[Lease]) -> None:
    Assignment.objects.filter(pk__in=[lease.id for lease in leases]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def _claim_gold(*, worker: Worker, batch: Batch) -> Lease:
    """One gold lease: a claim at gold rate 1 serves only gold (beside remaining regular work)."""
    Batch.objects.filter(pk=batch.pk).update(gold_rate=1.0)
    batch.refresh_from_db()
    (lease,) = assignment_claim(worker=worker, batch=batch, count=1)
    Batch.objects.filter(pk=batch.pk).update(gold_rate=0.0)
    batch.refresh_from_db()
    assert Assignment.objects.get(pk=lease.id).is_gold
    return lease


def _statuses(leases: list[Lease]) -> set[str]:
    return set(
        Assignment.objects.filter(pk__in=[lease.id for lease in leases]).values_list("status", flat=True)
    )


def _slots(batch: Batch) -> list[tuple[int, int]]:
    return list(Task.objects.filter(batch=batch, is_gold=False).values_list("slots_taken", "answers_count"))


# --- Lazy expiry at claim time ---------------------------------------------------------------------


def test_claim_expires_overdue_leases_first_and_reuses_their_slots():
    # given a batch whose only slots are held by leases that ran out
    batch = _open(tasks=2, overlap=1)
    first, second = WorkerFactory(), WorkerFactory()
    held = assignment_claim(worker=first, batch=batch, count=2)
    assert assignment_claim(worker=second, batch=batch, count=2) == []
    _make_overdue(held)
    before = timezone.now()

    # when another worker claims
    taken = assignment_claim(worker=second, batch=batch, count=2)

    # then the overdue leases expired, and their slots went to the new claim
    assert len(taken) == 2
    rows = Assignment.objects.filter(pk__in=[lease.id for lease in held])
    assert {(a.status, a.ended_at is not None and a.ended_at >= before) for a in rows} == {
        (AssignmentStatus.EXPIRED, True)
    }
    new_tasks = set(Assignment.objects.filter(pk__in=[t.id for t in taken]).values_list("task_id", flat=True))
    assert new_tasks == set(rows.values_list("task_id", flat=True))
    assert _slots(batch) == [(1, 0), (1, 0)]
    assert _counter_mismatches(batch) == []
    # and the first worker never gets those tasks again
    assert assignment_claim(worker=first, batch=batch, count=2) == []


def test_lazy_expiry_leaves_other_batches_and_unexpired_leases_alone():
    # given overdue leases in two batches and an unexpired one
    batch, elsewhere = _open(tasks=2, overlap=2), _open(tasks=1, overlap=1)
    late, punctual, claimer = WorkerFactory(), WorkerFactory(), WorkerFactory()
    overdue_here = assignment_claim(worker=late, batch=batch, count=1)
    valid_here = assignment_claim(worker=punctual, batch=batch, count=1)
    overdue_elsewhere = assignment_claim(worker=late, batch=elsewhere, count=1)
    _make_overdue(overdue_here + overdue_elsewhere)

    # when a claim runs in the first batch
    assignment_claim(worker=claimer, batch=batch, count=1)

    # then only that batch's overdue lease expired
    assert _statuses(overdue_here) == {AssignmentStatus.EXPIRED}
    assert _statuses(valid_here) == {AssignmentStatus.ACTIVE}
    assert _statuses(overdue_elsewhere) == {AssignmentStatus.ACTIVE}
    assert _slots(elsewhere) == [(1, 0)]
    assert _counter_mismatches(batch) == []
    assert _counter_mismatches(elsewhere) == []


# --- The sweep -------------------------------------------------------------------------------------


def test_leases_expire_all_sweeps_every_batch_in_chunks():
    # given six overdue leases (one gold) across two batches, and one that is still valid
    batch, other = _open(tasks=4, overlap=3), _open(tasks=3, gold=1, overlap=1)
    w1, w2, w3 = WorkerFactory(), WorkerFactory(), WorkerFactory()
    w1_leases = assignment_claim(worker=w1, batch=batch, count=2)
    w2_late, w2_valid = assignment_claim(worker=w2, batch=batch, count=2)
    w3_leases = [*assignment_claim(worker=w3, batch=other, count=2), _claim_gold(worker=w3, batch=other)]
    overdue = [*w1_leases, w2_late, *w3_leases]
    _make_overdue(overdue)

    # when the sweep runs in chunks smaller than the work
    expired = leases_expire_all(chunk=4)

    # then every overdue lease expired once and gave its slot back; the valid one is untouched
    assert expired == 6
    assert _statuses(overdue) == {AssignmentStatus.EXPIRED}
    assert _statuses([w2_valid]) == {AssignmentStatus.ACTIVE}
    assert sorted(_slots(batch)) == [(0, 0), (0, 0), (0, 0), (1, 0)]
    assert _slots(other) == [(0, 0), (0, 0), (0, 0)]
    assert _counter_mismatches(batch) == []
    assert _counter_mismatches(other) == []
    # and a second sweep finds nothing left
    assert leases_expire_all(chunk=4) == 0


def test_sweep_uses_the_given_instant():
    # given a lease that is valid now
    batch = _open(tasks=1, overlap=1)
    (lease,) = assignment_claim(worker=WorkerFactory(), batch=batch, count=1)

    # when the sweep runs just before, then at, its expiry instant
    early = leases_expire_all(now=lease.expires_at - timedelta(microseconds=1))
    on_time = leases_expire_all(now=lease.expires_at)

    # then it expires the lease exactly once, at that instant
    assert (early, on_time) == (0, 1)
    row = Assignment.objects.get(pk=lease.id)
    assert (row.status, row.ended_at) == (AssignmentStatus.EXPIRED, lease.expires_at)
    assert _slots(batch) == [(0, 0)]


def test_expire_sweep_task_is_idempotent():
    # given three overdue leases and one valid lease
    batch = _open(tasks=4, overlap=1)
    worker = WorkerFactory()
    leases = assignment_claim(worker=worker, batch=batch, count=4)
    _make_overdue(leases[:3])

    # when the beat task runs (eagerly in tests), then runs again
    first = assignment_expire_sweep.delay()
    after_first = list(Assignment.objects.order_by("id").values_list("id", "status", "ended_at"))
    slots_after_first = _slots(batch)
    second = assignment_expire_sweep.delay()

    # then the first run expired three, the second none, and it changed nothing more
    assert isinstance(first, EagerResult)
    assert (first.get(), second.get()) == (3, 0)
    assert list(Assignment.objects.order_by("id").values_list("id", "status", "ended_at")) == after_first
    assert _slots(batch) == slots_after_first
    assert sorted(_slots(batch)) == [(0, 0), (0, 0), (0, 0), (1, 0)]
    assert _statuses(leases[3:]) == {AssignmentStatus.ACTIVE}
    assert _counter_mismatches(batch) == []


# --- Closing a batch -------------------------------------------------------------------------------


def test_closing_a_batch_releases_active_leases_and_their_slots():
    # given a batch with submitted, active regular and active gold assignments
    batch = _open(tasks=3, gold=1, overlap=2)
    first, second = WorkerFactory(), WorkerFactory()
    answered, open_lease = assignment_claim(worker=first, batch=batch, count=2)
    assignment_submit(worker=first, assignment_id=answered.id, answer="cat")
    active = [open_lease, *assignment_claim(worker=second, batch=batch, count=2)]
    active.append(_claim_gold(worker=first, batch=batch))

    # when the requester closes it
    closed = batch_close(batch=batch)

    # then every active lease is released at closing time and only the answer keeps its slot
    assert closed.status == BatchStatus.CLOSED
    rows = Assignment.objects.filter(pk__in=[lease.id for lease in active])
    assert {(a.status, a.ended_at) for a in rows} == {(AssignmentStatus.RELEASED, closed.closed_at)}
    kept = Assignment.objects.get(pk=answered.id)
    assert (kept.status, kept.answer, kept.ended_at) == (AssignmentStatus.SUBMITTED, "cat", None)
    assert sorted(_slots(batch)) == [(0, 0), (0, 0), (1, 1)]
    assert _counter_mismatches(batch) == []
    # and nobody can claim any more
    with pytest.raises(Conflict) as refused:
        assignment_claim(worker=WorkerFactory(), batch=closed, count=1)
    assert refused.value.code == "batch_not_open"


def test_submit_after_batch_close_is_refused_and_changes_nothing():
    # given a lease released by closing its batch
    batch = _open(tasks=1, overlap=1)
    worker = WorkerFactory()
    (lease,) = assignment_claim(worker=worker, batch=batch, count=1)
    batch_close(batch=batch)
    before = Assignment.objects.filter(pk=lease.id).values().get()

    # when the worker submits
    with pytest.raises(Conflict) as refused:
        assignment_submit(worker=worker, assignment_id=lease.id, answer="dog")

    # then it is refused and nothing changed
    assert (refused.value.code, refused.value.detail) == ("assignment_released", {"status": "released"})
    assert Assignment.objects.filter(pk=lease.id).values().get() == before
    assert _slots(batch) == [(0, 0)]
    assert Task.objects.get(batch=batch).status == TaskStatus.OPEN


def test_active_lease_of_a_closed_batch_cannot_be_submitted_and_expires_later():
    # given a lease that a claim committed just after the batch closed (so close missed it)
    batch = _open(tasks=1, overlap=1)
    worker = WorkerFactory()
    (lease,) = assignment_claim(worker=worker, batch=batch, count=1)
    Batch.objects.filter(pk=batch.pk).update(status=BatchStatus.CLOSED)
    before = Assignment.objects.filter(pk=lease.id).values().get()

    # when the worker submits
    with pytest.raises(Conflict) as refused:
        assignment_submit(worker=worker, assignment_id=lease.id, answer="dog")

    # then it is refused, nothing changed, and the sweep returns the slot once the lease runs out
    assert refused.value.code == "batch_closed"
    assert Assignment.objects.filter(pk=lease.id).values().get() == before
    assert _slots(batch) == [(1, 0)]
    assert leases_expire_all(now=lease.expires_at) == 1
    assert _slots(batch) == [(0, 0)]
    assert _counter_mismatches(batch) == []


# --- Skip, release, and ending an overdue lease ----------------------------------------------------


@pytest.mark.parametrize(
    ("end", "status"),
    [(assignment_skip, AssignmentStatus.SKIPPED), (assignment_release, AssignmentStatus.RELEASED)],
)
def test_skip_and_release_return_the_slot_to_other_workers(end, status):
    # given the only slot of a batch held by one worker
    batch = _open(tasks=1, overlap=1)
    holder, waiting = WorkerFactory(), WorkerFactory()
    (lease,) = assignment_claim(worker=holder, batch=batch, count=1)
    assert assignment_claim(worker=waiting, batch=batch, count=1) == []

    # when the holder skips or releases it
    ended = end(worker=holder, assignment_id=lease.id)

    # then the slot is free for others, never again for the holder
    assert (ended.status, ended.ended_at is not None) == (status, True)
    assert _slots(batch) == [(0, 0)]
    assert assignment_claim(worker=holder, batch=batch, count=1) == []
    assert len(assignment_claim(worker=waiting, batch=batch, count=1)) == 1
    assert _slots(batch) == [(1, 0)]
    assert _counter_mismatches(batch) == []
    # and ending it a second time is refused without touching anything
    before = Assignment.objects.filter(pk=lease.id).values().get()
    with pytest.raises(Conflict) as refused:
        end(worker=holder, assignment_id=lease.id)
    assert refused.value.code == f"assignment_{status}"
    assert Assignment.objects.filter(pk=lease.id).values().get() == before
    assert _slots(batch) == [(1, 0)]


@pytest.mark.parametrize("end", [assignment_skip, assignment_release])
def test_skip_and_release_of_gold_leave_counters_alone(end):
    # given a gold lease beside regular work
    batch = _open(tasks=1, gold=1, overlap=1)
    worker = WorkerFactory()
    lease = _claim_gold(worker=worker, batch=batch)

    # when it is ended
    end(worker=worker, assignment_id=lease.id)

    # then no task counter moved
    assert set(Task.objects.filter(batch=batch).values_list("slots_taken", "answers_count")) == {(0, 0)}
    assert _counter_mismatches(batch) == []


@pytest.mark.parametrize(
    "act",
    [
        lambda worker, lease_id: assignment_submit(worker=worker, assignment_id=lease_id, answer="cat"),
        lambda worker, lease_id: assignment_skip(worker=worker, assignment_id=lease_id),
        lambda worker, lease_id: assignment_release(worker=worker, assignment_id=lease_id),
    ],
    ids=["submit", "skip", "release"],
)
def test_ending_an_overdue_lease_expires_it_once(act):
    # given an overdue lease the sweep has not reached yet
    batch = _open(tasks=1, overlap=1)
    worker = WorkerFactory()
    leases = assignment_claim(worker=worker, batch=batch, count=1)
    _make_overdue(leases)

    # when the worker acts on it
    with pytest.raises(Conflict) as refused:
        act(worker, leases[0].id)

    # then it is refused, but the expiry is kept and the slot came back exactly once
    assert (refused.value.code, refused.value.detail["status"]) == ("assignment_expired", "expired")
    row = Assignment.objects.get(pk=leases[0].id)
    assert (row.status, row.answer, row.submitted_at) == (AssignmentStatus.EXPIRED, None, None)
    assert row.ended_at is not None
    assert _slots(batch) == [(0, 0)]
    assert leases_expire_all() == 0
    with pytest.raises(Conflict) as again:
        act(worker, leases[0].id)
    assert again.value.code == "assignment_expired"
    assert _slots(batch) == [(0, 0)]
    assert _counter_mismatches(batch) == []
