"""Seed a demo marketplace: users with known passwords, fresh API tokens, and one open batch.

Idempotent: users, the project, the batch and its tasks are found again by e-mail, name and
``external_id``; a re-run only resets the demo passwords, revokes the previous demo tokens and
prints new ones. Known passwords and a superuser make this for local use only, so it refuses to
run with DEBUG off unless told ``--force``.
"""

from __future__ import annotations

import json
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from marketplace.enums import BatchStatus, Role
from marketplace.models import Batch, Project, Requester, User
from marketplace.services.accounts import role_grant, token_create, token_revoke, user_create
from marketplace.services.batches import batch_create, batch_publish
from marketplace.services.projects import project_create
from marketplace.services.tasks import tasks_upload
from payments.enums import AccountKind, EntryKind
from payments.services.ledger import ledger_transfer, platform_account, requester_account

TOKEN_NAME = "seed_demo"
REQUESTER_EMAIL = "demo-requester@example.com"
WORKER_EMAILS = tuple(f"demo-worker{i}@example.com" for i in (1, 2, 3))
ADMIN_EMAIL = "admin@example.com"
USER_PASSWORD = "demo-pass-2024"
ADMIN_PASSWORD = "admin-pass-2024"

PROJECT_NAME = "Sentiment of product reviews"
BATCH_NAME = "Product reviews, demo batch"
INSTRUCTIONS = (
    "Read the customer review and choose its overall sentiment: positive (the customer is happy "
    "with the product), negative (unhappy), or neutral (mixed, factual or undecided)."
)
INPUT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 1}},
    "required": ["text"],
    "additionalProperties": False,
}
ANSWER_SCHEMA = {"type": "string", "enum": ["positive", "negative", "neutral"]}
DEMO_CREDIT_CENTS = 100_00  # $100
BATCH_FIELDS = {
    "price_cents": 5,
    "currency": "USD",
    "overlap": 3,
    "lease_seconds": 600,
    "gold_rate": 0.1,
    "max_claims_per_request": 10,
}

REVIEWS = (
    "Battery easily lasts two days with heavy use. Best phone I've owned.",
    "The zipper broke the second time I used the backpack. Very disappointed.",
    "It's a charging cable. It charges. Nothing more to say.",
    "These headphones are so comfortable I forget I'm wearing them.",
    "Arrived with a cracked screen and the seller never answered my messages.",
    "The blender is loud, but it crushes ice in seconds.",
    "Exactly as described, arrived on Tuesday.",
    "My kids love this board game; we've played it every night this week.",
    "Smells like chemicals even after three washes. Returning it.",
    "Decent coffee maker for the price, though the carafe drips when pouring.",
    "Stopped working after a month. Customer support just sent me a link to the manual.",
    "The color is slightly darker than in the photos.",
    "Five stars. Setup took two minutes and the picture quality is stunning.",
    "Too small. I ordered my usual size and it doesn't fit at all.",
    "Works with my laptop. I haven't tried it with the tablet yet.",
    "Great value: sturdy, light, and it folds flat for storage.",
    "The app keeps crashing and the device loses its Wi-Fi connection every night.",
    "Package contains two pillows, not four as I assumed.",
    "I was skeptical, but this vacuum picks up every bit of dog hair. Impressed.",
    "Paint started peeling off within a week of light use.",
    "Average knife set. Sharp enough, nothing special.",
    "Absolutely gorgeous lamp, it makes the whole room feel warmer.",
    "Instructions were missing and two screws were the wrong size.",
    "It does the job. I'd buy it again if it were on sale.",
    "The best running shoes I have tried in years, my knees thank me.",
    "Overpriced for what it is. The cheaper brand performs the same.",
    "Delivered in a plain box; the product itself is fine.",
    "Sound quality is crisp and the bass is surprisingly deep for such a small speaker.",
    "The lid doesn't seal, so my soup leaked all over my bag.",
    "Comes in three colors; I picked grey.",
    "Fast shipping and the tea tastes wonderful. Already ordered more.",
    "The print is blurry and the frame was scratched.",
    "Fits my desk. The height adjustment is a bit stiff but usable.",
    "Love it! The keyboard feels great and the backlight is perfect for night work.",
    "Cheap plastic that snapped the first time I tightened it.",
    "The manual is in English and Spanish.",
    "My cat ignored the expensive bed and sleeps in the box it came in. The bed itself is well made.",
    "Lightweight, warm and packs into its own pocket. Perfect for travel.",
    "Third replacement unit, same fault. I give up on this brand.",
    "It's okay. Battery life is shorter than advertised but acceptable.",
    "This pan heats evenly and nothing sticks, even eggs.",
    "Wrong item shipped, and the return label costs more than the item.",
    "Taller than I expected, about 40 cm.",
    "Exceeded my expectations in every way. Highly recommend.",
    "The strap started fraying after two weeks.",
    "Does what it says. No complaints, no praise.",
    "Gorgeous fabric and the stitching is excellent. Worth every penny.",
    "The screen scratches if you even look at it.",
    "Replaced my old router with this one; speeds are about the same.",
    "Customer service replaced my broken unit within two days. Very happy with them.",
)
GOLD_REVIEWS = (
    ("Absolutely love it, works perfectly and looks beautiful.", "positive"),
    ("Broke on the first day. Complete waste of money.", "negative"),
    ("The product is blue and weighs 200 grams.", "neutral"),
    ("Terrible quality, I want a refund.", "negative"),
    ("Fantastic purchase, I would buy it again tomorrow.", "positive"),
)


def task_rows() -> list[dict[str, Any]]:
    """The upload rows; ``external_id`` makes a re-upload a no-op (counted as duplicates)."""
    rows: list[dict[str, Any]] = [
        {"external_id": f"review-{i:03d}", "input": {"text": text}} for i, text in enumerate(REVIEWS, 1)
    ]
    rows += [
        {"external_id": f"gold-{i:02d}", "input": {"text": text}, "gold_answer": answer}
        for i, (text, answer) in enumerate(GOLD_REVIEWS, 1)
    ]
    return rows


class Command(BaseCommand):
    help = (
        "Create demo users (known passwords, fresh API tokens) and an open sentiment batch with "
        "gold tasks; print the credentials and example curl commands. Safe to re-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="Used in the printed curl examples."
        )
        parser.add_argument(
            "--force", action="store_true", help="Run even with DEBUG off (never on a real deployment)."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if not settings.DEBUG and not opts["force"]:
            raise CommandError(
                "seed_demo creates a superuser with a published password; it runs only with DEBUG on "
                "(local settings) unless --force is given."
            )
        with transaction.atomic():
            requester = _user(REQUESTER_EMAIL, USER_PASSWORD, roles=[Role.REQUESTER])
            workers = [_user(email, USER_PASSWORD, roles=[Role.WORKER]) for email in WORKER_EMAILS]
            admin = _user(ADMIN_EMAIL, ADMIN_PASSWORD, roles=[], staff=True)
            batch, note = _batch(requester)
            people = [("requester", requester, USER_PASSWORD)]
            people += [(f"worker{i}", w, USER_PASSWORD) for i, w in enumerate(workers, 1)]
            people += [("admin", admin, ADMIN_PASSWORD)]
            keys = {label: _fresh_token(user) for label, user, _ in people}
        self._print(batch, note, people, keys, opts["base_url"].rstrip("/"))

    def _print(
        self,
        batch: Batch,
        note: str,
        people: list[tuple[str, User, str]],
        keys: dict[str, str],
        base: str,
    ) -> None:
        out = self.stdout.write
        out("")
        out(self.style.SUCCESS(f"Demo data ready: {note}"))
        out(f'  project "{batch.project.name}", batch {batch.pk} "{batch.name}" ({batch.status})')
        out("")
        out("Credentials (web login at /accounts/login/, admin at /admin/; tokens for the API):")
        out(f"  {'role':<10} {'email':<28} {'password':<16} token")
        for label, user, password in people:
            out(f"  {label:<10} {user.email:<28} {password:<16} {keys[label]}")
        out("")
        worker, requester = keys["worker1"], keys["requester"]
        out("Try it:")
        out("  # as worker1, lease one task (the reply holds the assignment id, the input and expires_at)")
        out(_curl(f"{base}/api/v1/work/batches/{batch.pk}/claim", worker, {"count": 1}))
        out("  # answer it: put the assignment id from the claim in place of ASSIGNMENT_ID")
        out(_curl(f"{base}/api/v1/work/assignments/ASSIGNMENT_ID/submit", worker, {"answer": "positive"}))
        out("  # as the requester, watch the batch's progress counts")
        out(_curl(f"{base}/api/v1/batches/{batch.pk}", requester))
        out(f"API docs: {base}/api/docs/")
        out("")


def _curl(url: str, token: str, body: dict[str, Any] | None = None) -> str:
    """A copy-pasteable curl command line: POST with a JSON body, or GET without one."""
    auth = f"-H 'Authorization: Token {token}'"
    if body is None:
        return f"  curl -s {url} {auth}"
    return f"  curl -s -X POST {url} {auth} -H 'Content-Type: application/json' -d '{json.dumps(body)}'"


def _user(email: str, password: str, *, roles: list[str], staff: bool = False) -> User:
    """Find or create the user, reset the demo password, keep the e-mail verified."""
    user = User.objects.filter(email=email).first()
    if user is None:
        user = user_create(email=email, password=password, roles=roles)
    else:
        for role in roles:
            role_grant(user=user, role=role)
        user.set_password(password)
        user.save(update_fields=["password"])
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
    if staff and not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return user


def _fresh_token(user: User) -> str:
    """Revoke the tokens an earlier run printed, then create one more; returns its key."""
    for token_id in user.api_tokens.filter(name=TOKEN_NAME, revoked_at__isnull=True).values_list(
        "id", flat=True
    ):
        token_revoke(user=user, token_id=token_id)
    _, key = token_create(user=user, name=TOKEN_NAME)
    return key


def _demo_credit(requester: Requester) -> None:
    """Demo money on the requester's balance, once: as if DEMO_CREDIT_CENTS had been paid by card
    (a real top-up goes through ``POST /api/v1/funding`` and Stripe's webhook)."""
    ledger_transfer(
        debit=platform_account(AccountKind.STRIPE_CLEARING),
        credit=requester_account(requester.pk, AccountKind.AVAILABLE),
        amount_cents=DEMO_CREDIT_CENTS,
        idempotency_key=f"demo-credit:requester:{requester.pk}",
        kind=EntryKind.ADJUSTMENT,
        reference="seed_demo",
    )


def _batch(requester_user: User) -> tuple[Batch, str]:
    """The demo batch, created, filled and published on the first run; reopened if paused."""
    requester = requester_user.requester
    project = Project.objects.filter(requester=requester, name=PROJECT_NAME).order_by("id").first()
    if project is None:
        project = project_create(
            requester=requester,
            name=PROJECT_NAME,
            instructions=INSTRUCTIONS,
            input_schema=INPUT_SCHEMA,
            answer_schema=ANSWER_SCHEMA,
        )
    _demo_credit(requester)
    batch = project.batches.filter(name=BATCH_NAME).order_by("id").first()
    if batch is None:
        batch = batch_create(project=project, name=BATCH_NAME, **BATCH_FIELDS)
    if batch.status == BatchStatus.CLOSED:
        return batch, "the demo batch was closed earlier and is left closed"
    result = tasks_upload(batch=batch, rows=task_rows(), atomic=True)
    if batch.status != BatchStatus.OPEN:
        batch = batch_publish(batch=batch)
    if result.created:
        return batch, f"created {result.created} tasks ({result.gold_created} gold)"
    return batch, f"already seeded ({result.duplicates} tasks), new tokens issued"
