"""API token authentication: ``Authorization: Token <key>`` or ``Authorization: Bearer <key>``."""

from __future__ import annotations

from typing import Any

from django.db import connection
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from crowd.models import Worker

from .models import ApiToken, Requester, User

KEYWORDS = {b"token", b"bearer"}

# Every API request runs this, so it is one hand-written query: the token, its user and both role
# profiles. Compiling the equivalent ORM query cost more than PostgreSQL answering it.
_TOKEN_SQL = f"""
SELECT t.id, u.id, u.email, u.is_active, u.is_staff, u.is_superuser, r.id, w.id
FROM {ApiToken._meta.db_table} t
JOIN {User._meta.db_table} u ON u.id = t.user_id
LEFT JOIN {Requester._meta.db_table} r ON r.user_id = u.id
LEFT JOIN {Worker._meta.db_table} w ON w.user_id = u.id
WHERE t.key_hash = %s AND t.revoked_at IS NULL
"""


def _partial(model: type, **values: Any) -> Any:
    """A model instance loaded with some fields; the others stay deferred (fetched on access),
    so a later ``save()`` can never overwrite them with blanks."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(connection.alias, names, [values[n] for n in names])


def _user_from_row(row: tuple[Any, ...]) -> tuple[User, ApiToken]:
    token_id, user_id, email, is_active, is_staff, is_superuser, requester_id, worker_id = row
    user = _partial(
        User, id=user_id, email=email, is_active=is_active, is_staff=is_staff, is_superuser=is_superuser
    )
    # Prime the reverse one-to-one caches so ``user.requester`` / ``user.worker`` cost no query
    # (a cached None makes the access raise DoesNotExist, as without a profile).
    requester = _partial(Requester, id=requester_id, user_id=user_id) if requester_id else None
    worker = _partial(Worker, id=worker_id, user_id=user_id) if worker_id else None
    User.requester.related.set_cached_value(user, requester)
    User.worker.related.set_cached_value(user, worker)
    return user, _partial(ApiToken, id=token_id, user_id=user_id)


def user_for_key(key: str) -> tuple[User, ApiToken] | None:
    """The active user (role profiles cached on it) behind an unrevoked key, else ``None``."""
    with connection.cursor() as cursor:
        cursor.execute(_TOKEN_SQL, [ApiToken.hash_key(key)])
        row = cursor.fetchone()
    if row is None:
        return None
    user, token = _user_from_row(row)
    return (user, token) if user.is_active else None


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Looks the key's SHA-256 up; a revoked token or an inactive user is refused (401)."""

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        auth = authentication.get_authorization_header(request).split()
        if not auth or auth[0].lower() not in KEYWORDS:
            return None
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected '<scheme> <key>'.")
        try:
            key = auth[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        found = user_for_key(key)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        return found

    def authenticate_header(self, request: Request) -> str:
        return 'Token realm="api"'
