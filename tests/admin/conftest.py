"""Admin fixtures: a superuser and a test client logged in as them (the real admin site)."""

from __future__ import annotations

import pytest
from django.test import Client

from marketplace.models import User
from tests.payments.conftest import stripe_fake  # noqa: F401  (the Stripe fake, for payouts)


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("admin@example.com", "pw-Secret-123")


@pytest.fixture
def staff(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client
