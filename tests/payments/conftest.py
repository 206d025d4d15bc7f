"""Payments fixtures: a fresh Stripe fake under the real SDK for every test that asks for one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from payments import stripe_client
from payments.testing.stripe_fake import StripeFake


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    fake = StripeFake()
    stripe_client.use_handler(fake.handle)
    yield fake
    stripe_client.use_handler(None)
