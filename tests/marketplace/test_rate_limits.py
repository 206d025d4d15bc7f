"""Rate limits: every request is counted (the lean claim path, DRF views, allauth, the admin), a
request over a limit gets 429 with ``Retry-After`` and the API's error body, and the counts in
Redis are shared by separate server processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.test import Client, override_settings
from rest_framework.test import APIClient

from crowd.models import Assignment
from tests.factories import WorkerFactory, client_for, open_batch

ROOT = Path(__file__).resolve().parents[2]
GENEROUS = {"ip": "1000/min", "credential": "1000/min", "anonymous": "1000/min", "auth": "1000/min"}
GENEROUS["auth_failures"] = "1000/hour"


def limits(**rates: str) -> override_settings:
    """Limits on, counted in this process, fresh counters (a new key prefix) for each test."""
    return override_settings(
        RATE_LIMIT_ENABLED=True,
        RATE_LIMIT_REDIS_URL="",
        RATE_LIMIT_KEY_PREFIX=f"rl-test-{uuid.uuid4().hex}",
        RATE_LIMITS={**GENEROUS, **rates},
    )


def throttled(response, limit: str, window: int = 60) -> None:
    """The 429 every limit answers: the API's error body, naming the limit and when to retry
    (at most the limit's ``window``, in seconds)."""
    assert response.status_code == 429
    retry = int(response["Retry-After"])
    assert 1 <= retry <= window
    assert response.json() == {
        "code": "throttled",
        "message": response.json()["message"],
        "detail": {"limit": limit, "retry_after": retry},
    }
    assert response.json()["message"].startswith(f"Too many requests ({limit} limit:")


@pytest.mark.django_db
def test_the_lean_claim_path_is_counted_per_token(worker):
    # given an open batch and a worker's token limited to 3 requests a minute
    batch = open_batch(regular=10)
    client = client_for(worker.user)
    url = f"/api/v1/work/batches/{batch.pk}/claim"
    with limits(credential="3/min"):
        # when the worker claims four times (the plain token + JSON request the lean path serves)
        answers = [client.post(url, {"count": 1}, format="json") for _ in range(4)]

    # then three claims were served and the fourth refused, leasing nothing
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    throttled(answers[3], "credential")
    assert Assignment.objects.filter(worker=worker).count() == 3


@pytest.mark.django_db
def test_each_token_and_each_address_has_its_own_count(worker):
    # given two workers' tokens limited to 2 requests a minute each, 5 per address
    mine, theirs = client_for(worker.user), client_for(WorkerFactory().user)
    with limits(credential="2/min", ip="5/min"):
        # when the first spends its allowance, the second still works...
        first = [mine.get("/api/v1/work/me") for _ in range(3)]
        second = [theirs.get("/api/v1/work/me") for _ in range(2)]
        # ... until the address as a whole is over its limit (this is its sixth request)
        sixth = theirs.get("/api/v1/work/me")
        # while a client at another address is served
        elsewhere = client_for(WorkerFactory().user).get("/api/v1/work/me", REMOTE_ADDR="10.0.0.7")
    assert [r.status_code for r in first + second] == [200, 200, 429, 200, 200]
    throttled(first[2], "credential")
    throttled(sixth, "ip")
    assert elsewhere.status_code == 200


@pytest.mark.django_db
def test_behind_a_proxy_the_forwarded_address_is_counted(worker):
    client = APIClient()
    with limits(anonymous="2/min"), override_settings(NUM_PROXIES=1):
        first = [client.get("/api/v1/me", HTTP_X_FORWARDED_FOR="203.0.113.5") for _ in range(3)]
        other = client.get("/api/v1/me", HTTP_X_FORWARDED_FOR="203.0.113.6")
    assert [r.status_code for r in first] == [401, 401, 429]
    throttled(first[2], "anonymous")
    assert other.status_code == 401


@pytest.mark.django_db
def test_repeated_bad_tokens_turn_into_429(worker):
    # given a limit of 3 refused credentials an hour per address
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    with limits(auth_failures="3/hour"):
        answers = [client.get("/api/v1/me") for _ in range(5)]
        # a valid token from the same address is still served
        good = client_for(worker.user).get("/api/v1/work/me")
    assert [r.status_code for r in answers] == [401, 401, 401, 429, 429]
    throttled(answers[3], "auth_failures", 3600)
    assert good.status_code == 200


@pytest.mark.django_db
def test_log_in_is_limited_more_strictly_and_failures_lock_it(worker):
    # given allauth's headless log-in, 3 log-in attempts a minute, 2 failures an hour
    url = "/_allauth/app/v1/auth/login"
    worker.user.set_password("pw-Secret-123")
    worker.user.save()
    EmailAddress.objects.create(user=worker.user, email=worker.user.email, verified=True, primary=True)
    right = {"email": worker.user.email, "password": "pw-Secret-123"}
    wrong = {**right, "password": "guess"}
    client = Client()
    with limits(auth="3/min"):
        attempts = [client.post(url, right, content_type="application/json") for _ in range(4)]
    assert [r.status_code for r in attempts] == [200, 200, 200, 429]
    throttled(attempts[3], "auth")

    with limits(auth_failures="2/hour"):
        guesses = [client.post(url, wrong, content_type="application/json") for _ in range(2)]
        # when the right password follows two wrong ones, it is refused too: no more guessing
        after = client.post(url, right, content_type="application/json")
    assert [r.status_code for r in guesses] == [400, 400]
    throttled(after, "auth_failures", 3600)


@pytest.mark.django_db
def test_the_admin_log_in_and_token_creation_count_as_auth(worker):
    client = Client()
    with limits(auth="2/min"):
        pages = [client.post("/admin/login/", {"username": "x", "password": "y"}) for _ in range(3)]
        tokens = client_for(worker.user)
        made = [tokens.post("/api/v1/tokens", {"name": "t"}, format="json") for _ in range(3)]
    assert [r.status_code for r in pages] == [200, 200, 429]
    throttled(pages[2], "auth")
    # the token client comes from the same test address, which has spent its allowance
    assert [r.status_code for r in made] == [429, 429, 429]


@pytest.mark.django_db
def test_health_checks_are_never_limited():
    with limits(ip="1/min", anonymous="1/min"):
        answers = [Client().get("/healthz").status_code for _ in range(5)]
    assert answers == [200] * 5


@pytest.mark.django_db
def test_with_limits_off_nothing_is_counted(worker):
    client = client_for(worker.user)
    with limits(credential="1/min"), override_settings(RATE_LIMIT_ENABLED=False):
        answers = [client.get("/api/v1/work/me").status_code for _ in range(3)]
    assert answers == [200, 200, 200]


@pytest.mark.django_db
def test_an_unreachable_counter_store_lets_requests_through(worker):
    # given limits counted in a Redis that does not answer (nothing listens on port 9)
    client = client_for(worker.user)
    with limits(credential="1/min"), override_settings(RATE_LIMIT_REDIS_URL="redis://127.0.0.1:9/0"):
        answers = [client.get("/api/v1/work/me").status_code for _ in range(3)]
    assert answers == [200, 200, 200]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[list[str]]:
    """Two gunicorn processes (production settings) counting in the same Redis."""
    prefix = f"rl-procs-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "marketplace.settings.production",
        "SECRET_KEY": "rate-limit-test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_KEY_PREFIX": prefix,
        "RATE_LIMIT_ANONYMOUS": "6/min",
    }
    ports = [_free_port(), _free_port()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "marketplace.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 30
        for url in urls:
            while True:
                try:
                    _get(f"{url}/healthz")
                    break
                except OSError:
                    assert time.monotonic() < deadline, "gunicorn did not start"
                    time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


@pytest.mark.redis
def test_two_processes_share_one_count_in_redis(two_servers):
    # given two server processes and a limit of 6 anonymous requests a minute per address
    # when a client alternates between them
    answers = [_get(f"{two_servers[i % 2]}/api/v1/me") for i in range(8)]

    # then the seventh request is refused, whichever process it reached
    assert [status for status, _, _ in answers] == [401] * 6 + [429, 429]
    for _, headers, content in answers[6:]:
        retry = int(headers["Retry-After"])
        assert 1 <= retry <= 60
        assert json.loads(content) == {
            "code": "throttled",
            "message": f"Too many requests (anonymous limit: 6 per 60 s). Retry in {retry} s.",
            "detail": {"limit": "anonymous", "retry_after": retry},
        }


@pytest.mark.redis
def test_redis_counters_count_read_and_survive_a_forgotten_script():
    # given counters in a Redis database of their own, under fresh keys
    import redis

    from marketplace.ratelimit import RedisCounters

    url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/14"
    counters, prefix = RedisCounters(url), uuid.uuid4().hex
    a, b, failed = f"{prefix}:a", f"{prefix}:b", f"{prefix}:failed"

    # when two keys are counted twice and a third only read
    first = counters.hit([(a, 60), (b, 5)], [failed], 0.0)
    second = counters.hit([(a, 60), (b, 5)], [failed], 0.0)
    # and Redis forgets its scripts (a restart) before the next count
    client = redis.Redis.from_url(url)
    client.script_flush()
    third = counters.hit([(a, 60)], [b], 0.0)

    # then each count went up by one, the read key stayed unset, and every key expires
    assert (first, second, third) == (([1, 1], [0]), ([2, 2], [0]), ([3], [2]))
    assert 0 < client.ttl(a) <= 60 and 0 < client.ttl(b) <= 5
    assert client.exists(failed) == 0
    client.delete(a, b)
