"""Claims, submits and expiry racing real threads on PostgreSQL.

The database is the truth: whatever the interleaving, a regular task never has more than
``overlap`` live assignments, a worker never holds one task twice, every slot is used once the
batch is exhausted, and every task's counters equal what its assignment rows say.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import timedelta
from functools import partial

import pytest
from django.db.models import Count, Max, Q
from django.utils import timezone

from crowd.enums import AssignmentStatus
from crowd.models import Assignment, Worker
from crowd.services.claims import assignment_claim
from crowd.services.leases import leases_expire_all
from crowd.services.submissions import assignment_release, assignment_submit
from marketplace.enums import TaskStatus
from marketplace.errors import Conflict
from marketplace.models import Batch, Task
from tests.factories import WorkerFactory, client_for

from .conftest import (
    LIVE,
    claimable_for,
    counter_mismatches,
    duplicate_pairs,
    open_batch,
    run_threads,
)

ANSWERS = ("cat", "dog", "other")

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _assert_exhausted_exactly(batch: Batch, served: list[tuple[int, int]]) -> None:
    """``served`` lists ``(worker_id, assignment_id)`` for every lease handed out and submitted."""
    rows = {a.pk: a for a in Assignment.objects.filter(batch=batch)}
    served_ids = [assignment_id for _, assignment_id in served]
    # Every lease was handed out once, to its own worker, and no row exists that nobody was given.
    assert len(served_ids) == len(set(served_ids))
    assert sorted(served_ids) == sorted(rows)
    assert [wid for wid, aid in served if rows[aid].worker_id != wid] == []
    assert {a.status for a in rows.values()} == {AssignmentStatus.SUBMITTED}
    assert duplicate_pairs(batch) == []

    regular = Task.objects.filter(batch=batch, is_gold=False).annotate(
        live=Count("assignments", filter=Q(assignments__status__in=LIVE))
    )
    overlap = batch.overlap
    assert regular.aggregate(most=Max("live"))["most"] == overlap
    assert set(regular.values_list("slots_taken", "answers_count", "status")) == {
        (overlap, overlap, TaskStatus.COMPLETE)
    }
    gold = Task.objects.filter(batch=batch, is_gold=True)
    assert set(gold.values_list("slots_taken", "answers_count", "status")) == {(0, 0, TaskStatus.OPEN)}
    assert sum(not a.is_gold for a in rows.values()) == regular.count() * overlap
    assert any(a.is_gold for a in rows.values()), "gold was never mixed in"
    assert counter_mismatches(batch) == []


def test_many_workers_and_sessions_exhaust_a_batch_exactly():
    # given 300 tasks wanted 3 times plus gold, 56 workers and 40 threads: 8 workers are each
    # driven by two threads at once (two sessions), 24 threads each drive two workers in turn
    batch = open_batch(tasks=300, gold=30, overlap=3, gold_rate=0.1, max_claims_per_request=10)
    shared = WorkerFactory.create_batch(8)
    solo = WorkerFactory.create_batch(48)
    sessions: list[list[Worker]] = [[w] for w in shared for _ in range(2)]
    sessions += [solo[i : i + 2] for i in range(0, len(solo), 2)]
    served: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def session(index: int, workers: list[Worker]) -> None:
        rng = random.Random(index)
        mine: list[tuple[int, int, int]] = []
        pending = list(workers)
        while pending:
            for worker in list(pending):
                leases = assignment_claim(worker=worker, batch=batch, count=rng.randint(1, 4))
                if not leases:
                    # Slots only ever fill here (no skip, no expiry), so an empty claim is final
                    # unless a row was merely locked by someone else at that instant.
                    if claimable_for(worker=worker, batch=batch):
                        time.sleep(0.002)
                    else:
                        pending.remove(worker)
                    continue
                for lease in leases:
                    mine.append((index, worker.pk, lease.id))
                    assignment_submit(worker=worker, assignment_id=lease.id, answer=rng.choice(ANSWERS))
        with lock:
            served.extend(mine)

    # when every session claims and submits until nothing is left for any of its workers
    failures = run_threads([partial(session, i, ws) for i, ws in enumerate(sessions)], timeout=50)

    # then no thread failed, and capacity was used exactly, once per slot
    assert failures == []
    assert len(sessions) >= 32 and len(shared) + len(solo) >= 50
    _assert_exhausted_exactly(batch, [(wid, aid) for _, wid, aid in served])
    # both sessions of every shared worker really did work side by side
    sessions_of = {w.pk: {i for i, wid, _ in served if wid == w.pk} for w in shared}
    assert {len(s) for s in sessions_of.values()} == {2}


def test_claim_and_submit_race_through_the_api():
    # given 60 tasks wanted 3 times plus gold; 6 workers each use two API sessions (two tokens)
    batch = open_batch(tasks=60, gold=6, overlap=3, gold_rate=0.1)
    workers = WorkerFactory.create_batch(10)
    sessions = [(w, client_for(w.user)) for w in workers[:6] for _ in range(2)]
    sessions += [(w, client_for(w.user)) for w in workers[6:]]
    served: list[tuple[int, int]] = []
    lock = threading.Lock()

    def session(index: int, worker: Worker, client) -> None:
        rng = random.Random(index)
        mine: list[tuple[int, int]] = []
        while True:
            response = client.post(
                f"/api/v1/work/batches/{batch.pk}/claim", {"count": rng.randint(1, 3)}, format="json"
            )
            assert response.status_code == 200, response.content
            leases = response.json()["assignments"]
            if not leases:
                if not claimable_for(worker=worker, batch=batch):
                    break
                time.sleep(0.002)
                continue
            for lease in leases:
                # nothing in a lease tells a gold task apart
                assert set(lease) == {"id", "batch", "input", "expires_at"}
                mine.append((worker.pk, lease["id"]))
                url = f"/api/v1/work/assignments/{lease['id']}/submit"
                body = {"answer": rng.choice(ANSWERS)}
                key = f"submit-{lease['id']}"
                first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
                assert first.status_code == 200, first.content
                assert first.json()["status"] == AssignmentStatus.SUBMITTED
                if rng.random() < 0.25:
                    # a retried submit with the same key returns the first result
                    retry = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
                    assert (retry.status_code, retry.json()) == (200, first.json())
        with lock:
            served.extend(mine)

    # when
    failures = run_threads([partial(session, i, w, c) for i, (w, c) in enumerate(sessions)], timeout=40)

    # then
    assert failures == []
    _assert_exhausted_exactly(batch, served)


def test_two_sessions_of_one_worker_never_get_the_same_task():
    # given one worker whose two sessions claim at the same instant, round after round
    batch = open_batch(tasks=120, gold=12, overlap=3, gold_rate=0.3, max_claims_per_request=1000)
    worker = WorkerFactory()
    rounds = 80
    together = threading.Barrier(2, timeout=30)
    served: list[list[int]] = [[], []]

    def session(index: int) -> None:
        rng = random.Random(index)
        try:
            for _ in range(rounds):
                together.wait()
                leases = assignment_claim(worker=worker, batch=batch, count=rng.randint(1, 3))
                served[index].extend(lease.id for lease in leases)
        except BaseException:
            together.abort()  # do not leave the other session waiting for a partner that is gone
            raise

    # when
    failures = run_threads([partial(session, 0), partial(session, 1)])

    # then no lease and no task was handed out twice, and every row was handed to a session
    assert failures == []
    assert served[0] and served[1]
    ids = served[0] + served[1]
    assert len(ids) == len(set(ids))
    rows = Assignment.objects.filter(batch=batch, worker=worker)
    assert sorted(rows.values_list("id", flat=True)) == sorted(ids)
    tasks = list(rows.values_list("task_id", flat=True))
    assert len(tasks) == len(set(tasks))
    assert counter_mismatches(batch) == []

    # and nothing was lost: one quiet session picks up whatever the race left, then the worker
    # holds every regular task exactly once
    while assignment_claim(worker=worker, batch=batch, count=50):
        pass
    regular = Task.objects.filter(batch=batch, is_gold=False)
    assert set(regular.values_list("slots_taken", flat=True)) == {1}
    assert rows.filter(is_gold=False).count() == regular.count()
    assert duplicate_pairs(batch) == []
    assert counter_mismatches(batch) == []


def test_submit_racing_the_expiry_sweep_has_exactly_one_outcome():
    # given one lease at a time, raced by its own submit, the beat sweep and another worker's
    # claim (whose lazy expiry also goes for overdue leases); odd rounds start already overdue
    batch = open_batch(tasks=150, overlap=1, gold_rate=0.0)
    worker, other = WorkerFactory(), WorkerFactory()
    outcomes = Counter[tuple[bool, str]]()

    for round_ in range(60):
        (lease,) = assignment_claim(worker=worker, batch=batch, count=1)
        overdue = round_ % 2 == 1
        if overdue:
            Assignment.objects.filter(pk=lease.id).update(expires_at=timezone.now() - timedelta(seconds=1))
        # An unexpired lease is raced by a sweep that sees the very instant it runs out.
        sweep_at = timezone.now() if overdue else lease.expires_at
        seen: dict[str, object] = {}

        def submit(lease_id: int = lease.id, seen: dict[str, object] = seen) -> None:
            try:
                assignment_submit(worker=worker, assignment_id=lease_id, answer="cat")
                seen["submit"] = "submitted"
            except Conflict as exc:
                seen["submit"] = exc.code

        def sweep(at: object = sweep_at, seen: dict[str, object] = seen) -> None:
            seen["swept"] = leases_expire_all(now=at)

        def claim_elsewhere() -> None:
            for other_lease in assignment_claim(worker=other, batch=batch, count=1):
                assignment_release(worker=other, assignment_id=other_lease.id)

        # when
        failures = run_threads([submit, sweep, claim_elsewhere])

        # then exactly one transition happened, and the counters say so
        assert failures == []
        row = Assignment.objects.get(pk=lease.id)
        if seen["submit"] == "submitted":
            assert (overdue, row.status, row.answer, seen["swept"]) == (
                False,
                AssignmentStatus.SUBMITTED,
                "cat",
                0,
            )
        else:
            assert (seen["submit"], row.status, row.answer) == (
                "assignment_expired",
                AssignmentStatus.EXPIRED,
                None,
            )
            assert row.ended_at is not None and row.submitted_at is None
        if not overdue:
            # only the sweep can expire a lease the clock still calls valid
            assert seen["swept"] == int(row.status == AssignmentStatus.EXPIRED)
        assert counter_mismatches(batch) == []
        outcomes[overdue, row.status] += 1

    assert outcomes[True, AssignmentStatus.EXPIRED] == 30
    assert outcomes[False, AssignmentStatus.SUBMITTED] + outcomes[False, AssignmentStatus.EXPIRED] == 30
    assert Assignment.objects.filter(status=AssignmentStatus.ACTIVE).count() == 0


def test_sessions_of_one_worker_claiming_at_once_never_pass_the_lease_cap():
    # given a worker with four API sessions (four tokens) and a batch that lets a worker hold 10
    batch = open_batch(tasks=400, gold=20, overlap=2, gold_rate=0.1, max_claims_per_request=10)
    worker = WorkerFactory()
    clients = [client_for(worker.user) for _ in range(4)]
    together = threading.Barrier(len(clients), timeout=30)
    outcomes: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def session(client) -> None:
        try:
            for _ in range(8):
                together.wait()
                # when all four ask for the whole cap at the same instant
                response = client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": 10}, format="json")
                body = response.json()
                got = len(body["assignments"]) if response.status_code == 200 else 0
                with lock:
                    outcomes.append((response.status_code, got, body.get("code", "")))
                together.wait()
                # then, each round, the leases held are within the cap; release them for the next
                if client is clients[0]:
                    active = Assignment.objects.filter(worker=worker, status=AssignmentStatus.ACTIVE)
                    held = list(active.values_list("id", flat=True))
                    with lock:
                        outcomes.append((0, len(held), "held"))
                    for assignment_id in held:
                        assignment_release(worker=worker, assignment_id=assignment_id)
                together.wait()
        except BaseException:
            together.abort()
            raise

    failures = run_threads([partial(session, c) for c in clients], timeout=60)

    assert failures == []
    held = [n for status, n, code in outcomes if code == "held"]
    claims = [(status, n, code) for status, n, code in outcomes if code != "held"]
    assert held == [10] * 8  # exactly the cap each round: never more, and nobody left it unused
    assert sum(n for _, n, _ in claims) == 80
    # the sessions that came second were told why, not handed an empty list
    assert {(status, code) for status, n, code in claims if n == 0} <= {(409, "too_many_active_leases")}
    assert {status for status, n, _ in claims if n} == {200}
    assert counter_mismatches(batch) == []
