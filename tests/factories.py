"""factory_boy factories and small builders shared by the tests."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import factory
from allauth.account.models import EmailAddress
from django.utils import timezone
from rest_framework.fields import DateTimeField
from rest_framework.test import APIClient

from crowd.enums import AssignmentStatus
from crowd.models import Assignment, Worker
from marketplace.enums import BatchStatus
from marketplace.models import ApiToken, Batch, Project, Requester, Task, User
from marketplace.services import budget
from marketplace.services.accounts import token_create
from payments.enums import AccountKind, EntryKind
from payments.services.ledger import ledger_transfer, platform_account, requester_account

LABEL_ANSWER_SCHEMA = {"type": "string", "enum": ["cat", "dog", "other"]}
TEXT_INPUT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 1}},
    "required": ["text"],
    "additionalProperties": False,
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-Secret-123")


class RequesterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Requester

    user = factory.SubFactory(UserFactory)


class WorkerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Worker

    user = factory.SubFactory(UserFactory)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    requester = factory.SubFactory(RequesterFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    instructions = "Label the animal in the text."
    input_schema = factory.LazyFunction(lambda: dict(TEXT_INPUT_SCHEMA))
    answer_schema = factory.LazyFunction(lambda: dict(LABEL_ANSWER_SCHEMA))


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Batch

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Batch {n}")
    price_cents = 5
    currency = "USD"
    overlap = 3
    lease_seconds = 600
    gold_rate = 0.0
    max_claims_per_request = 10
    status = BatchStatus.DRAFT


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    batch = factory.SubFactory(BatchFactory)
    input = factory.Sequence(lambda n: {"text": f"item {n}"})
    overlap = factory.LazyAttribute(lambda t: t.batch.overlap)
    is_gold = factory.LazyAttribute(lambda t: t.gold_answer is not None)
    gold_answer = None


class AssignmentFactory(factory.django.DjangoModelFactory):
    """An assignment row as the claim would write it. Task counters are left to the test."""

    class Meta:
        model = Assignment

    task = factory.SubFactory(TaskFactory)
    batch = factory.LazyAttribute(lambda a: a.task.batch)
    worker = factory.SubFactory(WorkerFactory)
    is_gold = factory.LazyAttribute(lambda a: a.task.is_gold)
    status = AssignmentStatus.ACTIVE
    claimed_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda a: a.claimed_at + timedelta(seconds=a.batch.lease_seconds))


def make_tasks(batch: Batch, n: int, *, gold: int = 0, gold_answer: Any = "cat") -> list[Task]:
    """``n`` regular tasks then ``gold`` gold tasks, created in bulk."""
    rows = [Task(batch=batch, input={"text": f"item {i}"}, overlap=batch.overlap) for i in range(n)]
    rows += [
        Task(
            batch=batch,
            input={"text": f"gold {i}"},
            overlap=batch.overlap,
            is_gold=True,
            gold_answer=gold_answer,
        )
        for i in range(gold)
    ]
    return Task.objects.bulk_create(rows)


def client_for(user: User) -> APIClient:
    """An API client authenticated with a fresh token of ``user``."""
    _, key = token_create(user=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


# --- Builders for the API tests ---------------------------------------------------------------


def fund(requester: Requester, amount_cents: int) -> None:
    """Money on the requester's available balance, as if a card payment had been credited."""
    ledger_transfer(
        debit=platform_account(AccountKind.STRIPE_CLEARING),
        credit=requester_account(requester.pk, AccountKind.AVAILABLE),
        amount_cents=amount_cents,
        idempotency_key=f"test-fund:{uuid.uuid4()}",
        kind=EntryKind.FUNDING,
    )


# What ``open_batch`` leaves on the requester's available balance beyond the batch's reserve: gold
# answers and grown overlaps are paid from it at accept time.
OPEN_BATCH_CUSHION_CENTS = 100_000


def publish_funded(batch: Batch) -> Batch:
    """Fund the batch's requester for it (plus the cushion), then publish it for real."""
    from marketplace.services.batches import batch_publish

    fund(batch.project.requester, budget.batch_required_cents(batch) + OPEN_BATCH_CUSHION_CENTS)
    return batch_publish(batch=batch)


def open_batch(*, regular: int = 0, gold: int = 0, gold_answer: Any = "cat", **fields: Any) -> Batch:
    """A published batch (open unless ``status`` says otherwise) with ``regular`` regular and
    ``gold`` gold tasks, its reserve paid for like ``batch_publish`` does."""
    fields.setdefault("status", BatchStatus.OPEN)
    batch = BatchFactory(published_at=timezone.now(), **fields)
    make_tasks(batch, regular, gold=gold, gold_answer=gold_answer)
    fund(batch.project.requester, budget.batch_required_cents(batch) + OPEN_BATCH_CUSHION_CENTS)
    budget.batch_reserve_required(batch=batch)
    return batch


def iso(value: Any) -> str | None:
    """A datetime rendered the way the API renders it."""
    return None if value is None else DateTimeField().to_representation(value)


def db_snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row (all columns) of the tables the core loop writes, to compare before and after a
    refused request: no row added or removed, no status, counter or field changed."""
    models = (User, Requester, Worker, ApiToken, EmailAddress, Project, Batch, Task, Assignment)
    return {
        model.__name__: list(
            model.objects.order_by("pk").values_list(*[f.attname for f in model._meta.concrete_fields])
        )
        for model in models
    }
