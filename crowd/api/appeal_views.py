"""Appeals against rejections: workers open them and follow them; requesters overturn or uphold.

Admins decide escalated appeals in the Django admin (``crowd.admin_appeals``). Requesters see the
worker only under their per-requester pseudonym; another tenant's appeal is 404, never 403.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.api.permissions import IsRequester, IsWorker
from marketplace.errors import ValidationFailed
from marketplace.selectors import worker_pseudonym

from ..enums import AppealDecider, AppealStatus
from ..models import Appeal
from ..quality import appeals
from .views import NewestFirstCursorPagination


class _AppealBase(serializers.Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField(source="assignment_id")
    batch = serializers.IntegerField(source="assignment.batch_id")
    status = serializers.ChoiceField(choices=AppealStatus.choices)
    message = serializers.CharField()
    created_at = serializers.DateTimeField()
    requester_deadline = serializers.DateTimeField(
        help_text="Until then the requester decides; afterwards the appeal goes to the admins."
    )
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.ChoiceField(
        source="decided_by_kind",
        choices=AppealDecider.choices,
        allow_blank=True,
        help_text="Who decided: requester or admin; empty while undecided.",
    )
    note = serializers.CharField(allow_blank=True, help_text="Why it was decided so; empty while undecided.")


class WorkAppealSerializer(_AppealBase):
    """A worker's own appeal, with the decision and its note once there is one."""


class RequesterAppealSerializer(_AppealBase):
    worker = serializers.SerializerMethodField(help_text="Your stable pseudonym for the worker.")
    rejection_reason = serializers.SerializerMethodField(
        help_text="The reason the answer was rejected (empty once overturned: the note replaces it)."
    )
    answer = serializers.JSONField(source="assignment.answer", allow_null=True)

    def get_worker(self, appeal: Appeal) -> str:
        return worker_pseudonym(requester_id=self.context["requester_id"], worker_id=appeal.worker_id)

    def get_rejection_reason(self, appeal: Appeal) -> str:
        undecided = appeal.status in (AppealStatus.OPEN, AppealStatus.ESCALATED)
        return appeal.assignment.review_reason if undecided else ""


class AppealOpenRequestSerializer(serializers.Serializer):
    message = serializers.CharField(
        max_length=appeals.MESSAGE_MAX_CHARS, help_text="Why the rejection is wrong."
    )


class AppealDecideRequestSerializer(serializers.Serializer):
    note = serializers.CharField(
        max_length=appeals.NOTE_MAX_CHARS,
        required=False,
        allow_blank=True,
        help_text="The worker sees it. Required to uphold.",
    )


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- workers ----------------------------------------------------------------------------------


class WorkAppealOpenApi(APIView):
    permission_classes = [IsWorker]

    @extend_schema(
        request=AppealOpenRequestSerializer,
        responses={201: WorkAppealSerializer},
        summary="Appeal the rejection of my answer",
        description=(
            f"Within {appeals.APPEAL_WINDOW.days} days of the rejection (409 `appeal_window_closed` "
            "after), once per answer (409 `already_appealed`), only for a rejected answer (409 "
            f"`not_rejected`). The requester has {appeals.REQUESTER_WINDOW.days} days to decide; "
            "then the admins do."
        ),
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = _valid(AppealOpenRequestSerializer, request.data)
        appeal = appeals.appeal_open(
            worker=request.worker, assignment_id=assignment_id, message=data["message"]
        )
        return Response(WorkAppealSerializer(appeal).data, status=status.HTTP_201_CREATED)


class WorkAppealListApi(ListAPIView):
    permission_classes = [IsWorker]
    pagination_class = NewestFirstCursorPagination
    serializer_class = WorkAppealSerializer

    def get_queryset(self) -> Any:
        return appeals.appeal_list_for_worker(worker=self.request.worker)

    @extend_schema(summary="My appeals, newest first, with their decisions")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


# --- requesters -------------------------------------------------------------------------------


class AppealListApi(ListAPIView):
    permission_classes = [IsRequester]
    pagination_class = NewestFirstCursorPagination
    serializer_class = RequesterAppealSerializer

    def get_queryset(self) -> Any:
        wanted = self.request.query_params.get("status")
        if wanted and wanted not in AppealStatus.values:
            raise ValidationFailed(
                "Unknown status.", detail={"status": [f"Choose one of: {', '.join(AppealStatus.values)}."]}
            )
        return appeals.appeal_list_for_requester(requester=self.request.requester, status=wanted)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "requester_id": self.request.requester.pk}

    @extend_schema(
        summary="Appeals against rejections in my batches, newest first",
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=AppealStatus.values, required=False)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class _AppealDecideApi(APIView):
    permission_classes = [IsRequester]
    overturn: bool

    def post(self, request: Request, appeal_id: int) -> Response:
        data = _valid(AppealDecideRequestSerializer, request.data)
        appeal = appeals.appeal_decide(
            appeal_id, by_user=request.user, as_admin=False, overturn=self.overturn, note=data.get("note", "")
        )
        context = {"requester_id": request.requester.pk}
        return Response(RequesterAppealSerializer(appeal, context=context).data)


class AppealOverturnApi(_AppealDecideApi):
    overturn = True

    @extend_schema(
        request=AppealDecideRequestSerializer,
        responses=RequesterAppealSerializer,
        summary="Overturn the rejection: accept the answer and pay the worker",
        description=(
            f"Open appeals only, within {appeals.REQUESTER_WINDOW.days} days (409 `appeal_escalated` "
            "after). Paid from the batch's reserve, topped up from your available balance; 409 "
            "`insufficient_funds` (nothing changed) when that is short."
        ),
    )
    def post(self, request: Request, appeal_id: int) -> Response:
        return super().post(request, appeal_id)


class AppealUpholdApi(_AppealDecideApi):
    overturn = False

    @extend_schema(
        request=AppealDecideRequestSerializer,
        responses=RequesterAppealSerializer,
        summary="Uphold the rejection (a note for the worker is required)",
    )
    def post(self, request: Request, appeal_id: int) -> Response:
        return super().post(request, appeal_id)
