"""Payment errors beyond marketplace.errors: the payment provider being unreachable is not our 4xx."""

from __future__ import annotations

from marketplace.errors import ApplicationError, Conflict


class PaymentProviderUnavailable(ApplicationError):
    """Stripe timed out or answered 5xx; retrying the same request (same Idempotency-Key) is safe."""

    status_code = 503
    default_code = "payment_provider_unavailable"


class InsufficientFunds(Conflict):
    default_code = "insufficient_funds"


class LedgerImbalance(Exception):
    """Reconciliation found a balance that disagrees with its entries, or a ledger not summing to 0."""


class EventNotReady(Exception):
    """A webhook event refers to an object we do not know yet (or not in the state it assumes);
    process it again later."""
