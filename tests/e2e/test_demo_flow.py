"""The whole labelling loop through the HTTP API, as the README walks it.

A requester creates a project and a batch, uploads regular and gold tasks, publishes; three
workers claim and answer until the batch has nothing left for them; the requester then reads
every answer and the progress counts. Accounts come from ``manage.py create_api_user``, the
documented way to get an API token; everything after that is HTTP.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from marketplace.models import Batch, Requester
from marketplace.services import budget
from tests.factories import fund

REGULAR = 20
OVERLAP = 3
LABELS = ("positive", "negative", "neutral")
GOLD = [
    ("I love it, works perfectly.", "positive"),
    ("Broke on day one. Waste of money.", "negative"),
    ("It is blue and weighs 200 grams.", "neutral"),
    ("Terrible, I want a refund.", "negative"),
]
INPUT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 1}},
    "required": ["text"],
    "additionalProperties": False,
}
ANSWER_SCHEMA = {"type": "string", "enum": list(LABELS)}


def _client(email: str, role: str) -> APIClient:
    out = StringIO()
    call_command("create_api_user", email=email, role=[role], token_only=True, stdout=out)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {out.getvalue().strip()}")
    return client


def _label(text: str) -> str:
    """What a careful worker answers: gold by its known answer, review i by ``LABELS[i % 3]``."""
    gold = dict(GOLD)
    if text in gold:
        return gold[text]
    return LABELS[int(text.split()[1]) % len(LABELS)]


def _all_pages(client: APIClient, url: str) -> list[dict[str, Any]]:
    """Follow the cursor's ``next`` links; every page must answer 200."""
    rows: list[dict[str, Any]] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.json()
        rows += response.json()["results"]
        url = response.json()["next"]
    return rows


def _work_until_exhausted(client: APIClient, batch_id: int) -> int:
    """Claim up to 10 leases and answer each, until the batch has nothing left for this worker.

    An empty claim is retried a few times before it is believed: when every lease of a claim is
    drawn as gold (chance ``gold_rate ** count``) and the worker has seen all gold, the service
    answers ``[]`` although regular work remains.
    """
    answered = empties = 0
    while empties < 3:
        claim = client.post(f"/api/v1/work/batches/{batch_id}/claim", {"count": 10}, format="json")
        assert claim.status_code == 200, claim.json()
        leases = claim.json()["assignments"]
        empties = 0 if leases else empties + 1
        for lease in leases:
            assert set(lease) == {"id", "batch", "input", "expires_at"}
            submit = client.post(
                f"/api/v1/work/assignments/{lease['id']}/submit",
                {"answer": _label(lease["input"]["text"])},
                format="json",
                HTTP_IDEMPOTENCY_KEY=f"lease-{lease['id']}",
            )
            assert submit.status_code == 200, submit.json()
            assert submit.json()["status"] == "submitted"
            answered += 1
    return answered


@pytest.mark.django_db(transaction=True)
def test_requester_publishes_three_workers_answer_everything_requester_sees_it_all():
    # given: a requester and three workers, each with an API token
    requester = _client("requester@example.com", "requester")
    workers = [_client(f"worker{i}@example.com", "worker") for i in (1, 2, 3)]

    # when: the requester sets up and publishes a batch
    project = requester.post(
        "/api/v1/projects",
        {
            "name": "Review sentiment",
            "instructions": "Pick the overall sentiment.",
            "input_schema": INPUT_SCHEMA,
            "answer_schema": ANSWER_SCHEMA,
        },
        format="json",
    )
    assert project.status_code == 201, project.json()
    batch = requester.post(
        "/api/v1/batches",
        {
            "project": project.json()["id"],
            "name": "Reviews, week 1",
            "price_cents": 5,
            "overlap": OVERLAP,
            "gold_rate": 0.25,
            "max_claims_per_request": 10,
        },
        format="json",
    )
    assert batch.status_code == 201, batch.json()
    assert batch.json()["status"] == "draft"
    batch_id = batch.json()["id"]
    rows = [{"external_id": f"r{i}", "input": {"text": f"review {i} text"}} for i in range(REGULAR)]
    rows += [
        {"external_id": f"g{i}", "input": {"text": text}, "gold_answer": answer}
        for i, (text, answer) in enumerate(GOLD)
    ]
    upload = requester.post(f"/api/v1/batches/{batch_id}/tasks", rows, format="json")
    assert upload.status_code == 201
    assert upload.json() == {
        "received": REGULAR + len(GOLD),
        "created": REGULAR + len(GOLD),
        "gold_created": len(GOLD),
        "duplicates": 0,
        "invalid": 0,
        "errors": [],
        "errors_truncated": False,
    }
    # publishing needs the money for every answer wanted, plus the platform fee
    unfunded = requester.post(f"/api/v1/batches/{batch_id}/publish")
    assert unfunded.status_code == 409
    assert unfunded.json()["code"] == "insufficient_funds"
    needed = budget.batch_required_cents(Batch.objects.get(pk=batch_id))
    assert unfunded.json()["detail"]["shortfall_cents"] == needed
    fund(Requester.objects.get(user__email="requester@example.com"), needed)
    published = requester.post(f"/api/v1/batches/{batch_id}/publish")
    assert published.status_code == 200
    assert published.json()["status"] == "open"

    # and: the workers find it and answer until nothing is left, taking turns
    for worker in workers:
        listed = worker.get("/api/v1/work/batches").json()["results"]
        assert [(b["id"], b["answer_schema"]) for b in listed] == [(batch_id, ANSWER_SCHEMA)]
    answered = [0, 0, 0]
    for _ in range(2):  # a second round proves the first one left nothing behind
        for i, worker in enumerate(workers):
            answered[i] += _work_until_exhausted(worker, batch_id)

    # then: every regular task has exactly OVERLAP answers, from OVERLAP different workers
    submitted = _all_pages(requester, f"/api/v1/batches/{batch_id}/assignments?status=submitted&page_size=7")
    assert sum(answered) == len(submitted)
    regular = [a for a in submitted if not a["is_gold"]]
    gold = [a for a in submitted if a["is_gold"]]
    assert Counter(a["external_id"] for a in regular) == {f"r{i}": OVERLAP for i in range(REGULAR)}
    workers_per_task: defaultdict[str, set[str]] = defaultdict(set)
    for a in regular:
        workers_per_task[a["external_id"]].add(a["worker"])
        assert a["answer"] == LABELS[int(a["external_id"][1:]) % len(LABELS)]
    assert {len(names) for names in workers_per_task.values()} == {OVERLAP}
    assert len({a["worker"] for a in submitted}) == 3
    assert all(name.startswith("w-") for name in workers_per_task["r0"])
    # each worker answers each gold task at most once, and gold never counts toward results
    assert max(Counter((a["task"], a["worker"]) for a in gold).values(), default=1) == 1
    gold_tasks = _all_pages(requester, f"/api/v1/batches/{batch_id}/tasks?is_gold=true")
    gold_answer = {t["id"]: t["gold_answer"] for t in gold_tasks}
    assert all(a["answer"] == gold_answer[a["task"]] for a in gold)

    # and: the tasks are complete and the progress counts agree with the answers
    tasks = _all_pages(requester, f"/api/v1/batches/{batch_id}/tasks?is_gold=false")
    assert {(t["status"], t["answers_count"], t["slots_taken"]) for t in tasks} == {
        ("complete", OVERLAP, OVERLAP)
    }
    detail = requester.get(f"/api/v1/batches/{batch_id}")
    assert detail.status_code == 200
    assert detail.json()["progress"] == {
        "tasks": REGULAR,
        "gold_tasks": len(GOLD),
        "tasks_complete": REGULAR,
        "answers_wanted": REGULAR * OVERLAP,
        "assignments_active": 0,
        "assignments_accepted": 0,  # issue 3: nothing reviewed yet
        "assignments_rejected": 0,
        "assignments_submitted": REGULAR * OVERLAP + len(gold),
        "assignments_expired": 0,
        "assignments_skipped": 0,
        "assignments_released": 0,
        "gold_answers": len(gold),
    }

    # and: a worker's own history never tells gold apart
    mine = _all_pages(workers[0], "/api/v1/work/assignments")
    assert len(mine) == answered[0]
    assert {frozenset(a) for a in mine} == {
        frozenset(
            {
                "id",
                "batch",
                "status",
                "input",
                "answer",
                "claimed_at",
                "expires_at",
                "submitted_at",
                "ended_at",
                # Issue 3: verdict time and reason, training feedback.
                "reviewed_at",
                "review_reason",
                "explanation",
            }
        )
    }
