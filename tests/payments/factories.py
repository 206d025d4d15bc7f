"""Builders for payments tests: money put in place through the ledger service, never by hand."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.test import APIClient

from payments import stripe_client
from payments.enums import AccountKind, EntryKind, OwnerKind
from payments.models import PLATFORM_OWNER_ID, Account, FundingIntent
from payments.services.ledger import ledger_transfer, platform_account, requester_account, worker_account

_seq = iter(range(1, 10**9))


def fund_requester(requester_id: int, amount_cents: int) -> None:
    """As if a card payment of ``amount_cents`` had been credited."""
    ledger_transfer(
        debit=platform_account(AccountKind.STRIPE_CLEARING),
        credit=requester_account(requester_id, AccountKind.AVAILABLE),
        amount_cents=amount_cents,
        idempotency_key=f"test-fund:{next(_seq)}",
        kind=EntryKind.FUNDING,
    )


def fund_worker(worker_id: int, amount_cents: int) -> None:
    """Withdrawable earnings for a worker (from the clearing account, to keep the ledger at zero)."""
    ledger_transfer(
        debit=platform_account(AccountKind.STRIPE_CLEARING),
        credit=worker_account(worker_id, AccountKind.AVAILABLE),
        amount_cents=amount_cents,
        idempotency_key=f"test-earn:{next(_seq)}",
        kind=EntryKind.ADJUSTMENT,
    )


def balance(owner_kind: str, owner_id: int, kind: str) -> int:
    account = Account.objects.filter(owner_kind=owner_kind, owner_id=owner_id, kind=kind).first()
    return account.balance_cents if account else 0


def platform_balance(kind: str) -> int:
    return balance(OwnerKind.PLATFORM, PLATFORM_OWNER_ID, kind)


def post_event(client: APIClient, event: dict[str, Any], *, secret: str | None = None) -> Any:
    """POST ``event`` to the webhook view, signed with the SDK's own helper."""
    payload = json.dumps(event)
    header = stripe_client.webhook_sign(payload, secret=secret)
    return client.post(
        "/api/v1/stripe/webhook", data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )


def deliver(*events: dict[str, Any]) -> list[str]:
    """Post each event to the real webhook view, then process whatever is stored and pending (as
    the task and the beat sweep would); returns the new events' outcomes in delivery order."""
    from payments.models import StripeEvent
    from payments.tasks import stripe_events_process_pending

    client = APIClient()
    for event in events:
        assert post_event(client, event).status_code == 200
    stripe_events_process_pending()
    outcomes = dict(StripeEvent.objects.values_list("stripe_id", "outcome"))
    return [outcomes[event["id"]] for event in events]


def fund_by_card(client: APIClient, fake: Any, amount_cents: int) -> FundingIntent:
    """A real top-up: the funding API, the customer paying at the fake, the signed webhooks."""
    response = client.post(
        "/api/v1/funding",
        {"amount_cents": amount_cents},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"fund-{next(_seq)}",
    )
    assert response.status_code == 201, response.json()
    intent = FundingIntent.objects.get(pk=response.json()["id"])
    deliver(*fake.checkout_complete(intent.stripe_session_id))
    intent.refresh_from_db()
    assert intent.status == "succeeded"
    return intent


def balances() -> dict[str, int]:
    """Every non-zero balance, as ``{"requester:<id>:available": cents, "platform:refunds": cents}``:
    a test comparing it whole proves that nothing else moved."""
    out = {}
    for account in Account.objects.exclude(balance_cents=0).order_by("id"):
        owner = (
            "platform"
            if account.owner_kind == OwnerKind.PLATFORM
            else f"{account.owner_kind}:{account.owner_id}"
        )
        out[f"{owner}:{account.kind}"] = account.balance_cents
    return out
