"""Requester quality endpoints: review verdicts, per-worker stats, skills, QC rules, restrictions."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crowd.enums import AssignmentStatus, RestrictionScope, Verdict
from crowd.models import QualityRule, Restriction, WorkerSkill
from crowd.quality import restrictions, review, stats
from crowd.quality.rules import RuleSerializer

from .. import selectors
from ..errors import NotFound, ValidationFailed
from ..models import Skill
from .converters import ID_MAX
from .permissions import IsRequester


def _valid(serializer_class: type, data: Any, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- review -----------------------------------------------------------------------------------


class ReviewRequestSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX),
        min_length=1,
        max_length=review.MAX_REVIEW_IDS,
    )
    verdict = serializers.ChoiceField(choices=Verdict.choices)
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="Required to reject; the worker sees it."
    )


class ReviewedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=AssignmentStatus.choices)
    reviewed_at = serializers.DateTimeField()
    review_reason = serializers.CharField()


class ReviewResponseSerializer(serializers.Serializer):
    assignments = ReviewedSerializer(many=True)


class AssignmentReviewApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(
        request=ReviewRequestSerializer,
        responses=ReviewResponseSerializer,
        summary="Accept or reject answers (all or nothing)",
        description=(
            "Every id must be an answer of one of your batches (404 naming the others, nothing "
            "changed) whose state allows the verdict: submitted → accepted|rejected, rejected → "
            "accepted (409 with an error per id, nothing changed). A rejection reopens one slot of "
            "its task."
        ),
    )
    def post(self, request: Request) -> Response:
        data = _valid(ReviewRequestSerializer, request.data)
        done = review.assignments_review(
            requester=request.requester,
            assignment_ids=data["ids"],
            verdict=data["verdict"],
            reason=data.get("reason", ""),
            user_id=request.user.pk,
        )
        return Response({"assignments": ReviewedSerializer(done, many=True).data})


# --- project workers --------------------------------------------------------------------------


class ReliabilitySerializer(serializers.Serializer):
    score = serializers.FloatField(help_text="Posterior mean of gold accuracy, prior Beta(4, 1).")
    interval = serializers.ListField(child=serializers.FloatField(), help_text="95 % credible interval.")
    gold_answers = serializers.IntegerField()
    gold_correct = serializers.IntegerField()


class ProjectWorkerSerializer(serializers.Serializer):
    worker = serializers.CharField(help_text="Your stable pseudonym for this worker.")
    answers = serializers.IntegerField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    skipped = serializers.IntegerField()
    acceptance_rate = serializers.FloatField(allow_null=True)
    reliability = ReliabilitySerializer()
    is_restricted = serializers.BooleanField()


class ProjectWorkersApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(responses=ProjectWorkerSerializer(many=True), summary="Per-worker stats of a project")
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(requester=request.requester, project_id=project_id)
        return Response(stats.project_workers(project=project))


# --- skills -----------------------------------------------------------------------------------


class SkillSerializer(serializers.ModelSerializer):
    class Meta:
        model = Skill
        fields = ["id", "name", "description", "created_at"]
        read_only_fields = ["id", "created_at"]


class SkillListCreateApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(responses=SkillSerializer(many=True), summary="My skills")
    def get(self, request: Request) -> Response:
        return Response(SkillSerializer(Skill.objects.filter(requester=request.requester), many=True).data)

    @extend_schema(request=SkillSerializer, responses={201: SkillSerializer}, summary="Define a skill")
    def post(self, request: Request) -> Response:
        data = _valid(SkillSerializer, request.data)
        if Skill.objects.filter(requester=request.requester, name=data["name"]).exists():
            raise ValidationFailed("You already have a skill of that name.", detail={"name": ["Taken."]})
        skill = Skill.objects.create(requester=request.requester, **data)
        return Response(SkillSerializer(skill).data, status=status.HTTP_201_CREATED)


class SkillValueSerializer(serializers.Serializer):
    worker = serializers.CharField(help_text="The worker's pseudonym, as your answers show it.")
    value = serializers.IntegerField(
        min_value=0, max_value=100, allow_null=True, help_text="null removes it."
    )


class SkillValueApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(
        request=SkillValueSerializer, responses=SkillValueSerializer, summary="Set a worker's skill"
    )
    def post(self, request: Request, skill_id: int) -> Response:
        skill = Skill.objects.filter(requester=request.requester, id=skill_id).first()
        if skill is None:
            raise NotFound("Skill not found.")
        data = _valid(SkillValueSerializer, request.data)
        worker_id = stats.worker_by_pseudonym(requester_id=request.requester.pk, pseudonym=data["worker"])
        if worker_id is None:
            raise NotFound("Worker not found.")
        if data["value"] is None:
            WorkerSkill.objects.filter(worker_id=worker_id, skill=skill).delete()
        else:
            WorkerSkill.objects.update_or_create(
                worker_id=worker_id, skill=skill, defaults={"value": data["value"]}
            )
        return Response(data)


# --- QC rules ---------------------------------------------------------------------------------


class BatchRulesApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(responses=RuleSerializer(many=True), summary="QC rules of a batch")
    def get(self, request: Request, batch_id: int) -> Response:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        return Response(RuleSerializer(batch.quality_rules.all(), many=True).data)

    @extend_schema(request=RuleSerializer, responses={201: RuleSerializer}, summary="Add a QC rule")
    def post(self, request: Request, batch_id: int) -> Response:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        data = _valid(RuleSerializer, request.data)
        rule = QualityRule.objects.create(batch=batch, **data)
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class BatchRuleDetailApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(responses={204: None}, summary="Switch a QC rule off (kept for the audit trail)")
    def delete(self, request: Request, batch_id: int, rule_id: int) -> Response:
        batch = selectors.batch_get(requester=request.requester, batch_id=batch_id)
        if not QualityRule.objects.filter(batch=batch, id=rule_id).update(is_active=False):
            raise NotFound("Rule not found.")
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- restrictions -----------------------------------------------------------------------------


class RestrictionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    worker = serializers.CharField(source="worker_id", help_text="Your pseudonym for the worker.")
    scope = serializers.ChoiceField(choices=RestrictionScope.choices)
    batch = serializers.IntegerField(source="batch_id", allow_null=True)
    project = serializers.IntegerField(source="project_id", allow_null=True)
    reason = serializers.CharField()
    created_by = serializers.CharField()
    rule = serializers.IntegerField(source="rule_id", allow_null=True)
    created_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField(allow_null=True)
    lifted_at = serializers.DateTimeField(allow_null=True)


class RestrictionCreateSerializer(serializers.Serializer):
    worker = serializers.CharField(help_text="The worker's pseudonym.")
    batch = serializers.IntegerField(
        min_value=1, max_value=ID_MAX, help_text="The batch the scope is relative to."
    )
    scope = serializers.ChoiceField(choices=RestrictionScope.choices, help_text="Not platform: admins only.")
    reason = serializers.CharField(max_length=2000)
    hours = serializers.IntegerField(
        min_value=1, max_value=24 * 365, allow_null=True, help_text="null: permanent."
    )


def _render(r: Restriction, requester_id: int) -> dict[str, Any]:
    from ..selectors import worker_pseudonym

    data = RestrictionSerializer(r).data
    data["worker"] = worker_pseudonym(requester_id=requester_id, worker_id=r.worker_id)
    return data


def _mine(requester: Any) -> Any:
    return Restriction.objects.filter(
        Q(batch__project__requester=requester) | Q(project__requester=requester) | Q(requester=requester)
    )


class RestrictionListCreateApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(
        responses=RestrictionSerializer(many=True), summary="Restrictions on my work, newest first"
    )
    def get(self, request: Request) -> Response:
        rows = _mine(request.requester).order_by("-id")[:1000]
        return Response([_render(r, request.requester.pk) for r in rows])

    @extend_schema(request=RestrictionCreateSerializer, responses={201: RestrictionSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(RestrictionCreateSerializer, request.data)
        batch = selectors.batch_get(requester=request.requester, batch_id=data["batch"])
        worker_id = stats.worker_by_pseudonym(requester_id=request.requester.pk, pseudonym=data["worker"])
        if worker_id is None:
            raise NotFound("Worker not found.")
        r = restrictions.restriction_create_by_requester(
            requester=request.requester,
            worker_id=worker_id,
            batch=batch,
            scope=data["scope"],
            reason=data["reason"],
            hours=data["hours"],
            user_id=request.user.pk,
        )
        return Response(_render(r, request.requester.pk), status=status.HTTP_201_CREATED)


class RestrictionLiftApi(APIView):
    permission_classes = [IsRequester]

    @extend_schema(request=None, responses=RestrictionSerializer, summary="Lift a restriction")
    def post(self, request: Request, restriction_id: int) -> Response:
        r = restrictions.restriction_lift(
            restriction_id=restriction_id, requester=request.requester, user_id=request.user.pk
        )
        return Response(_render(r, request.requester.pk))
