"""``GET /work/me``: the worker's own standing. No gold answer, score or gold flag, ever."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.api.permissions import IsWorker

from ..enums import RestrictionScope
from ..quality.stats import worker_standing


class _Reliability(serializers.Serializer):
    score = serializers.FloatField(help_text="Posterior mean of control-task accuracy, prior Beta(4, 1).")
    interval = serializers.ListField(child=serializers.FloatField(), help_text="95 % credible interval.")
    answers_counted = serializers.IntegerField(
        help_text="Control answers counted: those older than 24 hours, so no single submit shows."
    )


class _ProjectReliability(_Reliability):
    project = serializers.IntegerField()
    project_name = serializers.CharField()


class _Skill(serializers.Serializer):
    skill = serializers.IntegerField()
    name = serializers.CharField()
    value = serializers.IntegerField()


class _Restriction(serializers.Serializer):
    id = serializers.IntegerField()
    scope = serializers.ChoiceField(choices=RestrictionScope.choices)
    batch = serializers.IntegerField(allow_null=True)
    project = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField(allow_null=True, help_text="null: permanent.")


class WorkMeSerializer(serializers.Serializer):
    reliability = _Reliability()
    reliability_by_project = _ProjectReliability(many=True)
    answers_accepted = serializers.IntegerField()
    answers_rejected = serializers.IntegerField()
    answers_pending_review = serializers.IntegerField()
    acceptance_rate = serializers.FloatField(allow_null=True)
    skills = _Skill(many=True)
    restrictions = _Restriction(many=True, help_text="Active restrictions only.")


class WorkMeApi(APIView):
    permission_classes = [IsWorker]

    @extend_schema(
        responses=WorkMeSerializer, summary="My reliability, acceptance rate, skills and restrictions"
    )
    def get(self, request: Request) -> Response:
        return Response(WorkMeSerializer(worker_standing(worker=request.worker)).data)
