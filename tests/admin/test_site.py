"""The whole admin site: every model carrying state or money is read-only, every list renders."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from crowd.models import Restriction

pytestmark = pytest.mark.django_db

# A field by one of these names holds state or money: its rows change only through services.
STATE_OR_MONEY = {
    "status",
    "is_frozen",
    "is_ready",
    "lifted_at",
    "slots_taken",
    "answers_count",
    "gold_total",
    "processed_at",
}
# Added through its service (``restriction_create_by_admin``), never changed or deleted.
ADDED_THROUGH_A_SERVICE = {Restriction}


def _guarded() -> list[type]:
    return sorted(
        (
            model
            for model in admin.site._registry
            if any(f.name in STATE_OR_MONEY or f.name.endswith("_cents") for f in model._meta.concrete_fields)
        ),
        key=lambda model: model._meta.label,
    )


def test_the_guarded_models_are_the_ones_expected():
    assert [model._meta.label for model in _guarded()] == [
        "crowd.Appeal",
        "crowd.Assignment",
        "crowd.Reliability",
        "crowd.Restriction",
        "marketplace.Batch",
        "marketplace.Task",
        "payments.Account",
        "payments.Bonus",
        "payments.FundingIntent",
        "payments.LedgerEntry",
        "payments.Payout",
        "payments.PayoutAccount",
        "payments.Refund",
        "payments.RequesterAccountState",
        "payments.RequesterFreezeEvent",
        "payments.StripeEvent",
    ]


@pytest.mark.parametrize("model", _guarded(), ids=lambda model: model._meta.label)
def test_a_model_with_state_or_money_is_never_added_changed_or_deleted_by_hand(admin_user, model):
    # given a superuser's request
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    model_admin = admin.site._registry[model]

    # then no object of it can be changed or deleted, nor one added (but through a service)
    assert model_admin.has_change_permission(request, model()) is False
    assert model_admin.has_delete_permission(request, model()) is False
    assert model_admin.has_add_permission(request) is (model in ADDED_THROUGH_A_SERVICE)


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda model: model._meta.label)
def test_every_list_and_add_page_renders(staff, model):
    opts = model._meta
    assert staff.get(f"/admin/{opts.app_label}/{opts.model_name}/").status_code == 200
    add = staff.get(f"/admin/{opts.app_label}/{opts.model_name}/add/").status_code
    assert add in (200, 403)
