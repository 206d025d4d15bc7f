"""Requester result endpoints: streamed exports, snapshots and agreement metrics of a batch."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors
from ..errors import NotFound, ValidationFailed
from ..models import BatchSnapshot
from ..services import results
from .permissions import IsRequester

FORMATS = {
    "jsonl": ("application/x-ndjson", results.results_jsonl),
    "csv": ("text/csv; charset=utf-8", results.results_csv),
}


class BatchResultsApi(APIView):
    permission_classes = [IsRequester]
    # One renderer (for errors; rows are streamed as they are), so ``?format=csv`` picks our format
    # and is never read as a DRF renderer choice, which with the browsable API on would be a 404.
    renderer_classes = [JSONRenderer]

    @extend_schema(
        summary="Stream a batch's results",
        description=(
            "One row per regular task: task id, external_id, input, consensus answer, confidence, "
            "answers_count, method and model_version (0: computed when the task reached its overlap; "
            "n: the batch's n-th full re-fit). JSON Lines rows also carry the individual answers with "
            "worker pseudonyms, times and statuses. Streamed in constant memory."
        ),
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), required=False)],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
        },
    )
    def get(self, request: Request, batch_id: int) -> StreamingHttpResponse:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in FORMATS:
            raise ValidationFailed(
                "Unknown format.", detail={"format": [f"Choose one of: {', '.join(FORMATS)}."]}
            )
        content_type, render = FORMATS[fmt]
        response = StreamingHttpResponse(render(batch), content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}-results.{fmt}"'
        return response


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = BatchSnapshot
        fields = [
            "id",
            "batch",
            "status",
            "error",
            "sha256",
            "size_bytes",
            "tasks_count",
            "answers_count",
            "method",
            "model_version",
            "parameters",
            "created_at",
            "completed_at",
        ]


class BatchSnapshotListCreateApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(responses=SnapshotSerializer(many=True), summary="Snapshots of a batch's results")
    def get(self, request: Request, batch_id: int) -> Response:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        rows = BatchSnapshot.objects.filter(batch=batch).order_by("-id")
        return Response(SnapshotSerializer(rows, many=True).data)

    @extend_schema(
        request=None,
        responses={202: SnapshotSerializer},
        summary="Freeze the current results into an immutable file (JSON Lines, SHA-256)",
        description=(
            "Accepted at once as `pending`; a background worker writes the file (minutes for a "
            "million tasks) and the snapshot turns `ready`, with its checksum and counts, or "
            "`failed`, with `error`. Poll the list; download once ready. A ready snapshot never "
            "changes."
        ),
    )
    def post(self, request: Request, batch_id: int) -> Response:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        snapshot = results.snapshot_request(batch=batch, user=request.user)
        return Response(SnapshotSerializer(snapshot).data, status=status.HTTP_202_ACCEPTED)


class BatchSnapshotDownloadApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(
        summary="Download a snapshot (its checksum verified first)",
        description="409 `snapshot_pending` while it is being written, `snapshot_failed` if it failed.",
        responses={(200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request: Request, batch_id: int, snapshot_id: int) -> FileResponse:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        snapshot = BatchSnapshot.objects.filter(batch=batch, id=snapshot_id).first()
        if snapshot is None:
            raise NotFound("Snapshot not found.")
        path = results.snapshot_path_verified(snapshot)
        response = FileResponse(
            open(path, "rb"),  # noqa: SIM115  (FileResponse closes it)
            as_attachment=True,
            filename=f"batch-{batch.pk}-snapshot-{snapshot.pk}.jsonl",
            content_type="application/x-ndjson",
        )
        response["X-Checksum-SHA256"] = snapshot.sha256
        return response


class WorkerAgreementSerializer(serializers.Serializer):
    worker = serializers.CharField(help_text="The worker's pseudonym for you.")
    answers = serializers.IntegerField()
    pairs = serializers.IntegerField(help_text="Workers sharing at least min_shared_tasks tasks.")
    mean_kappa = serializers.FloatField(allow_null=True, help_text="Mean Cohen's kappa, weighted by tasks.")


class AgreementSerializer(serializers.Serializer):
    answers = serializers.IntegerField()
    tasks = serializers.IntegerField()
    workers = serializers.IntegerField()
    krippendorff_alpha = serializers.FloatField(allow_null=True, help_text="Nominal.")
    krippendorff_alpha_interval = serializers.FloatField(allow_null=True, help_text="Numeric projects only.")
    fleiss_kappa = serializers.FloatField(allow_null=True)
    min_shared_tasks = serializers.IntegerField()
    per_worker = WorkerAgreementSerializer(many=True)


class AgreementQuerySerializer(serializers.Serializer):
    min_shared = serializers.IntegerField(min_value=1, max_value=100_000, default=10)


class BatchAgreementApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(
        summary="Agreement metrics of a batch's answers",
        parameters=[AgreementQuerySerializer],
        responses=AgreementSerializer,
    )
    def get(self, request: Request, batch_id: int) -> Response:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        query = AgreementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        body: dict[str, Any] = results.batch_agreement(
            batch=batch, min_shared=query.validated_data["min_shared"]
        )
        return Response(body)
