"""Admin of workers, assignments and quality control.

Assignments and restrictions carry state (and, through verdicts, money): their rows are view-only
and they change only through actions calling the same services as the API, so a verdict moves the
task counters, pays through the ledger and writes its ``AssignmentEvent`` exactly as a requester's
does. Workers are shown by e-mail (``Worker.__str__``), with the user selected alongside.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from marketplace.admin_actions import (
    REASON_MAX_CHARS,
    ActionsOnlyAdmin,
    ReadOnlyAdmin,
    ReasonForm,
    apply_each,
    confirm_and_apply,
)
from marketplace.errors import ValidationFailed

from .enums import AssignmentStatus, RestrictionScope, Verdict
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
from .quality.restrictions import (
    restriction_admin_check,
    restriction_create_by_admin,
    restriction_lift,
)
from .quality.review import assignments_review_by_admin


class RestrictForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        max_length=REASON_MAX_CHARS,
        help_text="The worker sees it.",
    )
    hours = forms.IntegerField(
        required=False, min_value=1, max_value=24 * 365, help_text="Empty: until lifted."
    )


@admin.register(Worker)
class WorkerAdmin(ActionsOnlyAdmin):
    list_display = ["id", "user__email", "created_at"]
    list_select_related = ["user"]
    search_fields = ["user__email"]
    fields = ["user", "created_at"]
    readonly_fields = fields
    actions = ["restrict"]

    @admin.action(description="Restrict on the whole platform (asks for a reason)", permissions=["change"])
    def restrict(self, request: HttpRequest, queryset: QuerySet[Worker]) -> TemplateResponse | None:
        def call(worker: Worker, data: dict[str, Any]) -> object:
            now, hours = timezone.now(), data["hours"]
            return restriction_create_by_admin(
                worker_id=worker.pk,
                scope=RestrictionScope.PLATFORM,
                reason=data["reason"],
                user_id=request.user.pk,
                ends_at=None if hours is None else now + timedelta(hours=hours),
                now=now,
            )

        return confirm_and_apply(
            self,
            request,
            queryset,
            action="restrict",
            title="Restrict on the whole platform",
            explanation="The workers cannot claim any task until the end you set, or until lifted.",
            call=call,
            done="Restricted {n} worker(s).",
            form_class=RestrictForm,
        )


@admin.register(Assignment)
class AssignmentAdmin(ActionsOnlyAdmin):
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
    list_select_related = ["batch", "task", "worker__user"]
    actions = ["accept", "reject", "reverse"]

    @admin.action(description="Accept submitted answers (pays the workers)", permissions=["change"])
    def accept(self, request: HttpRequest, queryset: QuerySet[Assignment]) -> None:
        apply_each(
            self,
            request,
            queryset.order_by("pk"),
            lambda a: assignments_review_by_admin(
                assignment_ids=[a.pk],
                verdict=Verdict.ACCEPT,
                user_id=request.user.pk,
                from_status=AssignmentStatus.SUBMITTED,
            ),
            done="Accepted {n} assignment(s).",
        )

    @admin.action(description="Reject submitted answers (asks for a reason)", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[Assignment]) -> TemplateResponse | None:
        return confirm_and_apply(
            self,
            request,
            queryset,
            action="reject",
            title="Reject",
            explanation=(
                "Each answer's slot goes back to its task and no money moves. The worker sees the reason."
            ),
            call=lambda a, data: assignments_review_by_admin(
                assignment_ids=[a.pk],
                verdict=Verdict.REJECT,
                reason=data["reason"],
                user_id=request.user.pk,
                from_status=AssignmentStatus.SUBMITTED,
            ),
            done="Rejected {n} assignment(s).",
        )

    @admin.action(
        description="Reverse rejections: accept and pay (asks for a reason)", permissions=["change"]
    )
    def reverse(self, request: HttpRequest, queryset: QuerySet[Assignment]) -> TemplateResponse | None:
        return confirm_and_apply(
            self,
            request,
            queryset,
            action="reverse",
            title="Reverse the rejection",
            explanation=(
                "Each rejected answer becomes accepted and its worker is paid from the requester's reserve "
                "or available balance. The worker sees the reason."
            ),
            call=lambda a, data: assignments_review_by_admin(
                assignment_ids=[a.pk],
                verdict=Verdict.ACCEPT,
                reason=data["reason"],
                user_id=request.user.pk,
                from_status=AssignmentStatus.REJECTED,
            ),
            done="Reversed {n} rejection(s).",
            form_class=ReasonForm,
        )


@admin.register(AssignmentEvent)
class AssignmentEventAdmin(ReadOnlyAdmin):
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
    list_select_related = ["assignment", "actor_user", "rule"]


@admin.register(Reliability)
class ReliabilityAdmin(ReadOnlyAdmin):
    list_display = ["id", "worker", "project", "gold_correct", "gold_total", "updated_at"]
    list_select_related = ["worker__user", "project"]


@admin.register(TrainingResult)
class TrainingResultAdmin(ReadOnlyAdmin):
    list_display = ["id", "worker", "batch", "accuracy", "passed", "finished_at"]
    list_select_related = ["worker__user", "batch"]


@admin.register(WorkerSkill)
class WorkerSkillAdmin(admin.ModelAdmin):
    list_display = ["id", "worker", "skill", "value", "updated_at"]
    list_select_related = ["worker__user", "skill"]
    raw_id_fields = ["worker", "skill"]


@admin.register(QualityRule)
class QualityRuleAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "kind", "params", "action", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
    list_select_related = ["batch"]
    raw_id_fields = ["batch"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # switched off, never deleted: events and restrictions name their rule


class RestrictionAddForm(forms.ModelForm):
    """The admin's restriction: the service's checks (``restriction_admin_check``) shown as form
    errors before anything is written."""

    class Meta:
        model = Restriction
        fields = ["worker", "scope", "batch", "project", "requester", "reason", "ends_at"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        try:
            restriction_admin_check(
                scope=data["scope"],
                reason=data["reason"],
                ends_at=data.get("ends_at"),
                now=timezone.now(),
                batch_id=data["batch"].pk if data.get("batch") else None,
                project_id=data["project"].pk if data.get("project") else None,
                requester_id=data["requester"].pk if data.get("requester") else None,
            )
        except ValidationFailed as exc:
            for field, problems in exc.detail.items():
                for problem in problems:
                    self.add_error(field, problem)
        return data


@admin.action(description="Lift the selected restrictions", permissions=["change"])
def lift(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Restriction]) -> None:
    apply_each(
        modeladmin,
        request,
        queryset.order_by("pk"),
        lambda r: restriction_lift(restriction_id=r.pk, requester=None, user_id=request.user.pk),
        done="Lifted {n} restriction(s).",
    )


@admin.register(Restriction)
class RestrictionAdmin(ActionsOnlyAdmin):
    """Added through ``restriction_create_by_admin`` (any scope, stamped with the admin and now),
    lifted through ``restriction_lift``; an existing restriction is never edited or deleted."""

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
    list_select_related = ["worker__user", "batch", "project", "requester__user", "rule"]
    raw_id_fields = ["worker", "batch", "project", "requester"]
    form = RestrictionAddForm
    actions = [lift]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_add_permission(self, request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else [f.name for f in Restriction._meta.concrete_fields]

    def save_model(self, request: HttpRequest, obj: Restriction, form: Any, change: bool) -> None:
        """Only adds reach here (an existing restriction's form refuses POSTs): the service writes the
        row, and ``obj`` takes its values so the admin's log and redirect name it."""
        created = restriction_create_by_admin(
            worker_id=obj.worker_id,
            scope=obj.scope,
            reason=obj.reason,
            user_id=request.user.pk,
            ends_at=obj.ends_at,
            batch_id=obj.batch_id,
            project_id=obj.project_id,
            requester_id=obj.requester_id,
        )
        for field in Restriction._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False


from . import admin_appeals  # noqa: E402,F401
