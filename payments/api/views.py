"""Money endpoints: funding, refunds, bonuses, the Stripe webhook, balances, statements, payouts."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crowd.selectors import worker_of
from marketplace.api.converters import ID_MAX
from marketplace.api.pagination import IdCursorPagination
from marketplace.api.permissions import IsRequester, IsWorker
from marketplace.errors import Forbidden, ValidationFailed
from marketplace.selectors import requester_of, worker_pseudonym

from .. import selectors, stripe_client
from ..enums import OwnerKind
from ..models import Account, Bonus, LedgerEntry, Refund
from ..money import SUPPORTED_CURRENCIES
from ..services import bonuses, escrow, funding, payouts, refunds, webhooks

# Ten billion dollars: beyond any real amount (the services apply the business limits), and far
# below where a sum or a fee could overflow a bigint column (2**63 - 1).
AMOUNT_CENTS_MAX = 10**12

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="A retried request with the same key returns the first result.",
)


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if len(key) > 200:
        raise ValidationFailed(
            "Idempotency-Key is too long.", detail={"Idempotency-Key": ["At most 200 characters."]}
        )
    return key


class AmountSerializer(serializers.Serializer):
    amount_cents = serializers.IntegerField(min_value=1, max_value=AMOUNT_CENTS_MAX)
    currency = serializers.ChoiceField(choices=SUPPORTED_CURRENCIES, default="USD")


class FundingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount_cents = serializers.IntegerField()
    currency = serializers.CharField()
    status = serializers.CharField()
    checkout_url = serializers.CharField()
    created_at = serializers.DateTimeField()


class FundingCreateApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(
        request=AmountSerializer,
        responses={201: FundingSerializer},
        parameters=[IDEMPOTENCY_HEADER],
        summary="Top up my balance: returns a Stripe Checkout URL; the money arrives by webhook",
    )
    def post(self, request: Request) -> Response:
        serializer = AmountSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        intent = funding.funding_create(
            requester=request.requester,
            amount_cents=serializer.validated_data["amount_cents"],
            currency=serializer.validated_data["currency"],
            idempotency_key=_idempotency_key(request),
        )
        return Response(FundingSerializer(intent).data, status=status.HTTP_201_CREATED)


class StripeWebhookApi(APIView):
    """Stripe calls this; the signature is the authentication. Answers 200 once the event is
    stored (a duplicate is a 200 no-op) and processes it in a task."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT}, exclude=True)
    def post(self, request: Request) -> Response:
        try:
            event, created = webhooks.stripe_event_store(
                payload=request.body, signature_header=request.headers.get("Stripe-Signature")
            )
        except stripe_client.SignatureInvalid as exc:
            raise ValidationFailed("The Stripe signature does not verify.", code="invalid_signature") from exc
        return Response({"id": event.stripe_id, "duplicate": not created})


class BalanceApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="My balances as requester and/or worker")
    def get(self, request: Request) -> Response:
        requester, worker = requester_of(request.user), worker_of(request.user)
        if requester is None and worker is None:
            raise Forbidden("Create a requester or worker profile first.", code="no_role")
        accounts = selectors.accounts_of(requester=requester, worker=worker)
        body: dict[str, Any] = {"currency": "USD", "requester": None, "worker": None}
        if requester is not None:
            body["requester"] = {
                **selectors.balances_for(
                    owner_kind=OwnerKind.REQUESTER, owner_id=requester.pk, accounts=accounts
                ),
                "is_frozen": escrow.requester_is_frozen(requester_id=requester.pk),
            }
        if worker is not None:
            body["worker"] = selectors.balances_for(
                owner_kind=OwnerKind.WORKER, owner_id=worker.pk, accounts=accounts
            )
        return Response(body)


class NewestFirst(IdCursorPagination):
    ordering = "-id"


def _line(entry: LedgerEntry, mine: dict[int, Account]) -> list[dict[str, Any]]:
    """One statement line per side of the entry that is the caller's (two for own transfers)."""
    lines = []
    for account, sign in ((entry.debit_account, -1), (entry.credit_account, 1)):
        if account.pk in mine:
            lines.append(
                {
                    "role": account.owner_kind,
                    "account": account.kind,
                    "amount_cents": sign * entry.amount_cents,
                    "currency": entry.currency,
                }
            )
    return lines


class LedgerApi(ListAPIView):
    """My ledger entries, newest first: each with its kind, reference and signed lines."""

    permission_classes = [IsAuthenticated]
    pagination_class = NewestFirst

    def get_queryset(self) -> Any:
        requester, worker = requester_of(self.request.user), worker_of(self.request.user)
        if requester is None and worker is None:
            raise Forbidden("Create a requester or worker profile first.", code="no_role")
        self.mine = {a.pk: a for a in selectors.accounts_of(requester=requester, worker=worker)}
        return selectors.ledger_entries_for(account_ids=list(self.mine))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        data = [
            {
                "id": e.pk,
                "created_at": serializers.DateTimeField().to_representation(e.created_at),
                "kind": e.transaction.kind,
                "reference": e.transaction.reference,
                "lines": _line(e, self.mine),
            }
            for e in page
        ]
        return self.get_paginated_response(data)

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="My statement: ledger entries, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class PayoutAccountSerializer(serializers.Serializer):
    stripe_account_id = serializers.CharField()
    is_ready = serializers.BooleanField()
    onboarding_url = serializers.CharField()


class PayoutAccountApi(APIView):
    permission_classes = [IsWorker]

    @extend_schema(
        request=None, responses=PayoutAccountSerializer, summary="Start or resume payout onboarding"
    )
    def post(self, request: Request) -> Response:
        account, url = payouts.payout_account_onboard(worker=request.worker)
        return Response(
            {
                "stripe_account_id": account.stripe_account_id,
                "is_ready": account.is_ready,
                "onboarding_url": url,
            }
        )


class PayoutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount_cents = serializers.IntegerField()
    currency = serializers.CharField()
    status = serializers.CharField()
    failure_code = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PayoutListCreateApi(ListAPIView):
    permission_classes = [IsWorker]
    pagination_class = NewestFirst
    serializer_class = PayoutSerializer

    def get_queryset(self) -> Any:
        return selectors.payout_list(worker=self.request.worker)

    @extend_schema(summary="My payouts, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=AmountSerializer,
        responses={202: PayoutSerializer},
        parameters=[IDEMPOTENCY_HEADER],
        summary="Withdraw available earnings to my Stripe account",
    )
    def post(self, request: Request) -> Response:
        serializer = AmountSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        payout = payouts.payout_request(
            worker=request.worker,
            amount_cents=serializer.validated_data["amount_cents"],
            currency=serializer.validated_data["currency"],
            idempotency_key=_idempotency_key(request),
        )
        payout.refresh_from_db()
        return Response(PayoutSerializer(payout).data, status=status.HTTP_202_ACCEPTED)


class PayoutDetailApi(APIView):
    permission_classes = [IsWorker]

    @extend_schema(responses=PayoutSerializer)
    def get(self, request: Request, payout_id: int) -> Response:
        return Response(
            PayoutSerializer(selectors.payout_get(worker=request.worker, payout_id=payout_id)).data
        )


class RefundSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    funding_id = serializers.IntegerField()
    amount_cents = serializers.IntegerField()
    currency = serializers.CharField()
    status = serializers.CharField()
    failure_code = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class RefundListCreateApi(ListAPIView):
    """Withdraw unspent available funds back to the card(s) they came from."""

    permission_classes = [IsRequester]
    pagination_class = NewestFirst
    serializer_class = RefundSerializer

    class RefundInputSerializer(serializers.Serializer):
        amount_cents = serializers.IntegerField(min_value=1, max_value=AMOUNT_CENTS_MAX)
        currency = serializers.ChoiceField(choices=SUPPORTED_CURRENCIES, default="USD")
        funding_id = serializers.IntegerField(
            min_value=1,
            max_value=ID_MAX,
            required=False,
            help_text="Refund this funding's charge; default: newest first.",
        )

    class RefundRequestSerializer(serializers.Serializer):
        amount_cents = serializers.IntegerField()
        currency = serializers.CharField()
        refunds = RefundSerializer(many=True, help_text="One per card charge drawn on, newest first.")

    def get_queryset(self) -> Any:
        return selectors.refund_list(requester=self.request.requester)

    @extend_schema(summary="My refunds, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=RefundInputSerializer,
        responses={202: RefundRequestSerializer},
        parameters=[IDEMPOTENCY_HEADER],
        summary="Refund available funds to the card; the Stripe refund runs in the background",
    )
    def post(self, request: Request) -> Response:
        serializer = self.RefundInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        made = refunds.refund_request(
            requester=request.requester,
            amount_cents=data["amount_cents"],
            currency=data["currency"],
            funding_id=data.get("funding_id"),
            idempotency_key=_idempotency_key(request),
        )
        # Re-read: the task may have finished already; creation order is the plan's (newest funding first).
        rows = Refund.objects.filter(pk__in=[r.pk for r in made.refunds]).order_by("id")
        body = {"amount_cents": made.amount_cents, "currency": data["currency"], "refunds": rows}
        return Response(self.RefundRequestSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class RefundDetailApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(responses=RefundSerializer, summary="One of my refunds")
    def get(self, request: Request, refund_id: int) -> Response:
        return Response(
            RefundSerializer(selectors.refund_get(requester=request.requester, refund_id=refund_id)).data
        )


class BonusSentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    worker = serializers.SerializerMethodField(help_text="Your pseudonym for the worker.")
    amount_cents = serializers.IntegerField()
    fee_cents = serializers.IntegerField()
    currency = serializers.CharField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(OpenApiTypes.STR)
    def get_worker(self, obj: Bonus) -> str:
        return worker_pseudonym(requester_id=obj.requester_id, worker_id=obj.worker_id)


class BonusListCreateApi(ListAPIView):
    """Bonuses I paid to workers who worked for me; the platform fee applies on top."""

    permission_classes = [IsRequester]
    pagination_class = NewestFirst
    serializer_class = BonusSentSerializer

    class BonusInputSerializer(serializers.Serializer):
        worker = serializers.CharField(
            required=False, max_length=100, help_text="The worker's pseudonym, as your answers show it."
        )
        worker_id = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)
        amount_cents = serializers.IntegerField(min_value=1, max_value=AMOUNT_CENTS_MAX)
        currency = serializers.ChoiceField(choices=SUPPORTED_CURRENCIES, default="USD")
        reason = serializers.CharField(max_length=bonuses.REASON_MAX_LENGTH, help_text="Shown to the worker.")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("worker" in attrs) == ("worker_id" in attrs):
                raise serializers.ValidationError({"worker": ["Give either worker or worker_id."]})
            return attrs

    def get_queryset(self) -> Any:
        return selectors.bonus_list_sent(requester=self.request.requester)

    @extend_schema(summary="Bonuses I sent, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=BonusInputSerializer,
        responses={201: BonusSentSerializer},
        parameters=[IDEMPOTENCY_HEADER],
        summary="Pay a bonus to a worker who worked for me",
    )
    def post(self, request: Request) -> Response:
        serializer = self.BonusInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        worker = bonuses.worker_for_bonus(
            requester=request.requester, worker_id=data.get("worker_id"), pseudonym=data.get("worker", "")
        )
        bonus = bonuses.bonus_pay(
            requester=request.requester,
            worker=worker,
            amount_cents=data["amount_cents"],
            currency=data["currency"],
            reason=data["reason"],
            idempotency_key=_idempotency_key(request),
        )
        return Response(BonusSentSerializer(bonus).data, status=status.HTTP_201_CREATED)


class BonusReceivedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount_cents = serializers.IntegerField()
    currency = serializers.CharField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class WorkBonusListApi(ListAPIView):
    permission_classes = [IsWorker]
    pagination_class = NewestFirst
    serializer_class = BonusReceivedSerializer

    def get_queryset(self) -> Any:
        return selectors.bonus_list_received(worker=self.request.worker)

    @extend_schema(summary="Bonuses I received, newest first (pending until the hold period ends)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
