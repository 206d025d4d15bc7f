"""factory_boy factories and small builders shared by the tests."""

from __future__ import annotations

from typing import Any

import factory
from rest_framework.test import APIClient

from crowd.models import Worker
from marketplace.enums import BatchStatus
from marketplace.models import Batch, Project, Requester, Task, User
from marketplace.services.accounts import token_create

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
