"""Requester and account endpoints. Views stay thin: validate, select, call one service, render."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiRequest, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import BaseParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crowd.enums import AssignmentStatus
from crowd.selectors import worker_of

from .. import selectors, strict_json
from ..errors import ValidationFailed
from ..services import accounts, batches, projects, tasks
from .pagination import IdCursorPagination
from .permissions import IsRequester
from .serializers import (
    BatchDetailSerializer,
    BatchSerializer,
    MeSerializer,
    ProjectSerializer,
    RequesterAssignmentSerializer,
    RoleSerializer,
    TaskSerializer,
    TokenCreatedSerializer,
    TokenSerializer,
    UploadResultSerializer,
)


def _valid(serializer_class: type, data: Any, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- accounts -------------------------------------------------------------------------------


def _me(user: Any) -> dict[str, Any]:
    roles = [
        r for r, has in (("requester", selectors.requester_of(user)), ("worker", worker_of(user))) if has
    ]
    return {"id": user.pk, "email": user.email, "is_staff": user.is_staff, "roles": roles}


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer, summary="Who am I, and which roles do I hold")
    def get(self, request: Request) -> Response:
        return Response(_me(request.user))


class MeRolesApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=RoleSerializer, responses={200: MeSerializer}, summary="Take on a role")
    def post(self, request: Request) -> Response:
        data = _valid(RoleSerializer, request.data)
        accounts.role_grant(user=request.user, role=data["role"])
        user = type(request.user).objects.get(pk=request.user.pk)
        return Response(_me(user))


class TokenListCreateApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=TokenSerializer(many=True), summary="My API tokens")
    def get(self, request: Request) -> Response:
        tokens = request.user.api_tokens.order_by("-id")
        return Response(TokenSerializer(tokens, many=True).data)

    @extend_schema(
        request=TokenSerializer, responses={201: TokenCreatedSerializer}, summary="Create an API token"
    )
    def post(self, request: Request) -> Response:
        data = _valid(TokenSerializer, request.data)
        token, key = accounts.token_create(user=request.user, name=data.get("name", ""))
        token.key = key
        return Response(TokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenRevokeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={204: None}, summary="Revoke an API token")
    def delete(self, request: Request, token_id: int) -> Response:
        accounts.token_revoke(user=request.user, token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- projects -------------------------------------------------------------------------------


class ProjectListCreateApi(ListAPIView):
    permission_classes = [IsRequester]
    serializer_class = ProjectSerializer

    def get_queryset(self) -> Any:
        return selectors.project_list(requester=self.request.requester)

    @extend_schema(responses={201: ProjectSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(ProjectSerializer, request.data)
        project = projects.project_create(requester=request.requester, **data)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(responses=ProjectSerializer)
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(requester=request.requester, project_id=project_id)
        return Response(ProjectSerializer(project).data)

    @extend_schema(request=ProjectSerializer, responses=ProjectSerializer)
    def patch(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(requester=request.requester, project_id=project_id)
        data = _valid(ProjectSerializer, request.data, instance=project, partial=True)
        project = projects.project_update(project=project, data=data)
        return Response(ProjectSerializer(project).data)


# --- batches --------------------------------------------------------------------------------


class BatchListCreateApi(ListAPIView):
    permission_classes = [IsRequester]
    serializer_class = BatchSerializer

    def get_queryset(self) -> Any:
        return selectors.batch_list(requester=self.request.requester)

    @extend_schema(responses={201: BatchSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(BatchSerializer, request.data, context={"requester": request.requester})
        batch = batches.batch_create(**data)
        return Response(BatchSerializer(batch).data, status=status.HTTP_201_CREATED)


def _batch_detail(batch: Any) -> dict[str, Any]:
    batch.progress = batches.batch_progress(batch=batch)
    return BatchDetailSerializer(batch).data


class BatchDetailApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(responses=BatchDetailSerializer, summary="A batch with its progress counts")
    def get(self, request: Request, batch_id: int) -> Response:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        return Response(_batch_detail(batch))

    @extend_schema(request=BatchSerializer, responses=BatchDetailSerializer)
    def patch(self, request: Request, batch_id: int) -> Response:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        data = _valid(
            BatchSerializer,
            request.data,
            instance=batch,
            partial=True,
            context={"requester": request.requester},
        )
        batch = batches.batch_update(batch=batch, data=data)
        return Response(_batch_detail(batch))


class _BatchTransitionApi(APIView):
    permission_classes = [IsRequester]
    service: Any = None

    @extend_schema(request=None, responses=BatchDetailSerializer)
    def post(self, request: Request, batch_id: int) -> Response:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        batch = type(self).service(batch=batch)
        return Response(_batch_detail(batch))


class BatchPublishApi(_BatchTransitionApi):
    """draft|paused → open."""

    service = staticmethod(batches.batch_publish)


class BatchPauseApi(_BatchTransitionApi):
    """open → paused."""

    service = staticmethod(batches.batch_pause)


class BatchCloseApi(_BatchTransitionApi):
    """draft|open|paused → closed; active leases are released."""

    service = staticmethod(batches.batch_close)


class RawBodyParser(BaseParser):
    """Lets the upload view read the body itself (JSON array or JSON Lines) under its own limit."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return stream


JSONL_TYPES = (
    "application/x-ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
)


def _read_rows(request: Request) -> list[Any]:
    """Parse the upload body with the strict decode (``strict_json``). A JSON Lines line that does
    not parse, or is refused (``NaN``, ``1e400``, nested too deep), becomes that row's error; in a
    JSON array it refuses the whole body."""
    limit = settings.TASK_UPLOAD_MAX_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    length = int(declared) if declared.isdigit() else 0  # Django reads a bad header as 0 too
    if length > limit:
        raise ValidationFailed(f"The body exceeds {limit} bytes.", code="upload_too_large")
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise ValidationFailed(f"The body exceeds {limit} bytes.", code="upload_too_large")
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if content_type in JSONL_TYPES:
        rows: list[Any] = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                rows.append(strict_json.loads(line))
            except json.JSONDecodeError as exc:
                rows.append(tasks.MalformedRow(f"Malformed JSON: {exc.msg} at column {exc.colno}."))
            except ValueError as exc:
                rows.append(tasks.MalformedRow(f"Malformed JSON: {exc}."))
        return rows
    try:
        # One level more than a JSON Lines row: the array itself.
        rows = strict_json.loads(text, depth=strict_json.max_depth() + 1)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            f"Malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).", code="malformed_request"
        ) from exc
    except ValueError as exc:
        raise ValidationFailed(f"Malformed JSON: {exc}.", code="malformed_request") from exc
    if not isinstance(rows, list):
        raise ValidationFailed(
            "Expected a JSON array of task rows (or JSON Lines with Content-Type application/x-ndjson).",
            code="malformed_request",
        )
    return rows


class BatchTasksApi(ListAPIView):
    permission_classes = [IsRequester]
    parser_classes = [RawBodyParser]
    pagination_class = IdCursorPagination
    serializer_class = TaskSerializer

    def get_queryset(self) -> Any:
        batch = selectors.batch_get(requester=self.request.requester, batch_id=self.kwargs["batch_id"])
        qs = batch.tasks.all()
        if "is_gold" in self.request.query_params:
            qs = qs.filter(is_gold=self.request.query_params["is_gold"].lower() in {"1", "true", "yes"})
        return qs

    @extend_schema(
        summary="Tasks of a batch (requester view, gold answers included)",
        parameters=[OpenApiParameter("is_gold", OpenApiTypes.BOOL, required=False)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Bulk-upload tasks (JSON array or JSON Lines)",
        description=(
            'Rows are `{"input": {...}, "gold_answer": ... (optional), "external_id": "..." '
            "(optional)}`. Valid rows are created, invalid ones reported by index; with "
            "`?atomic=true` any invalid row refuses the whole upload (400, nothing created). A row "
            "whose `external_id` already exists in the batch is counted as a duplicate, not created."
        ),
        parameters=[OpenApiParameter("atomic", OpenApiTypes.BOOL, required=False)],
        request={
            "application/json": OpenApiRequest({"type": "array", "items": {"type": "object"}}),
            "application/x-ndjson": OpenApiRequest(OpenApiTypes.STR),
        },
        responses={201: UploadResultSerializer, 200: UploadResultSerializer},
    )
    def post(self, request: Request, batch_id: int) -> Response:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        rows = _read_rows(request)
        if len(rows) > settings.TASK_UPLOAD_MAX_ROWS:
            raise ValidationFailed(
                f"At most {settings.TASK_UPLOAD_MAX_ROWS} rows per upload; split it.",
                code="upload_too_large",
            )
        atomic = request.query_params.get("atomic", "").lower() in {"1", "true", "yes"}
        result = tasks.tasks_upload(batch=batch, rows=rows, atomic=atomic)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(result.as_dict(), status=code)


class BatchAssignmentListApi(ListAPIView):
    permission_classes = [IsRequester]
    pagination_class = IdCursorPagination
    serializer_class = RequesterAssignmentSerializer

    def get_queryset(self) -> Any:
        batch = selectors.batch_get(requester=self.request.requester, batch_id=self.kwargs["batch_id"])
        wanted = self.request.query_params.get("status")
        if wanted and wanted not in AssignmentStatus.values:
            raise ValidationFailed(
                "Unknown status.",
                detail={"status": [f"Choose one of: {', '.join(AssignmentStatus.values)}."]},
            )
        return selectors.batch_assignment_list(batch=batch, status=wanted)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "requester": self.request.requester}

    @extend_schema(
        summary="Answers and leases of a batch",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=AssignmentStatus.values, required=False)
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
