"""``manage.py seed_demo``: idempotent, and the credentials it prints work."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from crowd.models import Assignment, Worker
from marketplace.enums import BatchStatus
from marketplace.management.commands import seed_demo
from marketplace.models import ApiToken, Batch, Project, Requester, Task, User

CREDENTIAL_LINE = re.compile(r"^\s+(requester|worker\d|admin)\s+(\S+@example\.com)\s+(\S+)\s+(\S+)$", re.M)


def _seed() -> dict[str, tuple[str, str, str]]:
    """Run the command; return ``{label: (email, password, token)}`` parsed from its output."""
    out = StringIO()
    call_command("seed_demo", force=True, stdout=out)
    return {label: (email, pw, key) for label, email, pw, key in CREDENTIAL_LINE.findall(out.getvalue())}


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.mark.django_db
def test_seed_demo_creates_users_project_and_an_open_batch_with_gold():
    # when
    printed = _seed()

    # then
    assert {label: (email, pw) for label, (email, pw, _) in printed.items()} == {
        "requester": ("demo-requester@example.com", seed_demo.USER_PASSWORD),
        "worker1": ("demo-worker1@example.com", seed_demo.USER_PASSWORD),
        "worker2": ("demo-worker2@example.com", seed_demo.USER_PASSWORD),
        "worker3": ("demo-worker3@example.com", seed_demo.USER_PASSWORD),
        "admin": ("admin@example.com", seed_demo.ADMIN_PASSWORD),
    }
    for email, password, _ in printed.values():
        user = User.objects.get(email=email)
        assert user.check_password(password)
        assert list(user.emailaddress_set.values_list("verified", flat=True)) == [True]
    admin = User.objects.get(email="admin@example.com")
    assert (admin.is_staff, admin.is_superuser) == (True, True)
    assert Requester.objects.get().user.email == "demo-requester@example.com"
    assert sorted(Worker.objects.values_list("user__email", flat=True)) == [
        "demo-worker1@example.com",
        "demo-worker2@example.com",
        "demo-worker3@example.com",
    ]
    project = Project.objects.get()
    assert project.name == "Sentiment of product reviews"
    assert project.input_schema["properties"]["text"]["type"] == "string"
    assert project.answer_schema == {"type": "string", "enum": ["positive", "negative", "neutral"]}
    batch = Batch.objects.get()
    assert (batch.status, batch.overlap, batch.gold_rate) == (BatchStatus.OPEN, 3, 0.1)
    assert Task.objects.filter(batch=batch, is_gold=False).count() == len(seed_demo.REVIEWS) == 50
    gold = Task.objects.filter(batch=batch, is_gold=True)
    assert gold.count() == len(seed_demo.GOLD_REVIEWS) == 5
    assert set(gold.values_list("gold_answer", flat=True)) <= {"positive", "negative", "neutral"}


@pytest.mark.django_db
def test_seed_demo_twice_duplicates_nothing_and_only_the_latest_tokens_work():
    # given
    first = _seed()

    # when
    second = _seed()

    # then: the same rows, no more
    assert User.objects.count() == 5
    assert (Requester.objects.count(), Worker.objects.count()) == (1, 3)
    assert (Project.objects.count(), Batch.objects.count(), Task.objects.count()) == (1, 1, 55)
    assert Batch.objects.get().status == BatchStatus.OPEN
    # one live demo token per user: the earlier ones are revoked, so they cannot pile up
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 5
    assert ApiToken.objects.filter(revoked_at__isnull=False).count() == 5
    for label in second:
        assert second[label][:2] == first[label][:2]
        assert second[label][2] != first[label][2]
        assert _client(first[label][2]).get("/api/v1/me").status_code == 401
        me = _client(second[label][2]).get("/api/v1/me")
        assert me.status_code == 200
        assert me.json()["email"] == second[label][0]


@pytest.mark.django_db
def test_printed_tokens_claim_submit_and_see_progress():
    # given
    printed = _seed()
    batch = Batch.objects.get()
    worker = _client(printed["worker1"][2])
    requester = _client(printed["requester"][2])

    # when
    claim = worker.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": 1}, format="json")
    (lease,) = claim.json()["assignments"]
    submit = worker.post(
        f"/api/v1/work/assignments/{lease['id']}/submit", {"answer": "positive"}, format="json"
    )
    progress = requester.get(f"/api/v1/batches/{batch.pk}").json()["progress"]

    # then
    assert claim.status_code == 200
    assert set(lease) == {"id", "batch", "input", "expires_at"}
    assert submit.status_code == 200
    assert submit.json()["status"] == "submitted"
    assert Assignment.objects.get().answer == "positive"
    assert (progress["tasks"], progress["gold_tasks"]) == (50, 5)
    assert progress["assignments_submitted"] == 1
    admin = _client(printed["admin"][2]).get("/api/v1/me").json()
    assert admin == {"id": admin["id"], "email": "admin@example.com", "is_staff": True, "roles": []}


@pytest.mark.django_db
def test_seed_demo_refuses_to_run_with_debug_off_unless_forced(settings):
    # given
    settings.DEBUG = False

    # when / then
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo", stdout=StringIO())
    assert User.objects.count() == 0
    assert Batch.objects.count() == 0
