"""Pure money arithmetic in integer minor units. No floats, no Django."""

from __future__ import annotations

SUPPORTED_CURRENCIES = ("USD",)
BPS_DENOMINATOR = 10_000


def check_amount(amount_cents: object) -> int:
    """The amount if it is a positive int (bools and floats are refused), else ValueError."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise ValueError(f"amount must be a positive integer of minor units, got {amount_cents!r}")
    return amount_cents


def fee_cents(amount_cents: int, fee_bps: int) -> int:
    """The platform fee on ``amount_cents`` at ``fee_bps`` basis points, rounded half up."""
    if amount_cents < 0 or fee_bps < 0:
        raise ValueError("amount and fee rate must not be negative")
    return (amount_cents * fee_bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR


def to_stripe_currency(currency: str) -> str:
    return currency.lower()


def from_stripe_currency(currency: str) -> str:
    return currency.upper()
