"""Builders and readers shared by the admin tests: answers made through the real API, actions
posted to the real admin, and the rows an action must write (events, postings, balances)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.test import Client

from crowd.models import AssignmentEvent, Worker
from marketplace.models import Batch, Requester
from payments.models import LedgerEntry, LedgerTransaction
from payments.money import fee_cents
from tests.factories import WorkerFactory, client_for, open_batch

PRICE = 50
FEE = fee_cents(PRICE, settings.PLATFORM_FEE_BPS)


def answered(requester: Requester, *, tasks: int = 2, **fields: Any) -> tuple[Batch, Worker, list[int]]:
    """An open batch of ``requester`` (overlap 1, ``PRICE`` an answer, funded) whose ``tasks``
    tasks one worker has claimed and answered through the API; the answers' ids in order."""
    fields.setdefault("overlap", 1)
    fields.setdefault("price_cents", PRICE)
    batch = open_batch(project__requester=requester, regular=tasks, **fields)
    worker = WorkerFactory()
    client = client_for(worker.user)
    leases = client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": tasks}, format="json")
    ids = sorted(lease["id"] for lease in leases.json()["assignments"])
    for pk in ids:
        submitted = client.post(f"/api/v1/work/assignments/{pk}/submit", {"answer": "cat"}, format="json")
        assert submitted.status_code == 200, submitted.json()
    return batch, worker, ids


def review(requester: Requester, ids: list[int], verdict: str, reason: str = "") -> None:
    """The requester's verdict through the API (the path an admin action must match)."""
    response = client_for(requester.user).post(
        "/api/v1/assignments/review", {"ids": ids, "verdict": verdict, "reason": reason}, format="json"
    )
    assert response.status_code == 200, response.json()


def act(client: Client, changelist: str, action: str, ids: list[int], **form: Any) -> Any:
    """Post an admin action on ``ids``: without ``form`` the first page, with it the confirmation."""
    data: dict[str, Any] = {"action": action, "_selected_action": ids}
    if form:
        data.update(apply="yes", **form)
    return client.post(changelist, data, follow=True)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def events(assignment_id: int) -> list[tuple[Any, ...]]:
    return list(
        AssignmentEvent.objects.filter(assignment_id=assignment_id).values_list(
            "from_status", "to_status", "actor", "actor_user_id", "reason"
        )
    )


def posting(key: str) -> tuple[str, list[tuple[str, str, int]]]:
    """The posting made under ``key``: its kind and legs as (debit, credit, cents), accounts named."""
    posted = LedgerTransaction.objects.get(idempotency_key=key)
    legs = [
        (str(e.debit_account), str(e.credit_account), e.amount_cents)
        for e in LedgerEntry.objects.filter(transaction=posted).select_related(
            "debit_account", "credit_account"
        )
    ]
    return posted.kind, legs


def change_form_data(page: Any, **changes: Any) -> dict[str, Any]:
    """The POST a browser would send from an admin change ``page`` as shown, with ``changes``
    typed in: every editable field at its current value (split widgets as ``name_0``/``name_1``).
    On a view-only page there is no field, so only ``changes`` are sent."""
    from django.forms import MultiWidget

    form = page.context["adminform"].form
    data: dict[str, Any] = {}
    for bound in form:
        value = bound.value()  # as the widget renders it
        widget = bound.field.widget
        if isinstance(widget, MultiWidget):
            for i, part in enumerate(widget.decompress(value)):
                data[f"{bound.html_name}_{i}"] = "" if part is None else part
        elif value is not None:
            data[bound.html_name] = value
    for inline in page.context.get("inline_admin_formsets", []):
        management = inline.formset.management_form
        for name in ("TOTAL_FORMS", "INITIAL_FORMS"):
            data[f"{management.prefix}-{name}"] = management[name].value()
    data.update(changes)
    return data
