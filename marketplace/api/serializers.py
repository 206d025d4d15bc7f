"""Request and response shapes of the requester API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from crowd.quality.scoring import comparison_errors

from ..enums import AggregationMethod, ReviewMode, Role, SkillOp
from ..models import ApiToken, Batch, Project, Skill, Task
from .converters import ID_MAX

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
    answer_comparison = serializers.JSONField(
        required=False,
        help_text='Gold scoring: {"kind": "exact"} (default), {"kind": "numeric", "tolerance": 0.5}, '
        '{"kind": "set"} or {"kind": "jaccard", "threshold": 0.8}.',
    )

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "instructions",
            "input_schema",
            "answer_schema",
            "answer_comparison",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_answer_comparison(self, value: Any) -> Any:
        errors = comparison_errors(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value or {}


class SkillFilterSerializer(serializers.Serializer):
    skill = serializers.IntegerField(min_value=1, max_value=ID_MAX, help_text="One of your skills.")
    op = serializers.ChoiceField(choices=SkillOp.choices)
    value = serializers.IntegerField(min_value=0, max_value=100, required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        needs_value = attrs["op"] not in (SkillOp.EXISTS, SkillOp.NOT_EXISTS)
        if needs_value and attrs.get("value") is None:
            raise serializers.ValidationError({"value": [f"Required with {attrs['op']}."]})
        if not needs_value and attrs.get("value") is not None:
            raise serializers.ValidationError({"value": [f"Not allowed with {attrs['op']}."]})
        return attrs


DYNAMIC_FIELDS = ("overlap", "min_overlap", "max_overlap", "target_confidence")


def _current(instance: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    if instance is None or isinstance(instance, list | tuple):
        return {}
    return {f: getattr(instance, f) for f in fields}


def _dynamic_overlap_errors(values: dict[str, Any]) -> dict[str, list[str]]:
    """Dynamic overlap needs ``min_overlap <= overlap <= max_overlap`` and a target; without
    ``max_overlap`` neither ``min_overlap`` nor ``target_confidence`` means anything."""
    overlap = values.get("overlap") or 3
    low, high, target = values.get("min_overlap"), values.get("max_overlap"), values.get("target_confidence")
    errors: dict[str, list[str]] = {}
    if high is None:
        for name, value in (("min_overlap", low), ("target_confidence", target)):
            if value is not None:
                errors[name] = ["Only with max_overlap (dynamic overlap)."]
        return errors
    if high < overlap:
        errors["max_overlap"] = [f"Must be at least overlap ({overlap})."]
    if low is not None and low > overlap:
        errors["min_overlap"] = [f"Must be at most overlap ({overlap})."]
    if target is None:
        errors["target_confidence"] = ["Required with max_overlap."]
    return errors


class BatchSerializer(serializers.ModelSerializer):
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none())
    currency = serializers.ChoiceField(choices=SUPPORTED_CURRENCIES, default="USD")
    overlap = serializers.IntegerField(min_value=1, max_value=100, default=3)
    lease_seconds = serializers.IntegerField(min_value=10, max_value=7 * 24 * 3600, default=600)
    gold_rate = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.0)
    max_claims_per_request = serializers.IntegerField(min_value=1, max_value=1000, default=10)
    price_cents = serializers.IntegerField(min_value=0, max_value=1_000_000)
    # The column is a 32-bit integer on PostgreSQL; stated here so every database refuses alike.
    priority = serializers.IntegerField(
        min_value=-(2**31), max_value=2**31 - 1, default=0, help_text="Higher is shown to workers first."
    )
    review_mode = serializers.ChoiceField(choices=ReviewMode.choices, default=ReviewMode.MANUAL)
    auto_accept_after_hours = serializers.IntegerField(min_value=1, max_value=24 * 90, default=72)
    min_reliability = serializers.FloatField(min_value=0.0, max_value=1.0, required=False, allow_null=True)
    training_skill = serializers.PrimaryKeyRelatedField(
        queryset=Skill.objects.none(), required=False, allow_null=True
    )
    training_pass_mark = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.8)
    training_retry_hours = serializers.IntegerField(min_value=0, max_value=24 * 365, default=24)
    filters = SkillFilterSerializer(
        many=True, required=False, source="filter_rows", help_text="Required skills; all must hold."
    )
    aggregation_method = serializers.ChoiceField(
        choices=AggregationMethod.choices, default=AggregationMethod.DAWID_SKENE
    )
    min_overlap = serializers.IntegerField(
        min_value=1,
        max_value=100,
        required=False,
        allow_null=True,
        help_text="Dynamic overlap: answers before a task may stop (default: overlap).",
    )
    max_overlap = serializers.IntegerField(
        min_value=1,
        max_value=100,
        required=False,
        allow_null=True,
        help_text="Set to turn dynamic overlap on: a task below target_confidence grows up to this.",
    )
    target_confidence = serializers.FloatField(
        min_value=0.5,
        max_value=1.0,
        required=False,
        allow_null=True,
        help_text="Dynamic overlap: a task whose consensus confidence reaches this stops taking answers.",
    )

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
            "review_mode",
            "auto_accept_after_hours",
            "min_reliability",
            "filters",
            "is_training",
            "training_skill",
            "training_pass_mark",
            "training_retry_hours",
            "aggregation_method",
            "min_overlap",
            "max_overlap",
            "target_confidence",
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
            self.fields["training_skill"].queryset = Skill.objects.filter(requester=requester)
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            # The project of an existing batch never changes.
            self.fields["project"].read_only = True

    def validate_filters(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        requester = self.context.get("requester")
        mine = set(Skill.objects.filter(requester=requester).values_list("id", flat=True))
        unknown = sorted({f["skill"] for f in value} - mine)
        if unknown:
            raise serializers.ValidationError([f"Unknown skill(s): {', '.join(map(str, unknown))}."])
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        training = attrs.get("is_training", getattr(self.instance, "is_training", False))
        skill = attrs.get("training_skill", getattr(self.instance, "training_skill", None))
        if training and skill is None:
            raise serializers.ValidationError({"training_skill": ["A training batch grants a skill."]})
        errors = _dynamic_overlap_errors({**_current(self.instance, DYNAMIC_FIELDS), **attrs})
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def to_representation(self, instance: Any) -> dict[str, Any]:
        instance.filter_rows = [
            {"skill": f.skill_id, "op": f.op, "value": f.value} for f in instance.skill_filters.all()
        ]
        return super().to_representation(instance)


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
    assignments_accepted = serializers.IntegerField()
    assignments_rejected = serializers.IntegerField()
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
            "gold_explanation",
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
            "gold_correct",
            "gold_score",
            "reviewed_at",
            "review_reason",
        ]

    def get_worker(self, obj: Assignment) -> str:
        from ..selectors import worker_pseudonym

        return worker_pseudonym(requester_id=self.context["requester"].pk, worker_id=obj.worker_id)
