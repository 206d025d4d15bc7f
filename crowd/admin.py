from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from .enums import Actor
from .models import (
    Assignment,
    AssignmentEvent,
    QualityRule,
    Reliability,
    Restriction,
    TrainingResult,
    Worker,
    WorkerSkill,
)


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "created_at"]
    raw_id_fields = ["user"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "batch",
        "task",
        "worker",
        "status",
        "is_gold",
        "gold_correct",
        "claimed_at",
        "submitted_at",
    ]
    list_filter = ["status", "is_gold"]
    raw_id_fields = ["task", "batch", "worker"]


class _ReadOnly(admin.ModelAdmin):
    """Insert-only history: visible, never edited or deleted here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AssignmentEvent)
class AssignmentEventAdmin(_ReadOnly):
    list_display = [
        "id",
        "assignment",
        "from_status",
        "to_status",
        "actor",
        "actor_user",
        "rule",
        "created_at",
    ]
    list_filter = ["to_status", "actor"]
    raw_id_fields = ["assignment", "actor_user", "rule"]


@admin.register(Reliability)
class ReliabilityAdmin(_ReadOnly):
    list_display = ["id", "worker", "project", "gold_correct", "gold_total", "updated_at"]


@admin.register(TrainingResult)
class TrainingResultAdmin(_ReadOnly):
    list_display = ["id", "worker", "batch", "accuracy", "passed", "finished_at"]


@admin.register(WorkerSkill)
class WorkerSkillAdmin(admin.ModelAdmin):
    list_display = ["id", "worker", "skill", "value", "updated_at"]
    raw_id_fields = ["worker", "skill"]


@admin.register(QualityRule)
class QualityRuleAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "kind", "params", "action", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
    raw_id_fields = ["batch"]


@admin.action(description="Lift the selected restrictions")
def lift(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: Any) -> None:
    queryset.filter(lifted_at__isnull=True).update(lifted_at=timezone.now(), lifted_by=request.user)


@admin.register(Restriction)
class RestrictionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "worker",
        "scope",
        "batch",
        "project",
        "requester",
        "created_by",
        "rule",
        "created_at",
        "ends_at",
        "lifted_at",
    ]
    list_filter = ["scope", "created_by"]
    raw_id_fields = ["worker", "batch", "project", "requester", "created_by_user", "rule", "lifted_by"]
    readonly_fields = ["created_by", "created_by_user", "rule", "created_at", "lifted_at", "lifted_by"]
    actions = [lift]

    def save_model(self, request: HttpRequest, obj: Restriction, form: Any, change: bool) -> None:
        """A restriction added here is the admin's: stamped with who and when, never typed in.

        No model default for ``created_at``: the services always pass their own ``now``.
        """
        if not change:
            obj.created_at = timezone.now()
            obj.created_by = Actor.ADMIN
            obj.created_by_user = request.user
        super().save_model(request, obj, form, change)


from . import admin_appeals  # noqa: E402,F401
