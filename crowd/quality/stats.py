"""Reads for quality views: a worker's own standing, and per-worker stats of a project."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from marketplace.models import Project
from marketplace.selectors import worker_pseudonym

from ..enums import AssignmentStatus
from ..models import Assignment, Reliability, Worker, WorkerSkill
from .reliability import estimate, reveal_delay
from .restrictions import active_q, restrictions_active_for

REVIEWED = Q(status__in=[AssignmentStatus.ACCEPTED, AssignmentStatus.REJECTED])


def _acceptance(accepted: int, rejected: int) -> float | None:
    return None if accepted + rejected == 0 else round(accepted / (accepted + rejected), 4)


def _delayed(worker: Worker, now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = (
        Assignment.objects.filter(
            worker=worker,
            gold_correct__isnull=False,
            submitted_at__lte=now - reveal_delay(),  # see reveal_delay: no single submit shows
            batch__is_training=False,
        )
        .values("batch__project_id", "batch__project__name")
        .annotate(n=Count("id"), ok=Count("id", filter=Q(gold_correct=True)))
        .order_by("batch__project_id")
    )

    def shown(ok: int, n: int) -> dict[str, Any]:
        e = estimate(ok, n)
        return {
            "score": round(e.mean, 4),
            "interval": [round(e.low, 4), round(e.high, 4)],
            "answers_counted": n,
        }

    per_project = [
        {
            "project": r["batch__project_id"],
            "project_name": r["batch__project__name"],
            **shown(r["ok"], r["n"]),
        }
        for r in rows
    ]
    return shown(sum(r["ok"] for r in rows), sum(r["n"] for r in rows)), per_project


def worker_standing(*, worker: Worker) -> dict[str, Any]:
    """What ``GET /work/me`` shows: never a gold answer, a per-task score or which tasks were gold."""
    overall, per_project = _delayed(worker, timezone.now())
    counts = Assignment.objects.filter(worker=worker).aggregate(
        accepted=Count("id", filter=Q(status=AssignmentStatus.ACCEPTED)),
        rejected=Count("id", filter=Q(status=AssignmentStatus.REJECTED)),
        pending=Count("id", filter=Q(status=AssignmentStatus.SUBMITTED)),
    )
    return {
        "reliability": overall,
        "reliability_by_project": per_project,
        "answers_accepted": counts["accepted"],
        "answers_rejected": counts["rejected"],
        "answers_pending_review": counts["pending"],
        "acceptance_rate": _acceptance(counts["accepted"], counts["rejected"]),
        "skills": [
            {"skill": ws.skill_id, "name": ws.skill.name, "value": ws.value}
            for ws in WorkerSkill.objects.filter(worker=worker).select_related("skill").order_by("skill_id")
        ],
        "restrictions": [
            {
                "id": r.pk,
                "scope": r.scope,
                "batch": r.batch_id,
                "project": r.project_id,
                "reason": r.reason,
                "created_at": r.created_at,
                "ends_at": r.ends_at,
            }
            for r in restrictions_active_for(worker=worker)
        ],
    }


def project_workers(*, project: Project) -> list[dict[str, Any]]:
    """Per-worker stats of one project, each worker under the requester's pseudonym for them."""
    requester_id = project.requester_id
    now = timezone.now()
    per_worker = (
        Assignment.objects.filter(batch__project=project)
        .values("worker_id")
        .annotate(
            answers=Count("id", filter=Q(status__in=[AssignmentStatus.SUBMITTED]) | REVIEWED),
            accepted=Count("id", filter=Q(status=AssignmentStatus.ACCEPTED)),
            rejected=Count("id", filter=Q(status=AssignmentStatus.REJECTED)),
            skipped=Count("id", filter=Q(status=AssignmentStatus.SKIPPED)),
        )
        .order_by("worker_id")
    )
    reliability = {
        r.worker_id: r
        for r in Reliability.objects.filter(
            project=project, worker_id__in=[w["worker_id"] for w in per_worker]
        )
    }
    from ..models import Restriction

    restricted = set(
        Restriction.objects.filter(active_q(now))
        .filter(
            Q(project=project)
            | Q(batch__project=project)
            | Q(requester_id=requester_id)
            | Q(scope="platform")
        )
        .values_list("worker_id", flat=True)
    )
    result = []
    for w in per_worker:
        rel = reliability.get(w["worker_id"])
        result.append(
            {
                "worker": worker_pseudonym(requester_id=requester_id, worker_id=w["worker_id"]),
                "answers": w["answers"],
                "accepted": w["accepted"],
                "rejected": w["rejected"],
                "skipped": w["skipped"],
                "acceptance_rate": _acceptance(w["accepted"], w["rejected"]),
                "reliability": estimate(rel.gold_correct, rel.gold_total).as_dict()
                if rel
                else estimate(0, 0).as_dict(),
                "is_restricted": w["worker_id"] in restricted,
            }
        )
    result.sort(key=lambda r: r["worker"])
    return result


def worker_by_pseudonym(*, requester_id: int, pseudonym: str) -> int | None:
    """The worker id behind a requester's pseudonym, among workers who worked for them."""
    ids = (
        Assignment.objects.filter(batch__project__requester_id=requester_id)
        .values_list("worker_id", flat=True)
        .distinct()
    )
    for worker_id in ids:
        if worker_pseudonym(requester_id=requester_id, worker_id=worker_id) == pseudonym:
            return worker_id
    return None
