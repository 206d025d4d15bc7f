from django.contrib import admin

from .models import Assignment, Worker


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "created_at"]
    raw_id_fields = ["user"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "task", "worker", "status", "is_gold", "claimed_at", "submitted_at"]
    list_filter = ["status", "is_gold"]
    raw_id_fields = ["task", "batch", "worker"]
