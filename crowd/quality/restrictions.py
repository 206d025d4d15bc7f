"""Restrictions: creating, lifting, and the eligibility checks that enforce them (and filters).

The checks are SQL fragments so the worker's batch list stays one query and the claim's batch
read stays one statement; they are written in portable SQL (PostgreSQL and SQLite).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from marketplace.errors import Conflict, Forbidden, NotFound, ValidationFailed
from marketplace.models import Batch, Requester

from ..enums import Actor, RestrictionScope
from ..models import Restriction, Worker
from .reliability import mean_sql, reveal_delay


def active_q(now: datetime) -> Q:
    return Q(lifted_at__isnull=True) & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))


def restrictions_active_for(*, worker: Worker, now: datetime | None = None) -> QuerySet[Restriction]:
    return Restriction.objects.filter(active_q(now or timezone.now()), worker=worker).order_by("-id")


def restriction_for_batch(*, worker_id: int, batch: Batch, now: datetime) -> Restriction | None:
    """The first active restriction that bars the worker from ``batch``, if any."""
    reach = (
        Q(scope=RestrictionScope.PLATFORM)
        | Q(scope=RestrictionScope.BATCH, batch_id=batch.pk)
        | Q(scope=RestrictionScope.PROJECT, project_id=batch.project_id)
        | Q(scope=RestrictionScope.REQUESTER, requester__projects=batch.project_id)
    )
    return Restriction.objects.filter(active_q(now), reach, worker_id=worker_id).order_by("-id").first()


def _target(scope: str, batch: Batch) -> dict[str, Any]:
    return {
        RestrictionScope.BATCH: {"batch_id": batch.pk},
        RestrictionScope.PROJECT: {"project_id": batch.project_id},
        RestrictionScope.REQUESTER: {"requester_id": batch.project.requester_id},
        RestrictionScope.PLATFORM: {},
    }[scope]


def restriction_create(
    *,
    worker_id: int,
    scope: str,
    batch: Batch,
    reason: str,
    created_by: Actor,
    duration: timedelta | None,
    now: datetime,
    user_id: int | None = None,
    rule_id: int | None = None,
) -> Restriction:
    """Bar a worker at ``scope`` (relative to ``batch``) for ``duration`` (None: permanent)."""
    return _insert(
        worker_id=worker_id,
        scope=scope,
        target=_target(scope, batch),
        reason=reason,
        created_by=created_by,
        now=now,
        ends_at=None if duration is None else now + duration,
        user_id=user_id,
        rule_id=rule_id,
    )


def _insert(
    *,
    worker_id: int,
    scope: str,
    target: dict[str, Any],
    reason: str,
    created_by: Actor,
    now: datetime,
    ends_at: datetime | None,
    user_id: int | None,
    rule_id: int | None,
) -> Restriction:
    return Restriction.objects.create(
        worker_id=worker_id,
        scope=scope,
        reason=reason,
        created_by=created_by,
        created_by_user_id=user_id,
        rule_id=rule_id,
        created_at=now,
        ends_at=ends_at,
        **target,
    )


# The one target column a restriction at each scope names (platform: none).
_TARGET_COLUMN = {
    RestrictionScope.BATCH: "batch_id",
    RestrictionScope.PROJECT: "project_id",
    RestrictionScope.REQUESTER: "requester_id",
    RestrictionScope.PLATFORM: None,
}


def restriction_admin_check(
    *,
    scope: str,
    reason: str,
    ends_at: datetime | None,
    now: datetime,
    batch_id: int | None = None,
    project_id: int | None = None,
    requester_id: int | None = None,
) -> dict[str, int]:
    """The target columns of an admin's restriction: exactly the scope's own (none at platform
    scope). ValidationFailed, ``detail`` by field, for a missing or extra target, a blank reason or
    an end not in the future. Reads nothing, so the admin's form can show the errors first."""
    given = {"batch_id": batch_id, "project_id": project_id, "requester_id": requester_id}
    if scope not in _TARGET_COLUMN:
        raise ValidationFailed(
            "Unknown scope.", detail={"scope": [f"Choose one of {RestrictionScope.values}."]}
        )
    own = _TARGET_COLUMN[RestrictionScope(scope)]
    errors: dict[str, list[str]] = {}
    for column, value in given.items():
        if column == own and value is None:
            errors[column.removesuffix("_id")] = [f"Required for a {scope} restriction."]
        elif column != own and value is not None:
            errors[column.removesuffix("_id")] = [f"Leave empty for a {scope} restriction."]
    if not reason.strip():
        errors["reason"] = ["Required."]
    if ends_at is not None and ends_at <= now:
        errors["ends_at"] = ["Must be in the future (empty: permanent)."]
    if errors:
        raise ValidationFailed("The restriction is not valid.", detail=errors)
    return {column: value for column, value in given.items() if value is not None}  # the scope's own


def restriction_create_by_admin(
    *,
    worker_id: int,
    scope: str,
    reason: str,
    user_id: int,
    ends_at: datetime | None = None,
    batch_id: int | None = None,
    project_id: int | None = None,
    requester_id: int | None = None,
    now: datetime | None = None,
) -> Restriction:
    """An admin bars a worker at any scope, platform included, from ``now`` (default: the current
    time) until ``ends_at`` (None: permanent).

    The target is named directly (``batch_id``, ``project_id`` or ``requester_id``: the scope's
    own, see ``restriction_admin_check``), not relative to a batch as for requesters and rules.
    """
    now = now or timezone.now()
    target = restriction_admin_check(
        scope=scope,
        reason=reason,
        ends_at=ends_at,
        now=now,
        batch_id=batch_id,
        project_id=project_id,
        requester_id=requester_id,
    )
    return _insert(
        worker_id=worker_id,
        scope=scope,
        target=target,
        reason=reason.strip(),
        created_by=Actor.ADMIN,
        now=now,
        ends_at=ends_at,
        user_id=user_id,
        rule_id=None,
    )


def restriction_lift(*, restriction_id: int, requester: Requester | None, user_id: int) -> Restriction:
    """Lift a restriction. A requester may lift those scoped to their own batches, projects or
    account (others' are 404); ``requester=None`` is an admin, who may lift any. Lifting twice
    or lifting an ended restriction is 409."""
    now = timezone.now()
    with transaction.atomic():
        qs = Restriction.objects.select_for_update(of=("self",)).filter(id=restriction_id)
        if requester is not None:
            qs = qs.filter(
                Q(batch__project__requester=requester)
                | Q(project__requester=requester)
                | Q(requester=requester)
            )
        restriction = qs.first()
        if restriction is None:
            raise NotFound("Restriction not found.")
        if restriction.lifted_at is not None or (restriction.ends_at and restriction.ends_at <= now):
            raise Conflict("The restriction is no longer active.", code="restriction_inactive")
        restriction.lifted_at = now
        restriction.lifted_by_id = user_id
        restriction.save(update_fields=["lifted_at", "lifted_by"])
    return restriction


def restriction_create_by_requester(
    *,
    requester: Requester,
    worker_id: int,
    batch: Batch,
    scope: str,
    reason: str,
    hours: int | None,
    user_id: int,
) -> Restriction:
    if scope == RestrictionScope.PLATFORM:
        raise Forbidden("Only admins restrict at platform scope.", code="platform_scope_admin_only")
    if not reason.strip():
        raise ValidationFailed("A restriction needs a reason.", detail={"reason": ["Required."]})
    return restriction_create(
        worker_id=worker_id,
        scope=scope,
        batch=batch,
        reason=reason.strip(),
        created_by=Actor.REQUESTER,
        duration=None if hours is None else timedelta(hours=hours),
        now=timezone.now(),
        user_id=user_id,
    )


# --- eligibility as SQL ----------------------------------------------------------------------
# ``{b}`` is the batch table alias, ``{p}`` an expression for the batch's requester id. Named
# placeholders %(worker)s and %(now)s.

RESTRICTED_SQL = """EXISTS (SELECT 1 FROM crowd_restriction r
  WHERE r.worker_id = %(worker)s AND r.lifted_at IS NULL AND (r.ends_at IS NULL OR r.ends_at > %(now)s)
    AND (r.scope = 'platform' OR r.batch_id = {b}.id OR r.project_id = {b}.project_id
         OR r.requester_id = {p}))"""

# A skill filter fails when the worker's value does not satisfy it; comparisons are guarded so a
# missing skill never passes a >=, <= or == filter (NULL in SQL would).
FILTERS_FAIL_SQL = """EXISTS (SELECT 1 FROM marketplace_batchskillfilter f
  LEFT JOIN crowd_workerskill ws ON ws.skill_id = f.skill_id AND ws.worker_id = %(worker)s
  WHERE f.batch_id = {b}.id AND NOT (
       (f.op = 'exists' AND ws.id IS NOT NULL)
    OR (f.op = 'not exists' AND ws.id IS NULL)
    OR (f.op = '>=' AND ws.id IS NOT NULL AND ws.value >= f.value)
    OR (f.op = '<=' AND ws.id IS NOT NULL AND ws.value <= f.value)
    OR (f.op = '==' AND ws.id IS NOT NULL AND ws.value = f.value)))
OR ({b}.min_reliability IS NOT NULL AND {b}.min_reliability > (
  SELECT {mean} FROM crowd_assignment sa JOIN marketplace_batch sb ON sb.id = sa.batch_id
  WHERE sa.worker_id = %(worker)s AND sa.gold_correct IS NOT NULL AND sa.submitted_at <= %(shown)s
    AND sb.project_id = {b}.project_id AND NOT sb.is_training))"""
# The reliability filter reads the same lagged figure as ``work/me`` (control answers older than
# the reveal delay, ``reliability.reveal_delay``), not the live reliability row: a batch that turned
# from visible to hidden right after a submit would tell the worker that it was a wrong control
# answer. ``%(shown)s`` is ``now - reveal_delay()``; no answers yet gives the prior's mean.


def _fragments(b: str, p: str) -> tuple[str, str]:
    restricted = RESTRICTED_SQL.format(b=b, p=p)
    failing = FILTERS_FAIL_SQL.format(
        b=b, mean=mean_sql("COALESCE(SUM(CASE WHEN sa.gold_correct THEN 1 ELSE 0 END), 0)", "COUNT(*)")
    )
    return restricted, failing


def eligibility_params(*, worker_id: int, now: datetime) -> dict[str, Any]:
    """The named parameters the eligibility fragments read."""
    return {"worker": worker_id, "now": now, "shown": now - reveal_delay()}


def claim_columns_sql(b: str = "b", p: str = "p.requester_id") -> str:
    """Two extra boolean columns for the claim's batch read: (restricted, filters_fail)."""
    restricted, failing = _fragments(b, p)
    return f"{restricted},\n({failing})"


def eligible_batches(qs: QuerySet[Batch], *, worker: Worker, now: datetime) -> QuerySet[Batch]:
    """Drop the batches the worker is restricted from or whose filters they do not match."""
    b = Batch._meta.db_table
    restricted, failing = _fragments(
        b, f"(SELECT requester_id FROM marketplace_project WHERE id = {b}.project_id)"
    )
    sql = f"NOT ({restricted}) AND NOT ({failing})"
    positional, params = _positional(sql, eligibility_params(worker_id=worker.pk, now=now))
    return qs.extra(where=[positional], params=params)


def _positional(sql: str, named: dict[str, Any]) -> tuple[str, list[Any]]:
    """Turn %(name)s placeholders into %s with a parameter list in order (``extra`` wants those)."""
    import re

    order: list[Any] = []

    def sub(match: re.Match[str]) -> str:
        order.append(named[match.group(1)])
        return "%s"

    return re.sub(r"%\((\w+)\)s", sub, sql), order


def ensure_eligible(
    *, worker: Worker, batch: Batch, restricted: bool, filters_fail: bool, now: datetime
) -> None:
    """403 when a restriction bars the worker from the batch or they do not match its filters."""
    if restricted:
        r = restriction_for_batch(worker_id=worker.pk, batch=batch, now=now)
        raise Forbidden(
            "You are restricted from this batch.",
            code="worker_restricted",
            detail={
                "reason": r.reason if r else "",
                "ends_at": r.ends_at.isoformat().replace("+00:00", "Z") if r and r.ends_at else None,
            },
        )
    if filters_fail:
        raise Forbidden("You do not meet this batch's requirements.", code="filters_not_met")


def eligibility_flags(*, worker: Worker, batch_id: int, now: datetime) -> tuple[bool, bool]:
    """(restricted, filters_fail) for one batch, through the ORM (the portable claim path)."""
    restricted, failing = _fragments("b", "p.requester_id")
    sql = (
        f"SELECT {restricted}, ({failing}) FROM marketplace_batch b "
        "JOIN marketplace_project p ON p.id = b.project_id WHERE b.id = %(batch)s"
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, {**eligibility_params(worker_id=worker.pk, now=now), "batch": batch_id})
        row = cursor.fetchone()
    return (bool(row[0]), bool(row[1])) if row else (False, False)
