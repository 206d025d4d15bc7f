"""Gold tasks stay hidden: no worker-facing response ever reveals a gold answer, a gold flag or a
task id, and a claimed gold task looks exactly like a regular one.

A property-style test: seeded random walks of several workers over every /work/ endpoint, across
a batch with many gold tasks served at a high gold rate, checking every response body.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from crowd.models import Assignment
from crowd.services import claims
from marketplace.models import Task
from tests.factories import BatchFactory, ProjectFactory, WorkerFactory, client_for

pytestmark = pytest.mark.django_db

GOLD_SECRET = "GOLD-SECRET"
FORBIDDEN_KEYS = {"gold_answer", "is_gold", "task", "task_id"}
CLAIM_ITEM_KEYS = {"id", "batch", "input", "expires_at"}
# Task ids far from every other id in the test database, so any task id in a body is unmistakable.
TASK_ID_BASE = 7_310_000_000
REGULAR, GOLD = 20, 30
STEPS = 150


def _walk(value: Any, path: str = "$"):
    """Every (path, key, value) in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, item
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _gold_batch():
    project = ProjectFactory(answer_schema={"type": "string"})
    batch = BatchFactory(
        project=project,
        status="open",
        published_at=timezone.now(),
        gold_rate=0.8,
        overlap=2,
        max_claims_per_request=4,
    )
    # Gold and regular inputs look alike; only the hidden gold answers carry the secret marker.
    Task.objects.bulk_create(
        Task(
            id=TASK_ID_BASE + i,
            batch=batch,
            input={"text": f"text {i}"},
            overlap=batch.overlap,
            is_gold=i >= REGULAR,
            gold_answer=f"{GOLD_SECRET}-{i}" if i >= REGULAR else None,
        )
        for i in range(REGULAR + GOLD)
    )
    return batch


class Recorder:
    """Calls the API as one worker and keeps every response for the checks."""

    def __init__(self, rng: random.Random) -> None:
        self.worker = WorkerFactory()
        self.client = client_for(self.worker.user)
        self.rng = rng
        self.responses: list[tuple[str, int, bytes]] = []
        self.claim_items: list[dict[str, Any]] = []

    def call(self, method: str, url: str, body: Any = None, **headers: Any) -> Any:
        response = getattr(self.client, method)(url, body, format="json", **headers)
        self.responses.append((f"{method.upper()} {url}", response.status_code, response.content))
        return response

    def my_ids(self, status: str | None = None) -> list[int]:
        qs = Assignment.objects.filter(worker=self.worker)
        if status:
            qs = qs.filter(status=status)
        return list(qs.values_list("id", flat=True))

    def step(self, batch_id: int) -> None:
        rng = self.rng
        action = rng.choice(
            ["claim", "claim", "claim", "submit", "submit", "skip", "release", "expire", "browse", "list"]
        )
        active = self.my_ids("active")
        if action == "claim":
            response = self.call(
                "post", f"/api/v1/work/batches/{batch_id}/claim", {"count": rng.randint(1, 6)}
            )
            if response.status_code == 200:
                items = response.json()["assignments"]
                self.claim_items.extend(items)
                assert len({item["expires_at"] for item in items}) <= 1
        elif action == "submit" and active:
            target = rng.choice(active)
            answer = rng.choice(["a", "b", 5])  # 5 breaks the schema: error bodies are checked too
            key = rng.choice(["", f"k-{target}"])
            headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
            self.call("post", f"/api/v1/work/assignments/{target}/submit", {"answer": answer}, **headers)
            if rng.random() < 0.3:  # a retry, replayed or refused
                self.call("post", f"/api/v1/work/assignments/{target}/submit", {"answer": "a"}, **headers)
        elif action in {"skip", "release"} and active:
            self.call("post", f"/api/v1/work/assignments/{rng.choice(active)}/{action}")
        elif action == "expire" and active:
            target = rng.choice(active)
            Assignment.objects.filter(pk=target).update(expires_at=timezone.now() - timedelta(seconds=1))
            self.call(
                "post", f"/api/v1/work/assignments/{target}/{rng.choice(['submit', 'skip'])}", {"answer": "a"}
            )
        elif action == "browse":
            self.call("get", "/api/v1/work/batches")
            self.call("get", f"/api/v1/work/batches/{batch_id}")
        else:
            status = rng.choice([None, "active", "submitted", "expired", "skipped", "released"])
            self.call("get", "/api/v1/work/assignments" + (f"?status={status}" if status else ""))
            mine = self.my_ids()
            if mine:
                self.call("get", f"/api/v1/work/assignments/{rng.choice(mine)}")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_worker_response_reveals_gold(seed, monkeypatch):
    # the claim's gold draw is seeded too, so each walk is repeatable
    monkeypatch.setattr(claims, "_rng", random.Random(seed))
    # given a batch with more gold than regular tasks, served at a high gold rate, and 3 workers
    batch = _gold_batch()
    task_ids = set(Task.objects.filter(batch=batch).values_list("id", flat=True))
    rng = random.Random(seed)
    workers = [Recorder(rng) for _ in range(3)]

    # when they claim, submit, skip, release, let leases expire and browse, in random order
    for _ in range(STEPS):
        rng.choice(workers).step(batch.pk)

    # then the walk covered gold and regular work, answered and not
    claimed = Assignment.objects.filter(batch=batch)
    assert claimed.filter(is_gold=True, status="submitted").exists()
    assert claimed.filter(is_gold=False, status="submitted").exists()
    assert claimed.filter(is_gold=True).exclude(status="submitted").exists()
    responses = [r for w in workers for r in w.responses]
    assert {status for _, status, _ in responses} >= {200, 400, 409}

    # and no body names a gold answer, a gold flag or a task
    for request, status, content in responses:
        text = content.decode()
        where = f"{request} -> {status}: {text[:300]}"
        assert GOLD_SECRET not in text, where
        assert not any(str(task_id) in text for task_id in task_ids), where
        for path, key, value in _walk(json.loads(text)):
            assert key not in FORBIDDEN_KEYS, f"{where} ({path}.{key})"
            assert not (isinstance(value, int) and value in task_ids), f"{where} ({path}.{key})"

    # and every claimed item, gold or regular, has the same shape
    items = [item for w in workers for item in w.claim_items]
    gold_ids = set(claimed.filter(is_gold=True).values_list("id", flat=True))
    assert any(item["id"] in gold_ids for item in items)
    assert any(item["id"] not in gold_ids for item in items)
    for item in items:
        assert set(item) == CLAIM_ITEM_KEYS
        assert item["batch"] == batch.pk
        assert set(item["input"]) == {"text"}
