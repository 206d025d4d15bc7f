"""The demo's money loop over real HTTP: the SDK talks to the Stripe fake's loopback server, the
customer "pays" on the fake's checkout page, and the fake posts the signed webhook to the running
site, which credits the requester exactly once."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from django.test import override_settings

from payments import stripe_client
from payments.enums import AccountKind, OwnerKind
from payments.testing.stripe_fake import StripeFake, make_server
from tests.factories import RequesterFactory, client_for
from tests.payments.factories import balance

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_server(live_server) -> Iterator[tuple[StripeFake, str]]:
    fake = StripeFake()
    server = make_server(fake, webhook_url=f"{live_server.url}/api/v1/stripe/webhook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with override_settings(STRIPE_API_BASE=base):
        stripe_client.use_handler(None)  # rebuild the client against the server
        yield fake, base
    stripe_client.use_handler(None)
    server.shutdown()
    server.server_close()


def test_paying_on_the_fake_checkout_page_credits_the_requester_once(fake_server, live_server):
    # given a requester who asked for a 25.00 top-up through the real SDK
    _fake, base = fake_server
    requester = RequesterFactory()
    client = client_for(requester.user)
    created = client.post("/api/v1/funding", {"amount_cents": 2500}, format="json")
    assert created.status_code in (200, 201), created.content
    url = created.json()["checkout_url"]
    assert url.startswith(f"{base}/pay/")

    # when the customer pays on the page (and a second visit finds it already paid)
    with urllib.request.urlopen(url, timeout=30) as page:
        first = (page.status, page.read().decode())
    try:
        urllib.request.urlopen(url, timeout=30)
        second = 200
    except urllib.error.HTTPError as exc:
        second = exc.code

    # then the site received Stripe's signed events and credited the money once
    assert first[0] == 200 and "answers [200, 200]" in first[1]
    assert second == 404
    assert balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE) == 2500
