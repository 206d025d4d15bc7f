"""Requester funding through Stripe Checkout, credited once by the webhook."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.errors import Conflict, ValidationFailed
from marketplace.models import Requester

from .. import stripe_client
from ..enums import AccountKind, EntryKind, FundingStatus
from ..errors import PaymentProviderUnavailable
from ..models import FundingIntent
from ..money import SUPPORTED_CURRENCIES
from .escrow import requester_check_not_frozen
from .ledger import ledger_transfer, platform_account, requester_account


def _check_amount(amount_cents: int, currency: str) -> None:
    low, high = settings.FUNDING_MINIMUM_CENTS, settings.FUNDING_MAXIMUM_CENTS
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or not low <= amount_cents <= high:
        raise ValidationFailed(
            "Invalid amount.", detail={"amount_cents": [f"Must be an integer from {low} to {high}."]}
        )
    if currency not in SUPPORTED_CURRENCIES:
        raise ValidationFailed(
            "Unsupported currency.",
            detail={"currency": [f"Choose one of: {', '.join(SUPPORTED_CURRENCIES)}."]},
        )


def _intent_for_key(
    *, requester: Requester, amount_cents: int, currency: str, client_key: str
) -> FundingIntent:
    """The intent for this request: a new row, or the one a retried request (same key) made."""
    if client_key:
        found = FundingIntent.objects.filter(requester=requester, client_key=client_key).first()
        if found is not None:
            if (found.amount_cents, found.currency) != (amount_cents, currency):
                raise Conflict(
                    "This Idempotency-Key was used for a different funding request.",
                    code="idempotency_key_reused",
                    detail={"funding_id": found.pk},
                )
            return found
    try:
        with transaction.atomic():
            return FundingIntent.objects.create(
                requester=requester, amount_cents=amount_cents, currency=currency, client_key=client_key
            )
    except IntegrityError:
        # Two requests with one key raced; the winner's row answers both.
        return _intent_for_key(
            requester=requester, amount_cents=amount_cents, currency=currency, client_key=client_key
        )


def funding_create(
    *, requester: Requester, amount_cents: int, currency: str = "USD", idempotency_key: str = ""
) -> FundingIntent:
    """Create a Checkout Session for a top-up; the money arrives later through the webhook.

    Three phases: the FundingIntent row (committed), the Stripe call outside any transaction with
    key ``funding:<id>``, then the session saved on the row. A retry with the same
    ``idempotency_key`` after a timeout resumes the same intent and gets the same session.
    Raises PaymentProviderUnavailable (503) when Stripe cannot be reached.
    """
    _check_amount(amount_cents, currency)
    requester_check_not_frozen(requester_id=requester.pk)
    intent = _intent_for_key(
        requester=requester, amount_cents=amount_cents, currency=currency, client_key=idempotency_key
    )
    if intent.status != FundingStatus.CREATED:
        return intent
    try:
        session = stripe_client.checkout_session_create(
            amount_cents=intent.amount_cents,
            currency=intent.currency,
            name="Crowdmarket balance top-up",
            metadata={"funding_id": str(intent.pk), "requester_id": str(requester.pk)},
            idempotency_key=f"funding:{intent.pk}",
        )
    except stripe_client.StripeTransientError as exc:
        raise PaymentProviderUnavailable(
            "Stripe is unreachable; retry with the same Idempotency-Key.", detail={"funding_id": intent.pk}
        ) from exc
    except stripe_client.StripePermanentError as exc:
        FundingIntent.objects.filter(pk=intent.pk, status=FundingStatus.CREATED).update(
            status=FundingStatus.FAILED
        )
        raise ValidationFailed(
            "Stripe refused the payment request.", code="payment_refused", detail={"stripe_code": exc.code}
        ) from exc
    FundingIntent.objects.filter(pk=intent.pk, status=FundingStatus.CREATED).update(
        status=FundingStatus.OPEN, stripe_session_id=session["id"], checkout_url=session.get("url") or ""
    )
    intent.refresh_from_db()
    return intent


def funding_credit(
    *, funding_id: int, amount_cents: int, currency: str, payment_intent_id: str = "", session_id: str = ""
) -> bool:
    """Credit a paid funding to its requester, exactly once (ledger key ``funding:<id>``).

    Called for both ``checkout.session.completed`` and ``payment_intent.succeeded``, in either
    order and any number of times. Returns whether this call credited the money. An amount or
    currency that differs from the intent is refused rather than trusted.
    """
    with transaction.atomic():
        intent = FundingIntent.objects.select_for_update().filter(pk=funding_id).first()
        if intent is None:
            raise Conflict("Unknown funding.", code="funding_unknown", detail={"funding_id": funding_id})
        if (intent.amount_cents, intent.currency) != (amount_cents, currency):
            raise Conflict(
                "Paid amount differs from the funding.",
                code="funding_amount_mismatch",
                detail={"expected": intent.amount_cents, "paid": amount_cents, "currency": currency},
            )
        fields = []
        if payment_intent_id and not intent.stripe_payment_intent_id:
            intent.stripe_payment_intent_id = payment_intent_id
            fields.append("stripe_payment_intent_id")
        if session_id and not intent.stripe_session_id:
            intent.stripe_session_id = session_id
            fields.append("stripe_session_id")
        credited = intent.status != FundingStatus.SUCCEEDED
        if credited:
            ledger_transfer(
                debit=platform_account(AccountKind.STRIPE_CLEARING, intent.currency),
                credit=requester_account(intent.requester_id, AccountKind.AVAILABLE, intent.currency),
                amount_cents=intent.amount_cents,
                idempotency_key=f"funding:{intent.pk}",
                kind=EntryKind.FUNDING,
                reference=f"funding:{intent.pk}",
            )
            intent.status, intent.succeeded_at = FundingStatus.SUCCEEDED, timezone.now()
            fields += ["status", "succeeded_at"]
        if fields:
            intent.save(update_fields=fields)
    return credited
