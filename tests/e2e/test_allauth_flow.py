"""Sign-up, e-mail verification and login through allauth's headless app API, then our API.

The app client authenticates with the ``X-Session-Token`` header (no cookies, no CSRF); with that
session the user takes on a role and creates an API token, which then works on its own until it
is revoked. E-mail is the locmem backend of the test settings; verification is mandatory (base).
"""

from __future__ import annotations

import re
from unittest.mock import ANY

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

from marketplace.models import ApiToken, User

AUTH = "/_allauth/app/v1/auth"
JSON = "application/json"
EMAIL = "new-worker@example.com"
PASSWORD = "a-Long-pass-8127"
PENDING_VERIFICATION = {
    "status": 401,
    "data": {"flows": [{"id": "login"}, {"id": "signup"}, {"id": "verify_email", "is_pending": True}]},
    "meta": {"is_authenticated": False, "session_token": ANY},
}


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """allauth rate-limits sign-ups and verification mails per address in the cache; start clean."""
    cache.clear()
    yield
    cache.clear()


def _post(path: str, data: dict, **headers: str):
    # A fresh client per call: an app client carries its session only in X-Session-Token.
    return Client().post(path, data, content_type=JSON, headers=headers)


def _verification_key(message: mail.EmailMessage) -> str:
    found = re.search(r"/accounts/confirm-email/([^/\s]+)/", message.body)
    assert found, message.body
    return found.group(1)


def _signed_up_and_verified() -> None:
    signup = _post(f"{AUTH}/signup", {"email": EMAIL, "password": PASSWORD})
    key = _verification_key(mail.outbox[0])
    verify = _post(
        f"{AUTH}/email/verify", {"key": key}, **{"X-Session-Token": signup.json()["meta"]["session_token"]}
    )
    assert verify.status_code == 401  # verified; logging in is a separate step


def _login() -> str:
    response = _post(f"{AUTH}/login", {"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 200, response.json()
    return response.json()["meta"]["session_token"]


@pytest.mark.django_db
def test_signup_sends_a_verification_mail_and_login_waits_for_it():
    # when
    signup = _post(f"{AUTH}/signup", {"email": EMAIL, "password": PASSWORD})

    # then: the account exists, unverified, and the mail links the confirmation key
    assert signup.status_code == 401
    assert signup.json() == PENDING_VERIFICATION
    assert [m.to for m in mail.outbox] == [[EMAIL]]
    assert _verification_key(mail.outbox[0])
    user = User.objects.get(email=EMAIL)
    assert list(user.emailaddress_set.values_list("email", "verified")) == [(EMAIL, False)]

    # and: logging in before verifying is refused with the same pending flow
    login = _post(f"{AUTH}/login", {"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 401
    assert login.json() == PENDING_VERIFICATION


@pytest.mark.django_db
def test_verify_email_with_the_mailed_key_then_login_returns_a_session_token():
    # given
    signup = _post(f"{AUTH}/signup", {"email": EMAIL, "password": PASSWORD})
    session = signup.json()["meta"]["session_token"]
    key = _verification_key(mail.outbox[0])

    # when
    verify = _post(f"{AUTH}/email/verify", {"key": key}, **{"X-Session-Token": session})
    login = _post(f"{AUTH}/login", {"email": EMAIL, "password": PASSWORD})

    # then: verification does not log in by itself (LOGIN_ON_EMAIL_CONFIRMATION is off) ...
    assert verify.status_code == 401
    assert verify.json() == {
        "status": 401,
        "data": {"flows": [{"id": "login"}, {"id": "signup"}]},
        "meta": {"is_authenticated": False},
    }
    assert User.objects.get(email=EMAIL).emailaddress_set.get().verified is True
    # ... and the password login that follows does
    user = User.objects.get(email=EMAIL)
    assert login.status_code == 200
    assert login.json() == {
        "status": 200,
        "data": {
            "user": {"id": user.pk, "display": EMAIL, "email": EMAIL, "has_usable_password": True},
            "methods": [{"method": "password", "at": ANY, "email": EMAIL}],
        },
        "meta": {"is_authenticated": True, "session_token": ANY},
    }


@pytest.mark.django_db
def test_verifying_with_a_wrong_key_is_refused():
    # given
    signup = _post(f"{AUTH}/signup", {"email": EMAIL, "password": PASSWORD})

    # when
    verify = _post(
        f"{AUTH}/email/verify",
        {"key": "not-a-key"},
        **{"X-Session-Token": signup.json()["meta"]["session_token"]},
    )

    # then
    assert verify.status_code == 400
    assert verify.json()["errors"][0]["code"] == "invalid_or_expired_key"
    assert User.objects.get(email=EMAIL).emailaddress_set.get().verified is False


@pytest.mark.django_db
def test_session_token_reaches_our_api_and_mints_an_api_token_that_revocation_kills():
    # given: a verified, logged-in app session
    _signed_up_and_verified()
    session = {"X-Session-Token": _login()}
    user = User.objects.get(email=EMAIL)

    # when: the session calls our API
    me = Client().get("/api/v1/me", headers=session)
    as_worker = _post("/api/v1/me/roles", {"role": "worker"}, **session)
    both = _post("/api/v1/me/roles", {"role": "requester"}, **session)
    created = _post("/api/v1/tokens", {"name": "my laptop"}, **session)

    # then
    assert me.status_code == 200
    assert me.json() == {"id": user.pk, "email": EMAIL, "is_staff": False, "roles": []}
    assert as_worker.json() == {"id": user.pk, "email": EMAIL, "is_staff": False, "roles": ["worker"]}
    assert both.json() == {
        "id": user.pk,
        "email": EMAIL,
        "is_staff": False,
        "roles": ["requester", "worker"],
    }
    assert created.status_code == 201
    body = created.json()
    token = ApiToken.objects.get(user=user)
    assert body == {
        "id": token.pk,
        "name": "my laptop",
        "prefix": body["key"][:8],
        "created_at": ANY,
        "revoked_at": None,
        "key": ANY,
    }
    assert token.key_hash == ApiToken.hash_key(body["key"])

    # and: the key works on its own, under both schemes, on role-guarded endpoints too
    for scheme in ("Token", "Bearer"):
        with_key = Client(headers={"Authorization": f"{scheme} {body['key']}"})
        assert with_key.get("/api/v1/me").json()["roles"] == ["requester", "worker"]
        assert with_key.get("/api/v1/work/batches").status_code == 200
        assert with_key.get("/api/v1/projects").status_code == 200

    # when: the session revokes the token
    revoked = Client().delete(f"/api/v1/tokens/{token.pk}", headers=session)

    # then: the key is refused, the session still works
    assert revoked.status_code == 204
    refused = Client().get("/api/v1/me", headers={"Authorization": f"Token {body['key']}"})
    assert refused.status_code == 401
    assert refused.json() == {
        "code": "authentication_failed",
        "message": "Invalid or revoked token.",
        "detail": {},
    }
    assert Client().get("/api/v1/me", headers=session).status_code == 200
    listed = Client().get("/api/v1/tokens", headers=session).json()
    assert [(t["id"], t["revoked_at"] is not None) for t in listed] == [(token.pk, True)]


@pytest.mark.django_db
def test_logout_ends_the_session_token():
    # given
    _signed_up_and_verified()
    session = {"X-Session-Token": _login()}

    # when
    logout = Client().delete(f"{AUTH}/session", headers=session)

    # then
    assert logout.status_code == 401
    assert logout.json()["meta"] == {"is_authenticated": False}
    after = Client().get("/api/v1/me", headers=session)
    assert after.status_code == 401
    assert after.json()["code"] == "not_authenticated"
