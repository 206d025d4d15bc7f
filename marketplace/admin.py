from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import ApiToken, Batch, BatchSkillFilter, Project, Requester, Skill, Task, User


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


@admin.register(Requester)
class RequesterAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "display_name", "created_at"]
    raw_id_fields = ["user"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "name", "prefix", "created_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "created_at"]
    raw_id_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "requester", "created_at"]
    raw_id_fields = ["requester"]


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "requester", "created_at"]
    search_fields = ["name"]
    raw_id_fields = ["requester"]


class BatchSkillFilterInline(admin.TabularInline):
    model = BatchSkillFilter
    extra = 0
    raw_id_fields = ["skill"]


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "project", "status", "price_cents", "currency", "overlap", "priority"]
    list_filter = ["status"]
    raw_id_fields = ["project", "training_skill"]
    inlines = [BatchSkillFilterInline]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
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
    raw_id_fields = ["batch"]
