"""Worker endpoints. Nothing here ever renders a task id, a gold answer or an ``is_gold`` flag."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.api.pagination import DefaultPagination, IdCursorPagination
from marketplace.api.permissions import IsWorker
from marketplace.errors import ApplicationError, ValidationFailed

from .. import selectors
from ..enums import AssignmentStatus
from ..models import Assignment
from ..services import claims, submissions
from . import fast


class WorkBatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    project = serializers.CharField(source="project.name")
    instructions = serializers.CharField(source="project.instructions")
    input_schema = serializers.JSONField(source="project.input_schema")
    answer_schema = serializers.JSONField(source="project.answer_schema")
    price_cents = serializers.IntegerField()
    currency = serializers.CharField()
    lease_seconds = serializers.IntegerField()
    max_claims_per_request = serializers.IntegerField()
    priority = serializers.IntegerField()
    status = serializers.CharField()


CLAIM_MAX_COUNT = 1000


class ClaimRequestSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=CLAIM_MAX_COUNT, default=1)


class ClaimedSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Assignment id: submit, skip or release with it.")
    batch = serializers.IntegerField()
    input = serializers.JSONField()
    expires_at = serializers.DateTimeField()


class ClaimResponseSerializer(serializers.Serializer):
    assignments = ClaimedSerializer(many=True)


class SubmitRequestSerializer(serializers.Serializer):
    answer = serializers.JSONField(help_text="Must satisfy the project's answer_schema.")


class WorkAssignmentSerializer(serializers.Serializer):
    """A worker's own assignment. Deliberately no task id, gold flag or gold answer."""

    id = serializers.IntegerField()
    batch = serializers.IntegerField(source="batch_id")
    status = serializers.ChoiceField(choices=AssignmentStatus.choices)
    input = serializers.JSONField(source="task.input")
    answer = serializers.JSONField(allow_null=True)
    claimed_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    reviewed_at = serializers.DateTimeField(allow_null=True, help_text="When it was accepted or rejected.")
    review_reason = serializers.CharField(
        help_text="Why it was rejected (or accepted), if a reason was given."
    )
    explanation = serializers.CharField(
        source="feedback", allow_null=True, help_text="Training batches: why a wrong answer was wrong."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["explanation"] = data["explanation"] or None
        return data


class WorkAssignmentResultSerializer(serializers.Serializer):
    """The outcome of submit / skip / release (the input is not echoed back)."""

    id = serializers.IntegerField()
    batch = serializers.IntegerField(source="batch_id")
    status = serializers.ChoiceField(choices=AssignmentStatus.choices)
    answer = serializers.JSONField(allow_null=True)
    submitted_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    explanation = serializers.CharField(
        allow_null=True, help_text="Training batches: why a wrong answer was wrong."
    )


def _iso(value: datetime | None) -> str | None:
    """A datetime as DRF's DateTimeField renders it (UTC with a ``Z``)."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _result(assignment: Assignment) -> dict[str, Any]:
    """``WorkAssignmentResultSerializer``'s output, built directly: it is on every submit, and a
    serializer instance (field deep-copies) cost more than the rest of the view."""
    return {
        "id": assignment.pk,
        "batch": assignment.batch_id,
        "status": assignment.status,
        "answer": assignment.answer,
        "submitted_at": _iso(assignment.submitted_at),
        "ended_at": _iso(assignment.ended_at),
        "explanation": assignment.feedback or None,
    }


def _plain_count(data: Any) -> int | None:
    """The claim's ``count`` when the body is plainly valid; ``None`` sends it to the serializer,
    which owns every error message."""
    if type(data) is dict and data.keys() <= {"count"}:
        count = data.get("count", 1)
        if type(count) is int and 1 <= count <= CLAIM_MAX_COUNT:
            return count
    return None


class WorkBatchListApi(ListAPIView):
    permission_classes = [IsWorker]
    pagination_class = DefaultPagination
    serializer_class = WorkBatchSerializer

    def get_queryset(self) -> Any:
        return selectors.batch_list_for_worker(worker=self.request.worker)

    @extend_schema(summary="Open batches I may work on, highest priority first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class WorkBatchDetailApi(APIView):
    permission_classes = [IsWorker]

    @extend_schema(responses=WorkBatchSerializer)
    def get(self, request: Request, batch_id: int) -> Response:
        batch = selectors.batch_get_for_worker(worker=request.worker, batch_id=batch_id)
        return Response(WorkBatchSerializer(batch).data)


class WorkClaimApi(APIView):
    permission_classes = [IsWorker]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        return fast.lean(super().as_view(**initkwargs), _claim_lean)

    @extend_schema(
        request=ClaimRequestSerializer,
        responses=ClaimResponseSerializer,
        summary="Lease up to `count` tasks (an exhausted batch returns an empty list)",
    )
    def post(self, request: Request, batch_id: int) -> HttpResponse:
        count = _plain_count(request.data)
        if count is None:
            serializer = ClaimRequestSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            count = serializer.validated_data["count"]
        batch, active, has_overdue = selectors.batch_get_for_claim(worker=request.worker, batch_id=batch_id)
        leases = claims.assignment_claim(
            worker=request.worker,
            batch=batch,
            count=count,
            active_leases=active,
            has_overdue=has_overdue,
        )
        return HttpResponse(_leases_json(leases), content_type="application/json")


def _leases_json(leases: list[claims.Lease]) -> str:
    """Render leases by hand: each task input is already JSON text from the database, so it is
    passed through instead of being decoded and encoded again on the hot path."""
    items = ",".join(
        f'{{"id":{lease.id},"batch":{lease.batch_id},"input":{lease.input_json},'
        f'"expires_at":"{lease.expires_at.isoformat().replace("+00:00", "Z")}"}}'
        for lease in leases
    )
    return f'{{"assignments":[{items}]}}'


def _claim_lean(request: HttpRequest, batch_id: int) -> HttpResponse | None:
    """``WorkClaimApi.post`` for a plain request (see ``crowd.api.fast``)."""
    worker = fast.token_worker(request)
    count = _plain_count(fast.json_body(request)) if worker else None
    if count is None:
        return None
    try:
        batch, active, has_overdue = selectors.batch_get_for_claim(worker=worker, batch_id=batch_id)
        leases = claims.assignment_claim(
            worker=worker, batch=batch, count=count, active_leases=active, has_overdue=has_overdue
        )
    except ApplicationError as exc:
        return fast.error_response(exc)
    return fast.json_response(_leases_json(leases))


def _submit_lean(request: HttpRequest, assignment_id: int) -> HttpResponse | None:
    """``WorkSubmitApi.post`` for a plain request (see ``crowd.api.fast``)."""
    worker = fast.token_worker(request)
    data = fast.json_body(request) if worker else None
    key = request.headers.get("Idempotency-Key", "")
    if type(data) is not dict or data.get("answer") is None or len(key) > 200:
        return None
    try:
        assignment = submissions.assignment_submit(
            worker=worker, assignment_id=assignment_id, answer=data["answer"], idempotency_key=key
        )
    except ApplicationError as exc:
        return fast.error_response(exc)
    return fast.json_response(_result(assignment))


class NewestFirstCursorPagination(IdCursorPagination):
    ordering = "-id"


class WorkAssignmentListApi(ListAPIView):
    permission_classes = [IsWorker]
    pagination_class = NewestFirstCursorPagination
    serializer_class = WorkAssignmentSerializer

    def get_queryset(self) -> Any:
        wanted = self.request.query_params.get("status")
        if wanted and wanted not in AssignmentStatus.values:
            raise ValidationFailed(
                "Unknown status.",
                detail={"status": [f"Choose one of: {', '.join(AssignmentStatus.values)}."]},
            )
        return selectors.assignment_list_for_worker(worker=self.request.worker, status=wanted)

    @extend_schema(
        summary="My assignments, newest first",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=AssignmentStatus.values, required=False)
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class WorkAssignmentDetailApi(APIView):
    permission_classes = [IsWorker]

    @extend_schema(responses=WorkAssignmentSerializer)
    def get(self, request: Request, assignment_id: int) -> Response:
        assignment = selectors.assignment_get_for_worker(worker=request.worker, assignment_id=assignment_id)
        return Response(WorkAssignmentSerializer(assignment).data)


class WorkSubmitApi(APIView):
    permission_classes = [IsWorker]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        return fast.lean(super().as_view(**initkwargs), _submit_lean)

    @extend_schema(
        request=SubmitRequestSerializer,
        responses=WorkAssignmentResultSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description="A retried submit with the same key returns the first result.",
            )
        ],
        summary="Submit the answer to my active lease",
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = request.data
        if type(data) is dict and data.get("answer") is not None:
            answer = data["answer"]  # the plain case; the serializer owns the error messages
        else:
            serializer = SubmitRequestSerializer(data=data)
            serializer.is_valid(raise_exception=True)
            answer = serializer.validated_data["answer"]
        key = request.headers.get("Idempotency-Key", "")
        if len(key) > 200:
            raise ValidationFailed(
                "Idempotency-Key is too long.", detail={"Idempotency-Key": ["At most 200 characters."]}
            )
        assignment = submissions.assignment_submit(
            worker=request.worker,
            assignment_id=assignment_id,
            answer=answer,
            idempotency_key=key,
        )
        return Response(_result(assignment))


class WorkSkipApi(APIView):
    permission_classes = [IsWorker]

    @extend_schema(request=None, responses=WorkAssignmentResultSerializer, summary="Decline this task")
    def post(self, request: Request, assignment_id: int) -> Response:
        return Response(
            _result(submissions.assignment_skip(worker=request.worker, assignment_id=assignment_id))
        )


class WorkReleaseApi(APIView):
    permission_classes = [IsWorker]

    @extend_schema(request=None, responses=WorkAssignmentResultSerializer, summary="Hand the lease back")
    def post(self, request: Request, assignment_id: int) -> Response:
        return Response(
            _result(submissions.assignment_release(worker=request.worker, assignment_id=assignment_id))
        )
