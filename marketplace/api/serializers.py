"""Request and response shapes of the requester API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from crowd.enums import AssignmentStatus
from crowd.models import Assignment

from ..enums import Role
from ..models import ApiToken, Batch, Project, Task

SUPPORTED_CURRENCIES = ["USD"]


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    is_staff = serializers.BooleanField()
    roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices))


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "revoked_at"]


class TokenCreatedSerializer(TokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; only its hash is stored.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]


class ProjectSerializer(serializers.ModelSerializer):
    input_schema = serializers.JSONField(required=False, help_text="JSON Schema of a task's input.")
    answer_schema = serializers.JSONField(required=False, help_text="JSON Schema of an answer.")

    class Meta:
        model = Project
        fields = ["id", "name", "instructions", "input_schema", "answer_schema", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class BatchSerializer(serializers.ModelSerializer):
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none())
    currency = serializers.ChoiceField(choices=SUPPORTED_CURRENCIES, default="USD")
    overlap = serializers.IntegerField(min_value=1, max_value=100, default=3)
    lease_seconds = serializers.IntegerField(min_value=10, max_value=7 * 24 * 3600, default=600)
    gold_rate = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.0)
    max_claims_per_request = serializers.IntegerField(min_value=1, max_value=1000, default=10)
    price_cents = serializers.IntegerField(min_value=0, max_value=1_000_000)

    class Meta:
        model = Batch
        fields = [
            "id",
            "project",
            "name",
            "status",
            "price_cents",
            "currency",
            "overlap",
            "lease_seconds",
            "gold_rate",
            "max_claims_per_request",
            "priority",
            "created_at",
            "updated_at",
            "published_at",
            "closed_at",
        ]
        read_only_fields = ["id", "status", "created_at", "updated_at", "published_at", "closed_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        requester = self.context.get("requester")
        if requester is not None:
            self.fields["project"].queryset = Project.objects.filter(requester=requester)
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            # The project of an existing batch never changes.
            self.fields["project"].read_only = True


class BatchProgressSerializer(serializers.Serializer):
    tasks = serializers.IntegerField(help_text="Regular (non-gold) tasks.")
    gold_tasks = serializers.IntegerField()
    tasks_complete = serializers.IntegerField()
    answers_wanted = serializers.IntegerField()
    assignments_active = serializers.IntegerField()
    assignments_submitted = serializers.IntegerField()
    assignments_expired = serializers.IntegerField()
    assignments_skipped = serializers.IntegerField()
    assignments_released = serializers.IntegerField()
    gold_answers = serializers.IntegerField()


class BatchDetailSerializer(BatchSerializer):
    progress = BatchProgressSerializer(read_only=True)

    class Meta(BatchSerializer.Meta):
        fields = [*BatchSerializer.Meta.fields, "progress"]


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = [
            "id",
            "external_id",
            "input",
            "is_gold",
            "gold_answer",
            "status",
            "overlap",
            "slots_taken",
            "answers_count",
            "created_at",
        ]


class UploadErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="0-based position of the row in the upload.")
    detail = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class UploadResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    gold_created = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Rows skipped: their external_id already exists.")
    invalid = serializers.IntegerField()
    errors = UploadErrorSerializer(many=True, help_text="The first 1,000 invalid rows.")
    errors_truncated = serializers.BooleanField()


class RequesterAssignmentSerializer(serializers.ModelSerializer):
    """An answer as its requester sees it: the worker under a per-requester pseudonym."""

    task = serializers.IntegerField(source="task_id")
    external_id = serializers.CharField(source="task.external_id", allow_null=True)
    worker = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=AssignmentStatus.choices)

    class Meta:
        model = Assignment
        fields = [
            "id",
            "task",
            "external_id",
            "is_gold",
            "worker",
            "status",
            "answer",
            "claimed_at",
            "expires_at",
            "submitted_at",
            "ended_at",
        ]

    def get_worker(self, obj: Assignment) -> str:
        from ..selectors import worker_pseudonym

        return worker_pseudonym(requester_id=self.context["requester"].pk, worker_id=obj.worker_id)
