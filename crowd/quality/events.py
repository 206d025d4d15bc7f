"""The insert-only transition log of assignments."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..enums import Actor
from ..models import AssignmentEvent

# For the hand-written statements (fast submit, lazy expiry): the same row as ``events_add``.
EVENT_COLUMNS = "assignment_id, from_status, to_status, actor, actor_user_id, rule_id, reason, created_at"


def events_add(
    assignment_ids: Iterable[int],
    *,
    from_status: str,
    to_status: str,
    actor: Actor | str,
    now: datetime,
    actor_user_id: int | None = None,
    rule_id: int | None = None,
    reason: str = "",
) -> None:
    """Append one event per assignment, in one INSERT. Caller holds the transaction that made the
    transition, so the log and the state never disagree."""
    AssignmentEvent.objects.bulk_create(
        [
            AssignmentEvent(
                assignment_id=pk,
                from_status=from_status,
                to_status=to_status,
                actor=actor,
                actor_user_id=actor_user_id,
                rule_id=rule_id,
                reason=reason,
                created_at=now,
            )
            for pk in assignment_ids
        ]
    )
