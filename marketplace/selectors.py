"""Permission-aware reads for requesters: another requester's objects are simply not found."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.db.models import QuerySet

from crowd.models import Assignment

from .errors import NotFound
from .models import Batch, Project, Requester, User


def requester_of(user: User) -> Requester | None:
    try:
        return user.requester
    except Requester.DoesNotExist:
        return None


def project_list(*, requester: Requester) -> QuerySet[Project]:
    return Project.objects.filter(requester=requester).order_by("-id")


def project_get(*, requester: Requester, project_id: int) -> Project:
    project = Project.objects.filter(requester=requester, id=project_id).first()
    if project is None:
        raise NotFound("Project not found.")
    return project


def batch_list(*, requester: Requester) -> QuerySet[Batch]:
    return (
        Batch.objects.filter(project__requester=requester).prefetch_related("skill_filters").order_by("-id")
    )


def batch_get(*, requester: Requester, batch_id: int) -> Batch:
    batch = Batch.objects.select_related("project").filter(project__requester=requester, id=batch_id).first()
    if batch is None:
        raise NotFound("Batch not found.")
    return batch


def batch_assignment_list(*, batch: Batch, status: str | None = None) -> QuerySet[Assignment]:
    qs = Assignment.objects.filter(batch=batch).select_related("task").order_by("id")
    if status:
        qs = qs.filter(status=status)
    return qs


def worker_pseudonym(*, requester_id: int, worker_id: int) -> str:
    """A stable per-requester name for a worker: requesters never see worker accounts, and two
    requesters cannot join their views of one worker."""
    digest = hmac.new(
        settings.PSEUDONYM_KEY.encode(), f"{requester_id}:{worker_id}".encode(), hashlib.sha256
    ).hexdigest()
    return f"w-{digest[:12]}"
