"""Training retries: never the same batch again, a fresh batch for the skill after the delay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crowd.models import TrainingResult, WorkerSkill
from crowd.quality.training import training_retry_check
from marketplace.errors import Conflict
from marketplace.models import Batch, Skill, Task
from tests.factories import WorkerFactory, client_for, open_batch

pytestmark = pytest.mark.django_db


def _training_batch(requester, skill, answers=("cat", "dog"), **fields) -> Batch:
    batch = open_batch(project__requester=requester, is_training=True, training_skill=skill, **fields)
    Task.objects.bulk_create(
        Task(batch=batch, input={"text": f"t{i}"}, gold_answer=a, overlap=batch.overlap)
        for i, a in enumerate(answers)
    )
    return batch


def _run(client, batch, answer):
    claimed = client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": 10}, format="json")
    for lease in claimed.json()["assignments"]:
        response = client.post(
            f"/api/v1/work/assignments/{lease['id']}/submit", {"answer": answer}, format="json"
        )
        assert response.status_code == 200


def test_a_failed_training_batch_cannot_be_retried_in_place(requester):
    # given a worker who failed a training batch (1 of 2 right, pass mark 0.8)
    skill = Skill.objects.create(requester=requester, name="Animals")
    batch = _training_batch(requester, skill, training_retry_hours=24)
    worker = WorkerFactory()
    _run(client_for(worker.user), batch, "cat")
    (result,) = TrainingResult.objects.filter(worker=worker)
    assert (result.accuracy, result.passed) == (0.5, False)

    # when they come back to it, even long after the retry delay
    with pytest.raises(Conflict) as refused:
        training_retry_check(worker_id=worker.pk, batch=batch, now=timezone.now() + timedelta(days=30))

    # then 409 training_retry_not_available, pointing at a fresh batch
    retry_after = result.finished_at + timedelta(hours=24)
    assert refused.value.code == "training_retry_not_available"
    assert refused.value.status_code == 409
    assert refused.value.detail == {
        "retry_after": retry_after.isoformat().replace("+00:00", "Z"),
        "needs_fresh_batch": True,
    }
    # and a claim there says so (409 with the same detail), rather than an empty list
    claimed = client_for(worker.user).post(f"/api/v1/work/batches/{batch.pk}/claim", {}, format="json")
    assert claimed.status_code == 409
    assert claimed.json()["code"] == "training_retry_not_available"
    assert claimed.json()["detail"]["needs_fresh_batch"] is True


def test_a_fresh_training_batch_for_the_skill_is_a_retry_after_the_delay(requester):
    # given a worker who failed one training batch for a skill
    skill = Skill.objects.create(requester=requester, name="Animals")
    first = _training_batch(requester, skill, training_retry_hours=24)
    fresh = _training_batch(requester, skill, answers=("cat", "cat"))
    worker = WorkerFactory()
    client = client_for(worker.user)
    _run(client, first, "cat")
    failed = TrainingResult.objects.get(worker=worker)

    # when they finish a fresh batch for the same skill before the delay is over
    with pytest.raises(Conflict) as early:
        training_retry_check(worker_id=worker.pk, batch=fresh, now=timezone.now())
    assert early.value.code == "training_retry_not_available"
    assert early.value.detail["needs_fresh_batch"] is False
    claimed = client.post(f"/api/v1/work/batches/{fresh.pk}/claim", {"count": 10}, format="json")

    # then the claim is refused with the same reason, and nothing is recorded or granted
    assert claimed.status_code == 409
    assert claimed.json()["code"] == "training_retry_not_available"
    assert list(TrainingResult.objects.filter(worker=worker)) == [failed]
    assert not WorkerSkill.objects.filter(worker=worker).exists()

    # given the delay has passed (the failure moved 25 hours back) and another fresh batch
    TrainingResult.objects.filter(pk=failed.pk).update(finished_at=failed.finished_at - timedelta(hours=25))
    again = _training_batch(requester, skill, answers=("cat", "cat"))
    training_retry_check(worker_id=worker.pk, batch=again, now=timezone.now())

    # when they finish it with every answer right
    _run(client, again, "cat")

    # then it passes and grants the skill
    assert TrainingResult.objects.get(worker=worker, batch=again).passed is True
    assert WorkerSkill.objects.get(worker=worker, skill=skill).value == 100


def test_retry_check_ignores_regular_batches(requester, worker):
    assert training_retry_check(worker_id=worker.pk, batch=open_batch(regular=1), now=timezone.now()) is None
