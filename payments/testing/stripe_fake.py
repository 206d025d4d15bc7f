"""A stateful, project-owned Stripe fake: the endpoints we use, with Stripe's shapes and semantics.

It answers raw HTTP exchanges, so it sits *below* the real SDK: in tests through
``stripe_client.use_handler(fake.handle)``; for the demo and Celery as a loopback HTTP server
(``serve``; ``manage.py stripe_fake``) reached through ``STRIPE_API_BASE``.

Implemented: Checkout Sessions (create, retrieve), PaymentIntents (retrieve), Refunds (create),
Accounts (create express, retrieve), Account Links (create), Transfers (create, retrieve, list),
Balance (retrieve). Stripe's idempotency rules (same key + same request → the stored reply with
``Idempotent-Replayed: true``; same key + another request → 400 ``idempotency_error``; 5xx
replies are not stored), error bodies ``{"error": {"type", "code", "message", "param"}}``, a
platform balance that transfers and refunds draw on, and fault injection (``fail_next``: timeout,
5xx, lost reply, 409 conflict; ``refuse_next``: a 4xx refusal; ``refund_fail_next``: a refund
created already ``failed``). Test helpers play the
customer and Stripe's side (``checkout_complete``, ``onboarding_complete``, ``dispute_create``,
``refund_fail``, ``transfer_reverse``) and build events; creating a refund records ``refund.created``
and ``charge.refunded`` in ``events``. Tests post events with ``tests.payments.factories.post_event``.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_VERSION = "2025-01-01.fake"

# Fault kinds: "timeout" (no reply, nothing done), "5xx" (an error reply, nothing done),
# "lost_reply" (the request is executed and stored, then the reply is lost), "conflict" (409
# ``idempotency_key_in_use``: another request with the same key is still executing; nothing done,
# nothing stored, as Stripe answers a concurrent duplicate). ``refuse_next`` injects a 4xx refusal.
FAULTS = ("timeout", "5xx", "lost_reply", "conflict")


@dataclass
class Fault:
    kind: str
    path_prefix: str
    remaining: int
    error: StripeFakeError | None = None


@dataclass
class StoredReply:
    fingerprint: tuple[str, str, tuple[tuple[str, str], ...]]
    status: int
    body: str


class StripeFakeError(Exception):
    def __init__(self, status: int, type_: str, message: str, code: str = "", param: str = "") -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.code, self.param = status, type_, message, code, param

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return {"error": error}


def _missing(kind: str, ident: str, param: str = "id") -> StripeFakeError:
    return StripeFakeError(
        404, "invalid_request_error", f"No such {kind}: '{ident}'", code="resource_missing", param=param
    )


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0][c]=v``) back to nested dicts and lists."""
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", raw_key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt: Any = value if last else ({} if not parts[i + 1].isdigit() else [])
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                if node[index] is None or last:
                    node[index] = nxt
                node = node[index]
            else:
                if part not in node or last:
                    node[part] = nxt
                node = node[part]
    return root


def _int_param(params: Mapping[str, Any], name: str, *, minimum: int = 1) -> int:
    value = params.get(name)
    if value is None:
        raise StripeFakeError(
            400, "invalid_request_error", f"Missing required param: {name}.", "parameter_missing", name
        )
    try:
        number = int(value)
    except ValueError:
        raise StripeFakeError(
            400, "invalid_request_error", f"Invalid integer: {value}", "parameter_invalid_integer", name
        ) from None
    if number < minimum:
        raise StripeFakeError(
            400,
            "invalid_request_error",
            f"This value must be greater than or equal to {minimum}.",
            "parameter_invalid_integer",
            name,
        )
    return number


@dataclass
class StripeFake:
    """Stripe's state for one test (or one demo server). Thread-safe: the server is threaded."""

    api_key_prefix: str = "sk_test_"
    balance: dict[str, int] = field(default_factory=dict)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    # Served as a demo server: where the customer-facing pages live (checkout, onboarding).
    # Empty (tests): the URLs look like Stripe's own.
    public_base: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._replies: dict[str, StoredReply] = {}
        self._faults: list[Fault] = []
        self._refund_failures: list[str] = []
        self._ids = itertools.count(1)

    # --- fault injection -------------------------------------------------------------------------

    def fail_next(self, kind: str, *, path_prefix: str = "/v1/", times: int = 1) -> None:
        """Make the next ``times`` requests under ``path_prefix`` fail as ``kind`` (see FAULTS)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.append(Fault(kind, path_prefix, times))

    def refuse_next(
        self,
        *,
        path_prefix: str,
        code: str,
        status: int = 400,
        type_: str = "invalid_request_error",
        message: str = "Refused (injected).",
        times: int = 1,
    ) -> None:
        """Make the next ``times`` requests under ``path_prefix`` answer a Stripe error (a 402
        ``card_error``, a 400 ``invalid_request_error``...). Nothing is done and nothing is stored,
        as when Stripe refuses a request before executing it."""
        with self._lock:
            self._faults.append(
                Fault("refuse", path_prefix, times, StripeFakeError(status, type_, message, code=code))
            )

    def refund_fail_next(self, reason: str = "expired_or_canceled_card") -> None:
        """The next refund Stripe creates fails at once: it answers a refund with status ``failed``
        and this ``failure_reason``; no money leaves the balance or the charge."""
        with self._lock:
            self._refund_failures.append(reason)

    def faults_clear(self) -> None:
        """Stripe is healthy again: drop every fault not yet taken."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self._faults:
            if path.startswith(fault.path_prefix) and fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    # --- the HTTP exchange -----------------------------------------------------------------------

    def handle(
        self, method: str, url: str, headers: Mapping[str, str], body: str | bytes | None
    ) -> tuple[str, int, dict[str, str]]:
        """Answer one request. Raises ConnectionError for faults that mean "no reply arrived"."""
        if isinstance(body, bytes):
            body = body.decode()
        parts = urlsplit(url)
        method = method.upper()
        params = decode_form(body if method == "POST" else parts.query) if (body or parts.query) else {}
        lower = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self.requests.append((method, parts.path, body or parts.query or ""))
            taken = self._take_fault(parts.path)
            fault = taken.kind if taken else None
            if fault == "timeout":
                raise ConnectionError("timed out (injected)")
            if fault == "5xx":
                error = StripeFakeError(500, "api_error", "An unknown error occurred (injected).")
                return self._reply(500, error.body())
            if fault == "conflict":
                error = StripeFakeError(
                    409,
                    "invalid_request_error",
                    "There is currently another in-progress request using this Stripe Idempotency Key "
                    "(injected).",
                    code="idempotency_key_in_use",
                )
                return self._reply(409, error.body())
            if taken is not None and taken.error is not None:
                return self._reply(taken.error.status, taken.error.body())
            key = lower.get("idempotency-key", "") if method == "POST" else ""
            fingerprint = (method, parts.path, tuple(sorted(parse_qsl(body or "", keep_blank_values=True))))
            if key and key in self._replies:
                stored = self._replies[key]
                if stored.fingerprint != fingerprint:
                    error = StripeFakeError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they were "
                        f"first used with. Try using a key other than '{key}' if you meant to execute a "
                        "different request.",
                    )
                    return self._reply(400, error.body())
                text, status, out = stored.body, stored.status, self._headers()
                out["idempotent-replayed"] = "true"
                return text, status, out
            status, payload = self._dispatch(method, parts.path, params, lower)
            text = json.dumps(payload)
            if key and status < 500:
                self._replies[key] = StoredReply(fingerprint, status, text)
            if fault == "lost_reply":
                raise ConnectionError("connection reset after the request was executed (injected)")
            return text, status, self._headers()

    def _headers(self) -> dict[str, str]:
        return {"request-id": f"req_{secrets.token_hex(7)}", "content-type": "application/json"}

    def _reply(self, status: int, payload: dict[str, Any]) -> tuple[str, int, dict[str, str]]:
        return json.dumps(payload), status, self._headers()

    def _dispatch(
        self, method: str, path: str, params: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        auth = headers.get("authorization", "")
        if not auth.startswith(f"Bearer {self.api_key_prefix}"):
            return 401, StripeFakeError(401, "invalid_request_error", "Invalid API Key provided.").body()
        routes = [
            ("POST", r"/v1/checkout/sessions", self._session_create),
            ("GET", r"/v1/checkout/sessions/(?P<ident>[^/]+)", self._retrieve),
            ("GET", r"/v1/payment_intents/(?P<ident>[^/]+)", self._retrieve),
            ("POST", r"/v1/refunds", self._refund_create),
            ("GET", r"/v1/refunds/(?P<ident>[^/]+)", self._retrieve),
            ("POST", r"/v1/accounts", self._account_create),
            ("GET", r"/v1/accounts/(?P<ident>[^/]+)", self._retrieve),
            ("POST", r"/v1/account_links", self._account_link_create),
            ("POST", r"/v1/transfers", self._transfer_create),
            ("GET", r"/v1/transfers", self._transfer_list),
            ("GET", r"/v1/transfers/(?P<ident>[^/]+)", self._retrieve),
            ("GET", r"/v1/balance", self._balance),
        ]
        for verb, pattern, view in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                try:
                    return 200, view(params, **match.groupdict())
                except StripeFakeError as exc:
                    return exc.status, exc.body()
        message = f"Unrecognized request URL ({method}: {path})."
        return 404, StripeFakeError(404, "invalid_request_error", message).body()

    # --- endpoints ---------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}{secrets.token_hex(4)}"

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        return obj

    def _retrieve(self, params: dict[str, Any], ident: str) -> dict[str, Any]:
        obj = self.objects.get(ident)
        if obj is None:
            raise _missing("object", ident)
        return obj

    def _session_create(self, params: dict[str, Any]) -> dict[str, Any]:
        items = params.get("line_items") or []
        if not items:
            raise StripeFakeError(
                400,
                "invalid_request_error",
                "Missing required param: line_items.",
                "parameter_missing",
                "line_items",
            )
        total, currency = 0, ""
        for i, item in enumerate(items):
            price = item.get("price_data") or {}
            amount = _int_param(price, "unit_amount", minimum=0)
            quantity = _int_param(item, "quantity") if "quantity" in item else 1
            currency = price.get("currency", "")
            if not currency:
                raise StripeFakeError(
                    400,
                    "invalid_request_error",
                    "Missing currency.",
                    "parameter_missing",
                    f"line_items[{i}][price_data][currency]",
                )
            total += amount * quantity
        if total < 50:
            raise StripeFakeError(
                400,
                "invalid_request_error",
                "The Checkout Session's total amount due must add up to at least $0.50 usd",
                "amount_too_small",
            )
        ident = self._new_id("cs_test")
        return self._store(
            {
                "id": ident,
                "object": "checkout.session",
                "amount_subtotal": total,
                "amount_total": total,
                "client_reference_id": params.get("client_reference_id"),
                "created": int(time.time()),
                "currency": currency,
                "livemode": False,
                "metadata": params.get("metadata") or {},
                "mode": params.get("mode", "payment"),
                "payment_intent": None,
                "payment_status": "unpaid",
                "status": "open",
                "success_url": params.get("success_url"),
                "cancel_url": params.get("cancel_url"),
                "url": f"{self.public_base}/pay/{ident}"
                if self.public_base
                else f"https://checkout.stripe.com/c/pay/{ident}",
                "_payment_intent_metadata": (params.get("payment_intent_data") or {}).get("metadata") or {},
            }
        )

    def _refund_create(self, params: dict[str, Any]) -> dict[str, Any]:
        pi_id = params.get("payment_intent") or ""
        intent = self.objects.get(pi_id)
        if intent is None or intent["object"] != "payment_intent":
            raise _missing("payment_intent", pi_id, "payment_intent")
        charge = self.objects[intent["latest_charge"]]
        left = charge["amount_captured"] - charge["amount_refunded"]
        amount = _int_param(params, "amount") if "amount" in params else left
        if amount > left:
            raise StripeFakeError(
                400,
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                "amount_too_large",
                "amount",
            )
        currency = charge["currency"]
        if self.balance.get(currency, 0) < amount:
            raise StripeFakeError(
                400, "invalid_request_error", "Insufficient funds in Stripe account.", "balance_insufficient"
            )
        failure = self._refund_failures.pop(0) if self._refund_failures else None
        if failure is None:
            self.balance[currency] -= amount
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        refund = self._store(
            {
                "id": self._new_id("re"),
                "object": "refund",
                "amount": amount,
                "charge": charge["id"],
                "created": int(time.time()),
                "currency": currency,
                "failure_reason": failure,
                "metadata": params.get("metadata") or {},
                "payment_intent": pi_id,
                "status": "failed" if failure else "succeeded",
            }
        )
        # Stripe announces a card refund with both; tests find them in ``events``.
        self.event("refund.created", refund)
        self.event("refund.failed" if failure else "charge.refunded", refund if failure else charge)
        return refund

    def _account_create(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("type") not in ("express", "custom", "standard"):
            raise StripeFakeError(400, "invalid_request_error", "Invalid type.", "parameter_invalid", "type")
        requested = params.get("capabilities") or {}
        return self._store(
            {
                "id": self._new_id("acct"),
                "object": "account",
                "type": params["type"],
                "email": params.get("email"),
                "country": params.get("country", "US"),
                "charges_enabled": False,
                "payouts_enabled": False,
                "details_submitted": False,
                "capabilities": {name: "inactive" for name in requested},
                "metadata": params.get("metadata") or {},
                "created": int(time.time()),
            }
        )

    def _account_link_create(self, params: dict[str, Any]) -> dict[str, Any]:
        account = params.get("account") or ""
        if account not in self.objects:
            raise _missing("account", account, "account")
        now = int(time.time())
        return {
            "object": "account_link",
            "created": now,
            "expires_at": now + 300,
            "url": f"{self.public_base}/onboard/{account}"
            if self.public_base
            else f"https://connect.stripe.com/setup/e/{account}/{secrets.token_urlsafe(8)}",
        }

    def _transfer_create(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = _int_param(params, "amount")
        currency = params.get("currency") or ""
        destination = params.get("destination") or ""
        account = self.objects.get(destination)
        if account is None or account["object"] != "account":
            raise _missing("destination", destination, "destination")
        if account["capabilities"].get("transfers") != "active":
            raise StripeFakeError(
                400,
                "invalid_request_error",
                "Your destination account needs to have at least one of the following capabilities "
                "enabled: transfers, crypto_transfers, legacy_payments",
                "insufficient_capabilities_for_transfer",
                "destination",
            )
        if self.balance.get(currency, 0) < amount:
            raise StripeFakeError(
                400,
                "invalid_request_error",
                "You have insufficient available funds in your Stripe account.",
                "balance_insufficient",
            )
        self.balance[currency] -= amount
        return self._store(
            {
                "id": self._new_id("tr"),
                "object": "transfer",
                "amount": amount,
                "amount_reversed": 0,
                "created": int(time.time()),
                "currency": currency,
                "destination": destination,
                "livemode": False,
                "metadata": params.get("metadata") or {},
                "reversed": False,
            }
        )

    def _transfer_list(self, params: dict[str, Any]) -> dict[str, Any]:
        """Newest first, filtered by ``destination`` and ``created[gte]``, paged by ``limit`` and
        ``starting_after``, as Stripe lists."""
        low = int((params.get("created") or {}).get("gte", 0))
        found = [
            o
            for o in reversed(list(self.objects.values()))
            if o["object"] == "transfer"
            and o["created"] >= low
            and params.get("destination") in (None, o["destination"])
        ]
        after = params.get("starting_after")
        if after:
            found = found[[o["id"] for o in found].index(after) + 1 :]
        limit = _int_param(params, "limit") if "limit" in params else 10
        return {
            "object": "list",
            "url": "/v1/transfers",
            "data": found[:limit],
            "has_more": len(found) > limit,
        }

    def _balance(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "object": "balance",
            "livemode": False,
            "available": [{"amount": a, "currency": c} for c, a in sorted(self.balance.items())],
            "pending": [],
        }

    # --- Stripe's side: customers paying, onboarding, disputes, and the events they cause ---------

    def event(self, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Record and return an event with Stripe's envelope (``data.object`` is a snapshot)."""
        snapshot = {k: v for k, v in obj.items() if not k.startswith("_")}
        with self._lock:
            event = {
                "id": self._new_id("evt"),
                "object": "event",
                "api_version": API_VERSION,
                "created": int(time.time()),
                "data": {"object": json.loads(json.dumps(snapshot))},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": type_,
            }
            self.events.append(event)
        return event

    def checkout_complete(self, session_id: str) -> list[dict[str, Any]]:
        """The customer pays: a PaymentIntent and Charge succeed, the balance grows. Returns the
        ``payment_intent.succeeded`` and ``checkout.session.completed`` events, in that order."""
        with self._lock:
            session = self.objects[session_id]
            if session["status"] == "complete":
                raise ValueError("session already completed")
            amount, currency = session["amount_total"], session["currency"]
            pi_id, ch_id = self._new_id("pi"), self._new_id("ch")
            self._store(
                {
                    "id": ch_id,
                    "object": "charge",
                    "amount": amount,
                    "amount_captured": amount,
                    "amount_refunded": 0,
                    "currency": currency,
                    "payment_intent": pi_id,
                    "paid": True,
                    "refunded": False,
                    "status": "succeeded",
                }
            )
            intent = self._store(
                {
                    "id": pi_id,
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_received": amount,
                    "currency": currency,
                    "latest_charge": ch_id,
                    "metadata": session["_payment_intent_metadata"],
                    "status": "succeeded",
                    "created": int(time.time()),
                }
            )
            session.update(status="complete", payment_status="paid", payment_intent=pi_id)
            self.balance[currency] = self.balance.get(currency, 0) + amount
            return [
                self.event("payment_intent.succeeded", intent),
                self.event("checkout.session.completed", session),
            ]

    def onboarding_complete(self, account_id: str) -> dict[str, Any]:
        """The worker finishes onboarding; returns the ``account.updated`` event."""
        with self._lock:
            account = self.objects[account_id]
            account.update(charges_enabled=True, payouts_enabled=True, details_submitted=True)
            account["capabilities"]["transfers"] = "active"
            return self.event("account.updated", account)

    def refund_fail(self, refund_id: str, reason: str = "expired_or_canceled_card") -> list[dict[str, Any]]:
        """The card network bounces a succeeded refund: the money returns to the platform balance
        and the charge. Returns the ``refund.updated`` and ``refund.failed`` events."""
        with self._lock:
            refund = self.objects[refund_id]
            if refund["status"] != "succeeded":
                raise ValueError("only a succeeded refund can fail")
            charge = self.objects[refund["charge"]]
            refund.update(status="failed", failure_reason=reason)
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = False
            self.balance[refund["currency"]] = self.balance.get(refund["currency"], 0) + refund["amount"]
            return [self.event("refund.updated", refund), self.event("refund.failed", refund)]

    def transfer_reverse(self, transfer_id: str, amount: int | None = None) -> dict[str, Any]:
        """The platform pulls (part of) a transfer back from the connected account, as a transfer
        reversal does; the money returns to the platform balance. Returns ``transfer.reversed``."""
        with self._lock:
            transfer = self.objects[transfer_id]
            left = transfer["amount"] - transfer["amount_reversed"]
            amount = left if amount is None else amount
            if not 0 < amount <= left:
                raise ValueError(f"can reverse 1..{left}, not {amount}")
            transfer["amount_reversed"] += amount
            transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
            self.balance[transfer["currency"]] = self.balance.get(transfer["currency"], 0) + amount
            return self.event("transfer.reversed", transfer)

    def dispute_create(self, payment_intent_id: str) -> dict[str, Any]:
        """The card holder disputes the charge; returns the ``charge.dispute.created`` event."""
        with self._lock:
            intent = self.objects[payment_intent_id]
            dispute = self._store(
                {
                    "id": self._new_id("dp"),
                    "object": "dispute",
                    "amount": intent["amount"],
                    "charge": intent["latest_charge"],
                    "currency": intent["currency"],
                    "payment_intent": payment_intent_id,
                    "reason": "fraudulent",
                    "status": "needs_response",
                    "created": int(time.time()),
                }
            )
            return self.event("charge.dispute.created", dispute)


# --- loopback server ---------------------------------------------------------------------------


def make_server(
    fake: StripeFake,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    webhook_url: str = "",
    webhook_secret: str = "",
) -> ThreadingHTTPServer:
    """A threaded HTTP server answering with ``fake`` (port 0 picks a free port). Faults that mean
    "no reply" close the connection without answering, as a real network failure would.

    With ``webhook_url`` it also plays the customer's side for the demo: ``GET /pay/<session>``
    pays a Checkout Session and ``GET /onboard/<account>`` finishes Connect onboarding, and the
    resulting events are POSTed to ``webhook_url`` signed with ``webhook_secret``, as Stripe does.
    """

    def deliver(events: list[dict[str, Any]]) -> list[int]:
        from payments import stripe_client

        statuses = []
        for event in events:
            payload = json.dumps(event)
            request = urllib.request.Request(
                webhook_url,
                data=payload.encode(),
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Stripe-Signature": stripe_client.webhook_sign(payload, secret=webhook_secret or None),
                },
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                statuses.append(response.status)
        return statuses

    def page(path: str) -> tuple[str, int] | None:
        """The demo's customer pages, or None for an API path."""
        for prefix, action in (("/pay/", fake.checkout_complete), ("/onboard/", fake.onboarding_complete)):
            if path.startswith(prefix) and webhook_url:
                ident = path[len(prefix) :].split("?")[0]
                try:
                    events = action(ident)
                except (KeyError, ValueError) as exc:
                    return f"Nothing to do for {ident}: {exc}\n", 404
                events = events if isinstance(events, list) else [events]
                statuses = deliver(events)
                return f"Done: {len(events)} event(s) sent to {webhook_url}, answers {statuses}.\n", 200
        return None

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else None
            shown = page(self.path) if self.command == "GET" else None
            if shown is not None:
                text, status = shown
                headers = {"Content-Type": "text/plain; charset=utf-8"}
            else:
                try:
                    text, status, headers = fake.handle(
                        self.command, self.path, dict(self.headers.items()), body
                    )
                except ConnectionError:
                    self.close_connection = True
                    return
            data = text.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    if webhook_url and not fake.public_base:
        fake.public_base = f"http://{host}:{server.server_address[1]}"
    return server
