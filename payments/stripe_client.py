"""The only module that imports ``stripe``: builds the client, calls it, and translates its errors.

Services call the small functions below with our own idempotency keys and get plain dicts back;
they catch ``StripeTransientError`` (timeouts, 5xx, rate limits: retrying with the same key is safe)
and ``StripePermanentError`` (Stripe refused: retrying changes nothing) and never see SDK types.

``STRIPE_API_BASE`` points the SDK at the project's Stripe fake served on loopback (demo, Celery);
tests plug the fake in below the SDK with ``use_handler``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import stripe
from django.conf import settings

# A handler answers one HTTP exchange in-process: (method, url, headers, body) → (body, status,
# headers). Raising ConnectionError means "no reply arrived" (timeout, reset, lost reply).
Handler = Callable[[str, str, Mapping[str, str], str | None], tuple[str, int, Mapping[str, str]]]


class StripeTransientError(Exception):
    """Stripe could not be reached, failed on its side, or was busy with the same idempotency key
    (409); the same call may be retried."""


class StripePermanentError(Exception):
    """Stripe refused the request (4xx). ``code`` is Stripe's error code when it gave one."""

    def __init__(self, message: str, *, code: str = "", http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class SignatureInvalid(Exception):
    """A webhook body whose Stripe-Signature header does not verify with our secret."""


class PayloadMalformed(Exception):
    """A webhook body whose signature verifies but which is not a Stripe event: ``reason`` says
    why, in words for the sender."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandlerHttpClient(stripe.HTTPClient):
    """An SDK http client that hands each request to an in-process handler (the Stripe fake)."""

    name = "crowdmarket-handler"

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self._handler = handler

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None, **_: Any
    ) -> tuple[str, int, Mapping[str, str]]:
        try:
            return self._handler(method, url, dict(headers or {}), post_data)
        except ConnectionError as exc:
            raise stripe.APIConnectionError(f"Network error: {exc}", should_retry=True) from exc

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never streamed
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - required by stripe.HTTPClient; the SDK never calls it
        pass

    def _sleep_time_seconds(self, num_retries: int) -> float:
        # In-process there is no network to back off from; the SDK's retry count still applies.
        return 0.0


_lock = threading.Lock()
_client: stripe.StripeClient | None = None


def _build(http_client: stripe.HTTPClient | None = None) -> stripe.StripeClient:
    base = settings.STRIPE_API_BASE
    addresses: Any = {"api": base, "connect": base} if base else None
    return stripe.StripeClient(
        settings.STRIPE_API_KEY or "sk_test_unset",
        http_client=http_client,
        base_addresses=addresses,
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def client() -> stripe.StripeClient:
    global _client
    with _lock:
        if _client is None:
            _client = _build()
        return _client


def use_handler(handler: Handler | None) -> None:
    """Route every call through ``handler`` (tests); ``None`` goes back to the configured HTTP API."""
    global _client
    with _lock:
        _client = _build(HandlerHttpClient(handler)) if handler is not None else None


@contextmanager
def _translated_errors() -> Iterator[None]:
    """SDK errors as ours: StripeTransientError (retry with the same key) or StripePermanentError."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise StripeTransientError(str(exc)) from exc
    except stripe.IdempotencyError as exc:
        # Our keys derive from row ids, so this is a bug of ours, not something to retry.
        raise StripePermanentError(str(exc), code="idempotency_error", http_status=exc.http_status) from exc
    except stripe.StripeError as exc:
        status = exc.http_status
        # 409: another request with this idempotency key is still executing at Stripe (or a lock
        # timed out). Nothing was done for this one and the other may yet succeed, so it must be
        # retried, never taken as a refusal that returns the money.
        if status is None or status >= 500 or status == 409:
            raise StripeTransientError(str(exc)) from exc
        raise StripePermanentError(
            exc.user_message or str(exc), code=exc.code or "", http_status=status
        ) from exc


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    with _translated_errors():
        return fn(*args, **kwargs).to_dict()


def checkout_session_create(
    *, amount_cents: int, currency: str, name: str, metadata: dict[str, str], idempotency_key: str
) -> dict[str, Any]:
    return _call(
        client().v1.checkout.sessions.create,
        params={
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": amount_cents,
                        "product_data": {"name": name},
                    },
                }
            ],
            "success_url": settings.STRIPE_SUCCESS_URL,
            "cancel_url": settings.STRIPE_CANCEL_URL,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
        },
        options={"idempotency_key": idempotency_key},
    )


def account_create(*, email: str, metadata: dict[str, str], idempotency_key: str) -> dict[str, Any]:
    return _call(
        client().v1.accounts.create,
        params={
            "type": "express",
            "email": email,
            "capabilities": {"transfers": {"requested": True}},
            "metadata": metadata,
        },
        options={"idempotency_key": idempotency_key},
    )


def account_link_create(*, account_id: str) -> dict[str, Any]:
    return _call(
        client().v1.account_links.create,
        params={
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": settings.STRIPE_ONBOARDING_REFRESH_URL,
            "return_url": settings.STRIPE_ONBOARDING_RETURN_URL,
        },
    )


def transfer_create(
    *, amount_cents: int, currency: str, destination: str, metadata: dict[str, str], idempotency_key: str
) -> dict[str, Any]:
    return _call(
        client().v1.transfers.create,
        params={
            "amount": amount_cents,
            "currency": currency.lower(),
            "destination": destination,
            "metadata": metadata,
        },
        options={"idempotency_key": idempotency_key},
    )


def transfer_find(*, destination: str, payout_id: str, created_gte: int) -> dict[str, Any] | None:
    """The transfer to ``destination`` whose metadata names ``payout_id``, made at or after
    ``created_gte`` (Unix seconds), or None. Lists every page: Stripe cannot filter by metadata."""
    with _translated_errors():
        page = client().v1.transfers.list(
            params={"destination": destination, "created": {"gte": created_gte}, "limit": 100}
        )
        for found in page.auto_paging_iter():
            transfer = found.to_dict()
            if (transfer.get("metadata") or {}).get("payout_id") == payout_id:
                return transfer
    return None


def refund_create(
    *, payment_intent: str, amount_cents: int, metadata: dict[str, str], idempotency_key: str
) -> dict[str, Any]:
    return _call(
        client().v1.refunds.create,
        params={"payment_intent": payment_intent, "amount": amount_cents, "metadata": metadata},
        options={"idempotency_key": idempotency_key},
    )


def webhook_event_parse(payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """The verified event as a plain dict. Raises SignatureInvalid on a bad or stale signature, and
    PayloadMalformed when the signature verifies but the body is not an event object."""
    try:
        stripe.Webhook.construct_event(
            payload,
            signature_header,
            settings.STRIPE_WEBHOOK_SECRET,
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE,
        )
    except stripe.SignatureVerificationError as exc:
        raise SignatureInvalid(str(exc)) from exc
    # The SDK verifies the signature first, then decodes the JSON and builds its event object;
    # these are how the second and third steps fail on a signed body that is not an event.
    except RecursionError:
        raise PayloadMalformed("The event is nested too deeply.") from None
    except ValueError as exc:
        raise PayloadMalformed(f"The event is not valid JSON: {exc}.") from exc
    except (AttributeError, TypeError) as exc:
        raise PayloadMalformed("The event is not a JSON object.") from exc
    return json.loads(payload)


def webhook_sign(payload: str, *, secret: str | None = None, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``payload``, made by the SDK's own signing helper."""
    return stripe.WebhookSignature.generate_signature_header(
        payload, secret or settings.STRIPE_WEBHOOK_SECRET, timestamp=timestamp
    )
