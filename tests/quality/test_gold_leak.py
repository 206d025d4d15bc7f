"""The quality endpoints a worker reads never reveal gold: no gold answer, score, correctness or flag."""

from __future__ import annotations

import json
import random

import pytest

from crowd.models import Assignment, QualityRule
from crowd.services import claims
from tests.crowd.test_gold_leak import GOLD_SECRET, Recorder, _gold_batch, _walk

pytestmark = pytest.mark.django_db

FORBIDDEN = {"gold_answer", "is_gold", "task", "task_id", "gold_correct", "gold_score", "gold_explanation"}


@pytest.mark.parametrize("seed", [4, 5])
def test_worker_quality_views_never_reveal_gold(seed, monkeypatch):
    # given a gold-heavy batch with a rule and reviews
    monkeypatch.setattr(claims, "_rng", random.Random(seed))
    batch = _gold_batch()
    QualityRule.objects.create(
        batch=batch,
        kind="gold_accuracy",
        params={"window": 10, "min_answers": 3, "threshold": 0.9},
        action={"scope": "batch", "duration_hours": 1, "reject_pending": True},
    )
    rng = random.Random(seed)
    workers = [Recorder(rng) for _ in range(3)]
    for _ in range(120):
        rng.choice(workers).step(batch.pk)
    assert Assignment.objects.filter(batch=batch, gold_correct__isnull=False).exists()

    # when each worker reads their standing and assignments
    for w in workers:
        w.call("get", "/api/v1/work/me")
        w.call("get", "/api/v1/work/assignments")
        for pk in w.my_ids():
            w.call("get", f"/api/v1/work/assignments/{pk}")

    # then
    for w in workers:
        for request, _, content in w.responses:
            text = content.decode()
            assert GOLD_SECRET not in text, request
            for path, key, _ in _walk(json.loads(text)):
                assert key not in FORBIDDEN, f"{request}: {path}.{key}"
