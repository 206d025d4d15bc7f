"""The Stripe fake through the real SDK: idempotency, errors and injected faults.

These tests talk to the fake alone, with no database and no ledger, so none of our balances can
move; where the fake's own balance moves, it is asserted exactly."""

from __future__ import annotations

import json
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


def test_the_stripe_fake_command_serves_until_interrupted_then_closes(monkeypatch):
    from http.server import ThreadingHTTPServer
    from io import StringIO

    from django.core.management import call_command

    from payments.management.commands import stripe_fake as command

    made = []

    def make_server(*args, **kwargs):
        made.append(real_make_server(*args, **kwargs))
        return made[-1]

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    real_make_server = command.make_server
    monkeypatch.setattr(command, "make_server", make_server)
    monkeypatch.setattr(ThreadingHTTPServer, "serve_forever", interrupted)
    out = StringIO()

    call_command("stripe_fake", "--port", "0", "--webhook-url", "http://127.0.0.1:1/hook", stdout=out)

    [server] = made
    port = server.server_address[1]
    assert out.getvalue() == f"Stripe fake on http://127.0.0.1:{port} (Ctrl-C stops)\n"
    assert server.socket.fileno() == -1  # closed on the way out


AUTH = {"Authorization": "Bearer sk_test_x"}
SESSION = "mode=payment&line_items[0][quantity]=1&line_items[0][price_data][currency]=usd"


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "error"),
    [
        ("GET", "/v1/balance", "", {}, 401, {"type": "invalid_request_error"}),
        ("GET", "/v1/nothing", "", AUTH, 404, {"type": "invalid_request_error"}),
        ("GET", "/v1/transfers/tr_none", "", AUTH, 404, {"code": "resource_missing", "param": "id"}),
        ("POST", "/v1/checkout/sessions", "mode=payment", AUTH, 400, {"param": "line_items"}),
        ("POST", "/v1/checkout/sessions", SESSION, AUTH, 400, {"param": "unit_amount"}),
        (
            "POST",
            "/v1/checkout/sessions",
            SESSION + "&line_items[0][price_data][unit_amount]=ten",
            AUTH,
            400,
            {"code": "parameter_invalid_integer", "param": "unit_amount"},
        ),
        (
            "POST",
            "/v1/checkout/sessions",
            SESSION + "&line_items[0][price_data][unit_amount]=-1",
            AUTH,
            400,
            {"code": "parameter_invalid_integer", "param": "unit_amount"},
        ),
        (
            "POST",
            "/v1/checkout/sessions",
            "line_items[0][price_data][unit_amount]=100",
            AUTH,
            400,
            {"code": "parameter_missing", "param": "line_items[0][price_data][currency]"},
        ),
        ("POST", "/v1/refunds", "payment_intent=pi_none", AUTH, 404, {"param": "payment_intent"}),
        ("POST", "/v1/accounts", "type=weird", AUTH, 400, {"code": "parameter_invalid", "param": "type"}),
        (
            "POST",
            "/v1/transfers",
            "amount=5&currency=usd&destination=acct_none",
            AUTH,
            404,
            {"param": "destination"},
        ),
    ],
)
def test_the_fake_refuses_like_stripe(method, path, body, headers, status, error):
    fake = StripeFake()

    text, got, _ = fake.handle(method, f"https://api.stripe.com{path}", headers, body.encode())

    assert got == status
    assert error.items() <= json.loads(text)["error"].items()
    assert fake.objects == {}


def test_the_fake_balance_and_its_side_of_the_world_guard_their_inputs():
    fake = StripeFake(balance={"usd": 700})
    intent_id = "pi_1"
    fake.objects[intent_id] = {"id": intent_id, "object": "payment_intent"}
    fake.objects["tr_1"] = {"id": "tr_1", "object": "transfer", "amount": 500, "amount_reversed": 0}
    fake.objects["re_1"] = {"id": "re_1", "object": "refund", "status": "failed"}

    text, status, _ = fake.handle("GET", "https://api.stripe.com/v1/balance", AUTH, None)

    assert (status, json.loads(text)["available"]) == (200, [{"amount": 700, "currency": "usd"}])
    with pytest.raises(ValueError, match="unknown fault"):
        fake.fail_next("gremlins")
    with pytest.raises(ValueError, match="only a succeeded refund can fail"):
        fake.refund_fail("re_1")
    with pytest.raises(ValueError, match=r"can reverse 1\.\.500, not 600"):
        fake.transfer_reverse("tr_1", 600)
    assert fake.balance == {"usd": 700}


def test_transfer_find_pages_through_every_transfer_to_the_destination(stripe_fake):
    # given 102 transfers to one account (the one we look for is the oldest: on the second page)
    # and one to another account naming the same payout
    account = stripe_client.account_create(email="w@example.com", metadata={}, idempotency_key="a1")
    other = stripe_client.account_create(email="x@example.com", metadata={}, idempotency_key="a2")
    for acct in (account, other):
        stripe_fake.onboarding_complete(acct["id"])
    stripe_fake.balance["usd"] = 10_000

    def send(destination: str, payout_id: int) -> dict:
        return stripe_client.transfer_create(
            amount_cents=1,
            currency="USD",
            destination=destination,
            metadata={"payout_id": str(payout_id)},
            idempotency_key=f"payout:{payout_id}:{destination}",
        )

    wanted = send(account["id"], 1)
    for payout_id in range(2, 103):
        send(account["id"], payout_id)
    send(other["id"], 1)

    # when we look for payout 1's transfer to the account, and for one never made
    found = stripe_client.transfer_find(destination=account["id"], payout_id="1", created_gte=0)
    missing = stripe_client.transfer_find(destination=account["id"], payout_id="999", created_gte=0)

    # then the first is found past the first page of 100; the second is not there
    assert found["id"] == wanted["id"]
    assert missing is None
    pages = [r for r in stripe_fake.requests if r[:2] == ("GET", "/v1/transfers")]
    assert len(pages) == 4  # two pages per search
    assert stripe_fake.balance == {"usd": 10_000 - 103}
