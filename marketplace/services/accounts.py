"""Users, roles and API tokens."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from crowd.models import Worker

from ..enums import Role
from ..errors import NotFound
from ..models import ApiToken, Requester, User


def user_create(*, email: str, password: str | None = None, roles: list[str] | None = None) -> User:
    """Create a user (verified e-mail, so they can log in) with the given role profiles."""
    from allauth.account.models import EmailAddress

    with transaction.atomic():
        user = User.objects.create_user(email=email, password=password)
        EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
        for role in roles or []:
            role_grant(user=user, role=role)
    return user


def role_grant(*, user: User, role: str) -> None:
    """Give the user a requester or worker profile. Idempotent: granting twice is harmless."""
    if role == Role.REQUESTER:
        Requester.objects.get_or_create(user=user)
    elif role == Role.WORKER:
        Worker.objects.get_or_create(user=user)
    else:
        raise ValueError(f"unknown role {role!r}")


def token_create(*, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Create an API token. Returns the row and the plain key, which is never stored or shown again."""
    key = ApiToken.generate_key()
    token = ApiToken.objects.create(user=user, name=name, prefix=key[:8], key_hash=ApiToken.hash_key(key))
    return token, key


def token_revoke(*, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's tokens; revoking twice is harmless. Another user's token is 404."""
    token = ApiToken.objects.filter(user=user, id=token_id).first()
    if token is None:
        raise NotFound("Token not found.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
