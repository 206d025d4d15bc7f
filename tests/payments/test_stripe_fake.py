"""The Stripe fake through the real SDK: idempotency, errors and injected faults."""

from __future__ import annotations

import threading

import pytest
from django.test import override_settings

from payments import stripe_client
from payments.testing.stripe_fake import StripeFake, decode_form, make_server


def _session(key: str, amount: int = 1000) -> dict:
    return stripe_client.checkout_session_create(
        amount_cents=amount, currency="USD", name="top-up", metadata={"funding_id": "1"}, idempotency_key=key
    )


def _sessions(fake: StripeFake) -> list[dict]:
    return [o for o in fake.objects.values() if o["object"] == "checkout.session"]


def test_same_idempotency_key_and_params_replays_the_first_object(stripe_fake):
    first = _session("funding:1")
    again = _session("funding:1")

    assert again["id"] == first["id"]
    assert (
        first["amount_total"] == 1000
        and first["currency"] == "usd"
        and first["metadata"] == {"funding_id": "1"}
    )
    assert len(_sessions(stripe_fake)) == 1


def test_same_idempotency_key_other_params_is_an_idempotency_error(stripe_fake):
    _session("funding:1", 1000)

    with pytest.raises(stripe_client.StripePermanentError) as err:
        _session("funding:1", 2000)

    assert (err.value.code, err.value.http_status) == ("idempotency_error", 400)
    assert len(_sessions(stripe_fake)) == 1


@pytest.mark.parametrize("fault", ["timeout", "5xx", "lost_reply"])
def test_one_fault_is_retried_by_the_sdk_with_the_same_key_and_creates_one_object(stripe_fake, fault):
    stripe_fake.fail_next(fault, path_prefix="/v1/checkout/sessions")

    session = _session("funding:9")

    assert len(_sessions(stripe_fake)) == 1
    assert _sessions(stripe_fake)[0]["id"] == session["id"]
    posts = [r for r in stripe_fake.requests if r[0] == "POST"]
    assert len(posts) == 2


@override_settings(STRIPE_MAX_NETWORK_RETRIES=0)
@pytest.mark.parametrize("fault", ["timeout", "5xx", "lost_reply"])
def test_faults_without_retries_surface_as_transient_errors(fault):
    fake = StripeFake()
    stripe_client.use_handler(fake.handle)
    try:
        fake.fail_next(fault)
        with pytest.raises(stripe_client.StripeTransientError):
            _session("funding:3")
        # "lost_reply" executed the request: a retry with the key gets that very object back.
        executed = len(_sessions(fake))
        session = _session("funding:3")
    finally:
        stripe_client.use_handler(None)
    assert executed == (1 if fault == "lost_reply" else 0)
    assert len(_sessions(fake)) == 1 and _sessions(fake)[0]["id"] == session["id"]


def test_errors_have_stripe_shapes(stripe_fake):
    with pytest.raises(stripe_client.StripePermanentError) as missing:
        stripe_client.account_link_create(account_id="acct_nope")
    with pytest.raises(stripe_client.StripePermanentError) as small:
        _session("k-small", amount=10)
    assert (missing.value.code, missing.value.http_status) == ("resource_missing", 404)
    assert (small.value.code, small.value.http_status) == ("amount_too_small", 400)


def test_transfers_need_an_onboarded_destination_and_enough_balance(stripe_fake):
    account = stripe_client.account_create(email="w@example.com", metadata={}, idempotency_key="acct:1")
    kwargs = {"amount_cents": 500, "currency": "USD", "destination": account["id"], "metadata": {}}

    with pytest.raises(stripe_client.StripePermanentError) as not_ready:
        stripe_client.transfer_create(idempotency_key="t1", **kwargs)
    stripe_fake.onboarding_complete(account["id"])
    with pytest.raises(stripe_client.StripePermanentError) as no_money:
        stripe_client.transfer_create(idempotency_key="t2", **kwargs)
    session = _session("s", 800)
    stripe_fake.checkout_complete(session["id"])
    transfer = stripe_client.transfer_create(idempotency_key="t3", **kwargs)

    assert not_ready.value.code == "insufficient_capabilities_for_transfer"
    assert no_money.value.code == "balance_insufficient"
    assert (transfer["amount"], transfer["destination"]) == (500, account["id"])
    assert stripe_fake.balance == {"usd": 300}


def test_refunds_draw_on_the_charge_and_the_balance(stripe_fake):
    session = _session("s", 1000)
    stripe_fake.checkout_complete(session["id"])
    pi = stripe_fake.objects[session["id"]]["payment_intent"]

    refund = stripe_client.refund_create(
        payment_intent=pi, amount_cents=600, metadata={}, idempotency_key="r1"
    )
    with pytest.raises(stripe_client.StripePermanentError) as too_much:
        stripe_client.refund_create(payment_intent=pi, amount_cents=401, metadata={}, idempotency_key="r2")

    assert (refund["amount"], refund["status"]) == (600, "succeeded")
    assert too_much.value.code == "amount_too_large"
    assert stripe_fake.balance == {"usd": 400}


def test_decode_form_rebuilds_nested_params():
    assert decode_form("a[b][0][c]=1&a[b][0][d]=x&a[b][1][c]=2&m[k]=v&t=express") == {
        "a": {"b": [{"c": "1", "d": "x"}, {"c": "2"}]},
        "m": {"k": "v"},
        "t": "express",
    }


def test_the_fake_also_serves_the_real_sdk_http_client_over_loopback():
    fake = StripeFake()
    server = make_server(fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with override_settings(STRIPE_API_BASE=base, STRIPE_MAX_NETWORK_RETRIES=2):
            stripe_client.use_handler(None)  # the SDK's own HTTP client, pointed at base_addresses
            fake.fail_next("lost_reply")
            session = _session("funding:77")
            again = _session("funding:77")
    finally:
        stripe_client.use_handler(None)
        server.shutdown()
        server.server_close()
    assert session["id"] == again["id"]
    assert len(_sessions(fake)) == 1
