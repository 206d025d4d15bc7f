"""A correctly signed Stripe webhook whose body we cannot take is a 400 (issue 13, part 2).

The signature is made with the real ``stripe`` library (``stripe_client.webhook_sign``), so each
body below gets past verification and used to fail after it: a 500, nothing stored.
"""

from __future__ import annotations

import json

import pytest

from payments import stripe_client
from payments.models import StripeEvent
from tests.payments.factories import balances

pytestmark = pytest.mark.django_db

EVENT = {"id": "evt_1", "object": "event", "type": "charge.refunded", "created": 1_700_000_000}


def _event(**changes) -> str:
    return json.dumps({**EVENT, "data": {"object": {"id": "ch_1"}}, **changes})


def _post(anon, body: str):
    return anon.post(
        "/api/v1/stripe/webhook",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_client.webhook_sign(body),
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[]", "The event is not a JSON object."),
        ("null", "The event is not a JSON object."),
        ('"evt_1"', "The event is not a JSON object."),
        ("{}", "The event has no id (a string of 1 to 255 characters)."),
        ('{"id": 5, "type": "x"}', "The event has no id (a string of 1 to 255 characters)."),
        ('{"id": "evt_1"}', "The event has no type (a string of 1 to 100 characters)."),
        (
            json.dumps({"id": "evt_1", "type": "x", "data": {"object": {}}}),
            "The event has no created timestamp (a non-negative 64-bit integer).",
        ),
        (_event(created=2**63), "The event has no created timestamp (a non-negative 64-bit integer)."),
        (_event(data={"object": []}), "The event has no data.object."),
        (_event(data=None), "The event has no data.object."),
        (
            _event(data={"object": {"id": "ch_\x00"}}),
            "The event contains the NUL character (\\u0000) or an unpaired surrogate.",
        ),
        (_event()[:-1] + ', "amount": NaN}', "The event is not valid JSON: NaN is not a JSON number."),
        (
            _event()[:-1] + ', "amount": 1e400}',
            "The event is not valid JSON: the number 1e400 is out of range (at most about 1.8e308).",
        ),
        (
            _event()[:-1] + ', "x": ' + "[" * 200 + "]" * 200 + "}",
            "The event is not valid JSON: nested deeper than 64 levels.",
        ),
        (_event()[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}", "The event is nested too deeply."),
    ],
    ids=[
        "array",
        "null",
        "string",
        "empty",
        "id not a string",
        "no type",
        "no created",
        "created too big",
        "object not an object",
        "no data",
        "NUL",
        "NaN",
        "1e400",
        "200 deep",
        "5000 deep",
    ],
)
def test_a_signed_body_that_is_not_an_event_is_400_and_nothing_is_stored(body, message, anon):
    # when
    response = _post(anon, body)

    # then
    assert response.status_code == 400
    assert response.json() == {"code": "malformed_event", "message": message, "detail": {}}
    assert StripeEvent.objects.count() == 0
    assert balances() == {}


def test_a_minimal_signed_event_is_stored(anon):
    response = _post(anon, _event())

    assert response.status_code == 200
    assert response.json() == {"id": "evt_1", "duplicate": False}
    assert StripeEvent.objects.get().payload == json.loads(_event())
