"""The sequential test of the gold-accuracy and majority-agreement rules (``RuleTest.SEQUENTIAL``)."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from crowd.enums import AssignmentStatus
from crowd.models import Assignment, QualityRule, Reliability, Restriction
from crowd.quality.rules import RuleSerializer, _agreement_llr, _below_bar, _peer_posterior, rules_evaluate
from crowd.services.claims import assignment_claim
from crowd.services.submissions import assignment_submit
from marketplace.errors import Conflict
from marketplace.models import Task
from tests.consensus.builders import answer_all
from tests.factories import AssignmentFactory, TaskFactory, WorkerFactory, open_batch

SEQUENTIAL = {"test": "sequential", "bad": 0.5, "good": 0.8, "alpha": 0.01}
ACTION = {"scope": "project", "duration_hours": 72, "reject_pending": True}


def _answer(batch, worker, *, task=None, answer="cat", gold_correct=None, at=0):
    """A submitted answer of ``worker``, ``at`` seconds into the batch (order of submission)."""
    task = task or TaskFactory(batch=batch, gold_answer="cat" if gold_correct is not None else None)
    now = timezone.now() - timedelta(hours=1) + timedelta(seconds=at)
    if not task.is_gold:  # the counters the claim and submit keep, which a rejection gives back
        Task.objects.filter(pk=task.pk).update(
            slots_taken=F("slots_taken") + 1, answers_count=F("answers_count") + 1
        )
    return AssignmentFactory(
        task=task,
        worker=worker,
        status=AssignmentStatus.SUBMITTED,
        answer=answer,
        gold_correct=gold_correct,
        claimed_at=now - timedelta(seconds=5),
        submitted_at=now,
    )


def _with_gold_record(batch, correct=20, total=20):
    """A worker who has already answered ``total`` control tasks of the project, ``correct`` right."""
    worker = WorkerFactory()
    Reliability.objects.create(worker=worker, project=batch.project, gold_correct=correct, gold_total=total)
    return worker


def _rule(batch, kind, **params):
    return QualityRule.objects.create(batch=batch, kind=kind, params=params, action=ACTION)


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        (
            {"window": 50, "test": "sequential", "bad": 0.5, "good": 0.8},
            {"alpha": ["Required by this test."]},
        ),
        ({"window": 50, **SEQUENTIAL, "bad": 0.8}, {"bad": ["Must be below good."]}),
        (
            {"window": 50, **SEQUENTIAL, "threshold": 0.5},
            {"threshold": ["Not a parameter of the sequential test."]},
        ),
        (
            {"window": 50, "min_answers": 5, "threshold": 0.5, "alpha": 0.01},
            {"alpha": ["Not a parameter of the mean test."]},
        ),
        ({"window": 50, "threshold": 0.5}, {"min_answers": ["Required by this test."]}),
        (
            {"window": 50, **SEQUENTIAL, "alpha": 0.6},
            {"alpha": ["Ensure this value is less than or equal to 0.5."]},
        ),
        (
            {"window": 50, **SEQUENTIAL, "good": 1.0},
            {"good": ["Ensure this value is less than or equal to 0.99."]},
        ),
        ({"window": 5, **SEQUENTIAL, "min_answers": 6}, {"min_answers": ["Cannot exceed the window."]}),
        ({"window": 50, **SEQUENTIAL, "test": "bayes"}, {"test": ['"bayes" is not a valid choice.']}),
    ],
)
def test_invalid_sequential_params_are_refused(params, errors):
    for kind in ("gold_accuracy", "majority_agreement"):
        serializer = RuleSerializer(data={"kind": kind, "params": params, "action": ACTION})
        assert not serializer.is_valid()
        assert {k: [str(m) for m in v] for k, v in serializer.errors["params"].items()} == errors


@pytest.mark.django_db
def test_sequential_rule_through_the_api_is_stored_with_its_defaults(requester, requester_client):
    # given a requester's batch
    batch = open_batch(project__requester=requester, regular=1)
    rule = {"kind": "majority_agreement", "params": {"window": 200, **SEQUENTIAL}, "action": ACTION}

    # when they add a sequential agreement rule and a mean gold rule
    created = requester_client.post(f"/api/v1/batches/{batch.pk}/rules", rule, format="json")
    mean = requester_client.post(
        f"/api/v1/batches/{batch.pk}/rules",
        {
            "kind": "gold_accuracy",
            "params": {"window": 20, "min_answers": 8, "threshold": 0.5},
            "action": ACTION,
        },
        format="json",
    )

    # then both are stored with the defaults spelled out
    assert created.status_code == 201 and mean.status_code == 201
    body = created.json()
    assert body == {
        "id": body["id"],
        "kind": "majority_agreement",
        "params": {"window": 200, **SEQUENTIAL, "min_answers": 1, "min_votes": 2},
        "action": ACTION,
        "is_active": True,
        "created_at": body["created_at"],
    }
    assert mean.json()["params"] == {"window": 20, "test": "mean", "min_answers": 8, "threshold": 0.5}
    assert list(QualityRule.objects.filter(batch=batch).values_list("params", flat=True)) == [
        body["params"],
        mean.json()["params"],
    ]


@pytest.mark.django_db
def test_invalid_sequential_rule_is_400_and_not_stored(requester, requester_client):
    batch = open_batch(project__requester=requester, regular=1)
    rule = {"kind": "gold_accuracy", "params": {"window": 50, **SEQUENTIAL, "good": 0.4}, "action": ACTION}
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/rules", rule, format="json")
    assert response.status_code == 400
    assert response.json()["detail"]["params"] == {"bad": ["Must be below good."]}
    assert not QualityRule.objects.exists()


# --- the test itself, without a database ---------------------------------------------------------


def test_sequential_boundary_at_alpha_one_percent():
    # log(100) = 4.61; each wrong answer adds log(0.5 / 0.2) = 0.92, each right one log(0.5 / 0.8) = -0.47
    p = {**SEQUENTIAL, "window": 100, "min_answers": 1}
    assert not _below_bar(p, 0, 5)  # 4.58
    assert _below_bar(p, 0, 6)  # 5.50
    assert _below_bar(p, 1, 7)  # 5.03
    assert not _below_bar(p, 3, 8)  # 3.17: 38 % right is not yet enough evidence
    assert not _below_bar({**p, "min_answers": 10}, 0, 9)


def test_a_good_worker_is_rarely_restricted_and_a_random_one_always():
    # given 2,000 workers at the protected accuracy and 2,000 answering at random, 200 answers each,
    # the rule looking after every answer
    p = {**SEQUENTIAL, "alpha": 0.05, "window": 1000, "min_answers": 1}
    rng = random.Random(5)

    def ever_restricted(accuracy: float) -> bool:
        right = 0
        for n in range(1, 201):
            right += rng.random() < accuracy
            if _below_bar(p, right, n):
                return True
        return False

    # then at most alpha of the good ones were ever restricted, and nearly every random one was
    good = sum(ever_restricted(0.8) for _ in range(2000)) / 2000
    spam = sum(ever_restricted(0.5) for _ in range(2000)) / 2000
    assert good <= 0.05
    assert spam >= 0.99


# --- evaluation ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_gold_sequential_waits_for_evidence_then_restricts_and_rejects_pending():
    # given a batch with the sequential gold rule and a worker with 5 wrong control answers
    batch = open_batch()
    rule = _rule(batch, "gold_accuracy", window=100, min_answers=1, **SEQUENTIAL)
    worker = WorkerFactory()
    pending = _answer(batch, worker, at=0)
    for i in range(5):
        _answer(batch, worker, gold_correct=False, answer="dog", at=i + 1)

    # when the rules look: 5 misses are 97 times likelier from a random worker, not yet 100
    assert rules_evaluate(worker_id=worker.pk, batch_id=batch.pk) == []

    # when a sixth miss comes in
    _answer(batch, worker, gold_correct=False, answer="dog", at=6)
    (restriction,) = rules_evaluate(worker_id=worker.pk, batch_id=batch.pk)

    # then one restriction, its reason, and the pending answers rejected
    assert (restriction.rule_id, restriction.scope, restriction.project_id) == (
        rule.pk,
        "project",
        batch.project_id,
    )
    # (no count or percentage of control answers: those would move with the very answer)
    assert restriction.reason == (
        "Your accuracy on this batch's control tasks is at least 100 times likelier "
        "from a worker at 50% than at the required 80%."
    )
    assert set(Assignment.objects.filter(worker=worker).values_list("status", flat=True)) == {"rejected"}
    assert Assignment.objects.get(pk=pending.pk).status == "rejected"
    assert rules_evaluate(worker_id=worker.pk, batch_id=batch.pk) == []
    assert Restriction.objects.count() == 1


@pytest.mark.django_db
def test_gold_sequential_spares_early_misses_the_mean_test_would_punish():
    # given a good worker who missed 4 of their first 8 control answers
    batch = open_batch()
    _rule(batch, "gold_accuracy", window=100, min_answers=1, **SEQUENTIAL)
    worker = WorkerFactory()
    for i in range(8):
        _answer(batch, worker, gold_correct=i % 2 == 0, at=i)

    # when the rules look
    created = rules_evaluate(worker_id=worker.pk, batch_id=batch.pk)

    # then 50 % of 8 is not evidence enough (a mean rule "< 60 % after 8" would restrict)
    assert created == []
    assert not Restriction.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("peer_gold", "needed"),
    [
        # Each other worker's accuracy is estimated from their control answers, centred on the
        # crowd's pooled control accuracy worth 5 answers. 40 of 40: 0.99 (the cap), and each
        # disagreement adds log(0.25 / 0.10) = 0.92
        ((40, 40), 6),
        # 12 of 20 (a crowd at 0.60): 0.60, each disagreement adds 0.51
        ((12, 20), 10),
        # no control answers anywhere: 0.5, their "cat" is a weak hint, each adds 0.30
        (None, 16),
    ],
)
def test_agreement_sequential_weighs_the_others_by_their_gold_record(peer_gold, needed):
    # given tasks each answered "cat" by the same two other workers with this gold record
    batch = open_batch()
    _rule(batch, "majority_agreement", window=200, min_answers=1, min_votes=2, **SEQUENTIAL)
    worker, first, second = WorkerFactory(), WorkerFactory(), WorkerFactory()
    if peer_gold is not None:
        for peer in (first, second):
            Reliability.objects.create(
                worker=peer, project=batch.project, gold_correct=peer_gold[0], gold_total=peer_gold[1]
            )
    tasks = [TaskFactory(batch=batch) for _ in range(needed)]
    for task in tasks:
        _answer(batch, first, task=task, answer="cat")
        _answer(batch, second, task=task, answer="cat")

    # when the worker answers "dog" on all but one of them
    for i, task in enumerate(tasks[:-1]):
        _answer(batch, worker, task=task, answer="dog", at=100 + i)

    # then that is not yet evidence enough
    assert rules_evaluate(worker_id=worker.pk, batch_id=batch.pk) == []

    # when the last one gets a "dog" too
    _answer(batch, worker, task=tasks[-1], answer="dog", at=200)
    (restriction,) = rules_evaluate(worker_id=worker.pk, batch_id=batch.pk)

    # then
    assert restriction.reason == (
        f"Your answers agreed with the majority on 0% of {needed} tasks; weighing the other answers by their "
        "authors' accuracy on control tasks, that is at least 100 times likelier from a worker at 50% than "
        "at the required 80%."
    )
    assert list(Restriction.objects.values_list("worker_id", flat=True)) == [worker.pk]


@pytest.mark.django_db
def test_agreement_sequential_learns_little_from_a_split():
    # given tasks where two equally reliable others split between "cat" and "other"
    batch = open_batch()
    _rule(batch, "majority_agreement", window=200, min_answers=1, min_votes=2, **SEQUENTIAL)
    worker, first, second = WorkerFactory(), WorkerFactory(), WorkerFactory()
    split = [TaskFactory(batch=batch) for _ in range(30)]
    for task in split:
        _answer(batch, first, task=task, answer="cat")
        _answer(batch, second, task=task, answer="other")

    # when the worker sides with "cat" on every one
    for i, task in enumerate(split):
        _answer(batch, worker, task=task, answer="cat", at=100 + i)

    # then siding with one half of a split is no evidence against them
    assert rules_evaluate(worker_id=worker.pk, batch_id=batch.pk) == []


def test_peer_posterior_by_hand():
    # one author at 0.8 over two classes: their answer is the truth with probability 0.8
    assert _peer_posterior("cat", [("cat", 0.8)], 2) == pytest.approx(0.8)
    assert _peer_posterior("dog", [("cat", 0.8)], 2) == pytest.approx(0.2)
    # two equally reliable authors who disagree cancel out
    assert _peer_posterior("cat", [("cat", 0.9), ("dog", 0.9)], 2) == pytest.approx(0.5)
    # three classes: 0.8 * 0.8 for "cat", 0.1 * 0.1 for each of the other two
    assert _peer_posterior("dog", [("cat", 0.8), ("cat", 0.8)], 3) == pytest.approx(0.01 / 0.66)
    # an answer nobody gave takes the weight of an unseen class
    assert _peer_posterior("bird", [("cat", 0.7)], 4) == pytest.approx(0.1)


def test_weighted_agreement_keeps_the_alpha_bound_for_a_good_worker():
    # given 2,000 workers at the protected accuracy and 2,000 answering at random, 200 answers
    # each, every task also answered by two others whose accuracy (0.6 to 0.95) is known, three
    # classes, the rule looking after every answer
    p = {"bad": 1 / 3, "good": 0.8, "alpha": 0.05}
    bar = math.log(1 / p["alpha"])
    rng = random.Random(11)
    classes = ["a", "b", "c"]

    def answer(accuracy: float, truth: str) -> str:
        return truth if rng.random() < accuracy else rng.choice([c for c in classes if c != truth])

    def ever_restricted(accuracy: float) -> bool:
        llr = 0.0
        for _ in range(200):
            truth = rng.choice(classes)
            votes = [(answer(r, truth), r) for r in (rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95))]
            llr += _agreement_llr(p, _peer_posterior(answer(accuracy, truth), votes, 3), 3)
            if llr >= bar:
                return True
        return False

    # then at most alpha of the good ones were ever restricted, and nearly every random one was
    good = sum(ever_restricted(0.8) for _ in range(2000)) / 2000
    spam = sum(ever_restricted(1 / 3) for _ in range(2000)) / 2000
    assert good <= 0.05
    assert spam >= 0.99


@pytest.mark.django_db
def test_agreement_mean_test_still_counts_a_split_as_agreement():
    # given the existing mean test over the same kind of split tasks
    batch = open_batch()
    _rule(batch, "majority_agreement", window=20, min_answers=3, threshold=0.5, min_votes=2)
    worker, first, second = WorkerFactory(), WorkerFactory(), WorkerFactory()
    for i in range(3):
        task = TaskFactory(batch=batch)
        _answer(batch, first, task=task, answer="cat")
        _answer(batch, second, task=task, answer="other")
        _answer(batch, worker, task=task, answer="cat", at=10 + i)

    # when the rules look, then agreeing with one side of a split is agreement
    assert rules_evaluate(worker_id=worker.pk, batch_id=batch.pk) == []


@pytest.mark.django_db
def test_a_worker_who_answers_first_is_judged_when_the_others_answer():
    """At the spammer's own submits nobody else had answered those tasks yet; the agreement rule
    judges them when the tasks get their last answers, without another submit of theirs."""
    # given: a spammer answers every task first, then two careful workers answer the same tasks
    batch = open_batch(regular=10, overlap=3, max_claims_per_request=10)
    _rule(batch, "majority_agreement", window=50, min_votes=2, min_answers=1, **SEQUENTIAL)
    spammer = answer_all(batch, "dog")
    assert not Restriction.objects.filter(worker=spammer).exists()  # nothing to compare with yet

    # when two careful workers with a good gold record in the project answer the same tasks
    careful = [_with_gold_record(batch), _with_gold_record(batch)]
    for worker in careful:
        answer_all(batch, "cat", worker=worker)

    # then: the spammer is restricted by the rule and their answers rejected; the others are not
    (restriction,) = Restriction.objects.filter(worker=spammer)
    assert restriction.rule.kind == "majority_agreement"
    assert set(Assignment.objects.filter(worker=spammer).values_list("status", flat=True)) == {
        AssignmentStatus.REJECTED
    }
    assert not Restriction.objects.filter(worker__in=careful).exists()
    assert set(Task.objects.filter(batch=batch).values_list("answers_count", "slots_taken")) == {(2, 2)}


@pytest.mark.django_db
def test_a_restricted_worker_loses_the_leases_they_still_hold():
    # given: a spammer answers nine tasks first and still holds a lease on the tenth
    batch = open_batch(regular=10, overlap=3, max_claims_per_request=10)
    _rule(batch, "majority_agreement", window=50, min_votes=2, min_answers=1, **SEQUENTIAL)
    spammer = WorkerFactory()
    leases = assignment_claim(worker=spammer, batch=batch, count=10)
    task_of = dict(Assignment.objects.filter(worker=spammer).values_list("id", "task_id"))
    *answered, held = sorted(leases, key=lambda lease: task_of[lease.id])
    for lease in answered:
        assignment_submit(worker=spammer, assignment_id=lease.id, answer="dog")

    # when: two careful workers answer everything and the rule restricts the spammer
    answer_all(batch, "cat", worker=_with_gold_record(batch))
    answer_all(batch, "cat", worker=_with_gold_record(batch))

    # then: the held lease was handed back by the rule, its slot is free, and it cannot be answered
    assert Restriction.objects.filter(worker=spammer).count() == 1
    assert Assignment.objects.get(pk=held.id).status == AssignmentStatus.RELEASED
    assert Task.objects.values_list("slots_taken", "answers_count").get(pk=task_of[held.id]) == (2, 2)
    with pytest.raises(Conflict) as refused:
        assignment_submit(worker=spammer, assignment_id=held.id, answer="dog")
    assert refused.value.code == "assignment_released"
