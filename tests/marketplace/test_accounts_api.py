"""Accounts API: authentication, tokens, roles, and the role checks every endpoint makes."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from crowd.models import Worker
from marketplace.models import ApiToken, Requester, User
from marketplace.services.accounts import token_create
from tests.factories import (
    BatchFactory,
    ProjectFactory,
    RequesterFactory,
    UserFactory,
    WorkerFactory,
    client_for,
    db_snapshot,
    iso,
)

pytestmark = pytest.mark.django_db

NOT_AUTHENTICATED = {
    "code": "not_authenticated",
    "message": "Authentication credentials were not provided.",
    "detail": {},
}
BAD_TOKEN = {"code": "authentication_failed", "message": "Invalid or revoked token.", "detail": {}}
NOT_A_REQUESTER = {
    "code": "not_a_requester",
    "message": "This endpoint is for requesters; create a requester profile first.",
    "detail": {},
}
NOT_A_WORKER = {
    "code": "not_a_worker",
    "message": "This endpoint is for workers; create a worker profile first.",
    "detail": {},
}

# Every endpoint of the core loop, with a body where it takes one; ids need not exist, since
# authentication and the role check run before any lookup.
REQUESTER_ENDPOINTS = [
    ("get", "/api/v1/projects", None),
    ("post", "/api/v1/projects", {"name": "P"}),
    ("get", "/api/v1/projects/1", None),
    ("patch", "/api/v1/projects/1", {"name": "P"}),
    ("get", "/api/v1/batches", None),
    ("post", "/api/v1/batches", {"project": 1, "name": "B", "price_cents": 5}),
    ("get", "/api/v1/batches/1", None),
    ("patch", "/api/v1/batches/1", {"name": "B"}),
    ("get", "/api/v1/batches/1/tasks", None),
    ("post", "/api/v1/batches/1/tasks", [{"input": {"text": "a"}}]),
    ("post", "/api/v1/batches/1/publish", None),
    ("post", "/api/v1/batches/1/pause", None),
    ("post", "/api/v1/batches/1/close", None),
    ("get", "/api/v1/batches/1/assignments", None),
]
WORKER_ENDPOINTS = [
    ("get", "/api/v1/work/batches", None),
    ("get", "/api/v1/work/batches/1", None),
    ("post", "/api/v1/work/batches/1/claim", {"count": 1}),
    ("get", "/api/v1/work/assignments", None),
    ("get", "/api/v1/work/assignments/1", None),
    ("post", "/api/v1/work/assignments/1/submit", {"answer": "cat"}),
    ("post", "/api/v1/work/assignments/1/skip", None),
    ("post", "/api/v1/work/assignments/1/release", None),
]
ACCOUNT_ENDPOINTS = [
    ("get", "/api/v1/me", None),
    ("post", "/api/v1/me/roles", {"role": "worker"}),
    ("get", "/api/v1/tokens", None),
    ("post", "/api/v1/tokens", {"name": "ci"}),
    ("delete", "/api/v1/tokens/1", None),
]


def _call(client: APIClient, method: str, url: str, body: object):
    return getattr(client, method)(url, body, format="json")


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body"), REQUESTER_ENDPOINTS + WORKER_ENDPOINTS + ACCOUNT_ENDPOINTS
)
def test_no_credentials_is_401_not_authenticated_everywhere(anon, method, url, body):
    # given
    RequesterFactory()
    before = db_snapshot()

    # when
    response = _call(anon, method, url, body)

    # then
    assert response.status_code == 401
    assert response.json() == NOT_AUTHENTICATED
    assert response["WWW-Authenticate"] == 'Token realm="api"'
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("method", "url", "body"), REQUESTER_ENDPOINTS + WORKER_ENDPOINTS + ACCOUNT_ENDPOINTS
)
def test_unknown_token_is_401_everywhere(method, url, body):
    # given
    RequesterFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    before = db_snapshot()

    # when
    response = _call(client, method, url, body)

    # then
    assert response.status_code == 401
    assert response.json() == BAD_TOKEN
    assert db_snapshot() == before


def test_token_and_bearer_schemes_both_authenticate():
    # given
    user = UserFactory(email="ada@example.com")
    _, key = _token(user)

    for header in (f"Token {key}", f"Bearer {key}", f"bearer {key}"):
        # when
        response = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=header)

        # then
        assert response.status_code == 200
        assert response.json() == {"id": user.pk, "email": "ada@example.com", "is_staff": False, "roles": []}


def test_authorization_header_with_extra_parts_is_401():
    # given
    _, key = _token(UserFactory())

    # when
    response = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Token {key} extra")

    # then
    assert response.status_code == 401
    assert response.json() == {
        "code": "authentication_failed",
        "message": "Invalid Authorization header: expected '<scheme> <key>'.",
        "detail": {},
    }


def test_token_of_an_inactive_user_is_401():
    # given
    user = UserFactory()
    _, key = _token(user)
    User.objects.filter(pk=user.pk).update(is_active=False)

    # when
    response = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Token {key}")

    # then
    assert response.status_code == 401
    assert response.json() == BAD_TOKEN


# --- me and roles ---------------------------------------------------------------------------


def test_me_lists_the_roles_held(requester):
    # given
    WorkerFactory(user=requester.user)
    client = client_for(requester.user)

    # when
    response = client.get("/api/v1/me")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "id": requester.user.pk,
        "email": requester.user.email,
        "is_staff": False,
        "roles": ["requester", "worker"],
    }


def test_taking_the_worker_role_creates_a_worker_profile(requester, requester_client):
    # when
    response = requester_client.post("/api/v1/me/roles", {"role": "worker"}, format="json")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "id": requester.user.pk,
        "email": requester.user.email,
        "is_staff": False,
        "roles": ["requester", "worker"],
    }
    assert Worker.objects.filter(user=requester.user).count() == 1
    # and the same token now reaches worker endpoints
    assert requester_client.get("/api/v1/work/batches").status_code == 200


def test_taking_a_role_twice_is_harmless(worker, worker_client):
    # given
    worker_client.post("/api/v1/me/roles", {"role": "requester"}, format="json")
    before = db_snapshot()

    # when
    response = worker_client.post("/api/v1/me/roles", {"role": "requester"}, format="json")

    # then
    assert response.status_code == 200
    assert response.json()["roles"] == ["requester", "worker"]
    assert db_snapshot() == before
    assert Requester.objects.filter(user=worker.user).count() == 1


def test_unknown_role_is_400_and_grants_nothing(worker, worker_client):
    # given
    before = db_snapshot()

    # when
    response = worker_client.post("/api/v1/me/roles", {"role": "admin"}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid input.",
        "detail": {"role": ['"admin" is not a valid choice.']},
    }
    assert db_snapshot() == before


# --- tokens ---------------------------------------------------------------------------------


def _token(user: User, name: str = "") -> tuple[ApiToken, str]:
    return token_create(user=user, name=name)


def test_create_token_shows_the_key_once_and_stores_only_its_hash(worker, worker_client):
    # when
    response = worker_client.post("/api/v1/tokens", {"name": "laptop"}, format="json")

    # then
    assert response.status_code == 201
    body = response.json()
    token = ApiToken.objects.get(pk=body["id"])
    assert body == {
        "id": token.pk,
        "name": "laptop",
        "prefix": body["key"][:8],
        "created_at": iso(token.created_at),
        "revoked_at": None,
        "key": body["key"],
    }
    assert token.user_id == worker.user_id
    assert token.key_hash == ApiToken.hash_key(body["key"])
    assert body["key"] not in token.key_hash
    # and the new key works
    assert APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {body['key']}").status_code == 200


def test_list_tokens_shows_only_mine_without_keys(worker):
    # given
    first, _ = _token(worker.user, "one")
    second, _ = _token(worker.user, "two")
    _token(UserFactory(), "someone else's")
    ApiToken.objects.filter(pk=first.pk).update(revoked_at=second.created_at)
    first.refresh_from_db()
    client = APIClient()
    client.force_authenticate(worker.user)

    # when
    response = client.get("/api/v1/tokens")

    # then
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": second.pk,
            "name": "two",
            "prefix": second.prefix,
            "created_at": iso(second.created_at),
            "revoked_at": None,
        },
        {
            "id": first.pk,
            "name": "one",
            "prefix": first.prefix,
            "created_at": iso(first.created_at),
            "revoked_at": iso(first.revoked_at),
        },
    ]


def test_revoked_token_is_401(worker):
    # given
    token, key = _token(worker.user)
    other_client = client_for(worker.user)

    # when
    response = other_client.delete(f"/api/v1/tokens/{token.pk}")

    # then
    assert response.status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    refused = APIClient().get("/api/v1/work/batches", HTTP_AUTHORIZATION=f"Token {key}")
    assert refused.status_code == 401
    assert refused.json() == BAD_TOKEN


def test_a_token_can_revoke_itself_and_revoking_twice_is_harmless(worker):
    # given
    token, key = _token(worker.user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.delete(f"/api/v1/tokens/{token.pk}").status_code == 204
    token.refresh_from_db()
    revoked_at = token.revoked_at

    # when
    again = client_for(worker.user).delete(f"/api/v1/tokens/{token.pk}")

    # then
    assert again.status_code == 204
    token.refresh_from_db()
    assert token.revoked_at == revoked_at
    assert client.get("/api/v1/me").status_code == 401


def test_revoking_another_users_token_is_404_and_leaves_it_working(worker_client):
    # given
    victim = UserFactory()
    token, key = _token(victim)
    before = db_snapshot()

    # when
    response = worker_client.delete(f"/api/v1/tokens/{token.pk}")

    # then
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Token not found.", "detail": {}}
    assert db_snapshot() == before
    assert APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


# --- roles on endpoints ---------------------------------------------------------------------


@pytest.mark.parametrize(("method", "url", "body"), REQUESTER_ENDPOINTS)
def test_worker_on_requester_endpoints_is_403_not_a_requester(worker_client, method, url, body):
    # given
    BatchFactory()
    before = db_snapshot()

    # when
    response = _call(worker_client, method, url, body)

    # then
    assert response.status_code == 403
    assert response.json() == NOT_A_REQUESTER
    assert db_snapshot() == before


@pytest.mark.parametrize(("method", "url", "body"), WORKER_ENDPOINTS)
def test_requester_on_worker_endpoints_is_403_not_a_worker(requester_client, method, url, body):
    # given
    BatchFactory()
    before = db_snapshot()

    # when
    response = _call(requester_client, method, url, body)

    # then
    assert response.status_code == 403
    assert response.json() == NOT_A_WORKER
    assert db_snapshot() == before


def test_user_without_a_role_gets_403_on_both_sides():
    # given
    client = client_for(UserFactory())

    # when
    as_requester = client.get("/api/v1/projects")
    as_worker = client.get("/api/v1/work/batches")

    # then
    assert (as_requester.status_code, as_requester.json()) == (403, NOT_A_REQUESTER)
    assert (as_worker.status_code, as_worker.json()) == (403, NOT_A_WORKER)


# --- the management command -----------------------------------------------------------------


def test_create_api_user_prints_a_working_requester_token():
    # given
    out = StringIO()

    # when
    call_command("create_api_user", "--email", "Ops@Example.com", "--role", "requester", stdout=out)

    # then
    line = out.getvalue().strip()
    prefix = "email=ops@example.com roles=requester token="
    assert line.startswith(prefix)
    key = line.removeprefix(prefix)
    user = User.objects.get(email="ops@example.com")
    assert Requester.objects.filter(user=user).exists()
    assert not Worker.objects.filter(user=user).exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    me = client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json() == {"id": user.pk, "email": "ops@example.com", "is_staff": False, "roles": ["requester"]}
    created = client.post("/api/v1/projects", {"name": "From the CLI"}, format="json")
    assert created.status_code == 201
    assert client.get("/api/v1/work/batches").status_code == 403


def test_create_api_user_reuses_the_user_and_adds_roles():
    # given
    call_command("create_api_user", "--email", "ops@example.com", "--role", "requester", stdout=StringIO())
    out = StringIO()

    # when
    call_command(
        "create_api_user", "--email", "ops@example.com", "--role", "worker", "--token-only", stdout=out
    )

    # then
    key = out.getvalue().strip()
    assert User.objects.filter(email="ops@example.com").count() == 1
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/me").json()["roles"] == ["requester", "worker"]
    assert ApiToken.objects.filter(user__email="ops@example.com").count() == 2


def test_other_requesters_objects_are_404_not_403(requester_client):
    # given
    other_batch = BatchFactory(project=ProjectFactory())
    before = db_snapshot()

    # when
    project = requester_client.get(f"/api/v1/projects/{other_batch.project_id}")
    batch = requester_client.get(f"/api/v1/batches/{other_batch.pk}")

    # then
    assert (project.status_code, project.json()) == (
        404,
        {"code": "not_found", "message": "Project not found.", "detail": {}},
    )
    assert (batch.status_code, batch.json()) == (
        404,
        {"code": "not_found", "message": "Batch not found.", "detail": {}},
    )
    assert db_snapshot() == before
