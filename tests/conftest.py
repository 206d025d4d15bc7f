"""Shared fixtures. The database is whatever scripts/test.sh chose: PostgreSQL when reachable."""

from __future__ import annotations

import os
import shutil

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.celery_worker import redis_celery  # noqa: F401 - a fixture for every test module
from tests.factories import BatchFactory, ProjectFactory, RequesterFactory, WorkerFactory, client_for

CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = connection.vendor == "postgresql"
    has_redis = bool(os.environ.get("REDIS_URL"))
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            if CI:
                raise pytest.UsageError("CI=true but the tests are not running on PostgreSQL")
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)"))
        if "browser" in item.keywords and not shutil.which("chromium"):
            if CI:
                raise pytest.UsageError("CI=true but chromium is not installed (scripts/test.sh installs it)")
            item.add_marker(pytest.mark.skip(reason="needs chromium (apt-get install chromium)"))
        if "redis" in item.keywords and not has_redis:
            if CI:
                raise pytest.UsageError("CI=true but REDIS_URL is not set")
            item.add_marker(pytest.mark.skip(reason="needs Redis (set REDIS_URL)"))


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def requester(db):
    return RequesterFactory()


@pytest.fixture
def requester_client(requester) -> APIClient:
    return client_for(requester.user)


@pytest.fixture
def worker(db):
    return WorkerFactory()


@pytest.fixture
def worker_client(worker) -> APIClient:
    return client_for(worker.user)


@pytest.fixture
def project(requester):
    return ProjectFactory(requester=requester)


@pytest.fixture
def batch(project):
    return BatchFactory(project=project)
