"""Admin of users, requesters, projects, batches and tasks.

Batches and tasks carry state and money: their rows are view-only and a batch moves only through
the actions, which call the lifecycle services (``marketplace.services.batches``). Nothing that
would orphan money (ledger accounts refer to requesters and workers by id) can be deleted here.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from crowd.models import Worker
from payments.admin import freeze, unfreeze

from .admin_actions import ActionsOnlyAdmin, ReadOnlyAdmin, apply_each
from .enums import BatchStatus
from .models import ApiToken, Batch, BatchSkillFilter, Project, Requester, Skill, Task, User
from .services import batches, projects


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "is_staff", "is_active", "date_joined"]
    search_fields = ["email"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A requester's or worker's ledger accounts name them by id, with no foreign key to cascade
        or protect: deleting the user would orphan that money. Deactivate them instead."""
        if obj is not None and (
            Requester.objects.filter(user=obj).exists() or Worker.objects.filter(user=obj).exists()
        ):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Requester)
class RequesterAdmin(admin.ModelAdmin):
    """The display name is editable; the user is fixed (the requester's money is keyed by this row),
    and freezing goes through the escrow services with a recorded reason."""

    list_display = ["id", "user", "display_name", "created_at"]
    list_select_related = ["user"]
    search_fields = ["user__email", "display_name"]
    fields = ["user", "display_name", "created_at"]
    readonly_fields = ["user", "created_at"]
    actions = [freeze, unfreeze]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # profiles come from sign-up (``accounts.role_grant``)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "name", "prefix", "created_at", "revoked_at"]
    list_select_related = ["user"]
    readonly_fields = ["prefix", "key_hash", "created_at"]
    raw_id_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """Name and instructions are editable through ``project_update``; the schemas too until a batch
    of the project leaves draft (then the service freezes them, so they show read-only). The
    requester is fixed: moving a project would move its batches' reserves to someone else."""

    list_display = ["id", "name", "requester", "created_at"]
    list_select_related = ["requester__user"]
    fields = [
        "requester",
        "name",
        "instructions",
        "input_schema",
        "answer_schema",
        "answer_comparison",
        "created_at",
        "updated_at",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Project | None = None) -> list[str]:
        fixed = ["requester", "created_at", "updated_at"]
        if obj is not None and obj.batches.exclude(status=BatchStatus.DRAFT).exists():
            fixed += list(projects.SCHEMA_FIELDS)
        return fixed

    def save_model(self, request: HttpRequest, obj: Project, form: Any, change: bool) -> None:
        projects.project_update(project=obj, data={f: form.cleaned_data[f] for f in form.changed_data})

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a requester's own, made through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # would delete its batches, reserves and all


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "requester", "created_at"]
    list_select_related = ["requester__user"]
    search_fields = ["name"]
    raw_id_fields = ["requester"]


class BatchSkillFilterInline(admin.TabularInline):
    model = BatchSkillFilter
    extra = 0
    fields = ["skill", "op", "value"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Batch)
class BatchAdmin(ActionsOnlyAdmin):
    """Every field is read-only, name and priority too: the requester edits those through the API
    (``batch_update``, which refuses closed batches), and an admin has no reason to. Pause and close
    are the lifecycle services (close releases active leases and returns the unspent reserve)."""

    list_display = ["id", "name", "project", "status", "price_cents", "currency", "overlap", "priority"]
    list_filter = ["status"]
    list_select_related = ["project"]
    search_fields = ["name"]
    inlines = [BatchSkillFilterInline]
    actions = ["pause", "close"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Batch._meta.concrete_fields]

    @admin.action(description="Pause (no new claims)", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        rows = queryset.order_by("pk")
        apply_each(
            self, request, rows, lambda batch: batches.batch_pause(batch=batch), done="Paused {n} batch(es)."
        )

    @admin.action(
        description="Close for good (releases leases, returns the unspent reserve)", permissions=["change"]
    )
    def close(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        rows = queryset.order_by("pk")
        apply_each(
            self, request, rows, lambda batch: batches.batch_close(batch=batch), done="Closed {n} batch(es)."
        )


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    """Counters and overlap are kept by the claim, submit and review services; nothing is edited."""

    list_display = [
        "id",
        "batch",
        "external_id",
        "is_gold",
        "status",
        "slots_taken",
        "answers_count",
        "overlap",
    ]
    list_filter = ["is_gold", "status"]
    list_select_related = ["batch"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Task._meta.concrete_fields]
