"""Projects: instructions and the input/answer JSON Schemas."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..enums import BatchStatus
from ..errors import Conflict
from ..models import Project, Requester
from ..schemas import schema_check

SCHEMA_FIELDS = ("input_schema", "answer_schema")


def project_create(
    *,
    requester: Requester,
    name: str,
    instructions: str = "",
    input_schema: dict[str, Any] | None = None,
    answer_schema: dict[str, Any] | None = None,
) -> Project:
    input_schema = input_schema if input_schema is not None else {}
    answer_schema = answer_schema if answer_schema is not None else {}
    schema_check(input_schema, field="input_schema")
    schema_check(answer_schema, field="answer_schema")
    return Project.objects.create(
        requester=requester,
        name=name,
        instructions=instructions,
        input_schema=input_schema,
        answer_schema=answer_schema,
    )


def project_update(*, project: Project, data: dict[str, Any]) -> Project:
    """Update fields. Schemas are frozen once a batch has been published: tasks and answers
    already accepted were validated against them."""
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        for field in SCHEMA_FIELDS:
            if field in data and data[field] != getattr(project, field):
                schema_check(data[field], field=field)
                if project.batches.exclude(status=BatchStatus.DRAFT).exists():
                    raise Conflict(
                        "Schemas cannot change once a batch of the project has been published.",
                        code="schema_frozen",
                        detail={field: ["Frozen: a batch of this project has been published."]},
                    )
        for field, value in data.items():
            setattr(project, field, value)
        project.save(update_fields=[*data.keys(), "updated_at"])
    return project
