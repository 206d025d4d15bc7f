from django.urls import path

from marketplace.api import converters  # noqa: F401 - registers <id:...>

from . import views

urlpatterns = [
    path("funding", views.FundingCreateApi.as_view(), name="funding"),
    path("refunds", views.RefundListCreateApi.as_view(), name="refunds"),
    path("refunds/<id:refund_id>", views.RefundDetailApi.as_view(), name="refund-detail"),
    path("bonuses", views.BonusListCreateApi.as_view(), name="bonuses"),
    path("work/bonuses", views.WorkBonusListApi.as_view(), name="work-bonuses"),
    path("stripe/webhook", views.StripeWebhookApi.as_view(), name="stripe-webhook"),
    path("balance", views.BalanceApi.as_view(), name="balance"),
    path("ledger", views.LedgerApi.as_view(), name="ledger"),
    path("work/payout-account", views.PayoutAccountApi.as_view(), name="work-payout-account"),
    path("work/payouts", views.PayoutListCreateApi.as_view(), name="work-payouts"),
    path("work/payouts/<id:payout_id>", views.PayoutDetailApi.as_view(), name="work-payout-detail"),
]
