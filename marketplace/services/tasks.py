"""Bulk task upload: validate every row, create the valid ones in bulk, report the rest by index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from ..enums import BatchStatus
from ..errors import Conflict, ValidationFailed
from ..models import Batch, Task
from ..schema_budget import shared_budget
from ..schemas import UNSTORABLE, SchemaTooCostly, SchemaValidator, storable, validator
from . import budget

ROW_FIELDS = frozenset({"input", "gold_answer", "gold_explanation", "external_id"})
MAX_REPORTED_ERRORS = 1000
LOOKUP_CHUNK = 5000
CREATE_CHUNK = 2000


@dataclass
class UploadResult:
    received: int = 0
    created: int = 0
    gold_created: int = 0
    duplicates: int = 0
    invalid: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "created": self.created,
            "gold_created": self.gold_created,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "errors": self.errors,
            "errors_truncated": self.invalid > len(self.errors),
        }


class MalformedRow:
    """A JSON Lines line that did not parse: kept in place so later indexes stay right."""

    def __init__(self, message: str) -> None:
        self.message = message


def _schema_errors(checker: SchemaValidator, value: Any) -> tuple[list[str], bool]:
    """The value's schema errors, and whether checking it ran out of ``SCHEMA_EVAL_BUDGET`` (the
    one message then says so)."""
    try:
        return [f"{e.json_path}: {e.message}" for e in checker.iter_errors(value)], False
    except SchemaTooCostly as exc:
        return [exc.problem], True


def _row_errors(
    row: Any, input_validator: SchemaValidator, answer_validator: SchemaValidator
) -> tuple[dict[str, list[str]], bool]:
    """The row's errors by field, and whether a schema was too costly to evaluate for it (checking
    stops there: the row's later fields are not checked)."""
    if isinstance(row, MalformedRow):
        return {"row": [row.message]}, False
    if not isinstance(row, dict):
        return {"row": ["Each row must be a JSON object."]}, False
    errors: dict[str, list[str]] = {}
    unknown = set(row) - ROW_FIELDS
    if unknown:
        errors["row"] = [f"Unknown field(s): {', '.join(sorted(unknown))}."]
    if "input" not in row:
        errors["input"] = ["This field is required."]
    elif not isinstance(row["input"], dict):
        errors["input"] = ["Must be a JSON object."]
    else:
        messages, too_costly = _schema_errors(input_validator, row["input"])
        if too_costly:
            return {**errors, "input": messages}, True
        if messages:
            errors["input"] = messages
        elif not storable(row["input"]):
            errors["input"] = [UNSTORABLE]
    if row.get("gold_answer") is not None:
        messages, too_costly = _schema_errors(answer_validator, row["gold_answer"])
        if too_costly:
            return {**errors, "gold_answer": messages}, True
        if messages:
            errors["gold_answer"] = messages
        elif not storable(row["gold_answer"]):
            errors["gold_answer"] = [UNSTORABLE]
    explanation = row.get("gold_explanation")
    if explanation is not None and (not isinstance(explanation, str) or len(explanation) > 5000):
        errors["gold_explanation"] = ["Must be a string of at most 5,000 characters."]
    external_id = row.get("external_id")
    if external_id is not None and (not isinstance(external_id, str) or not 1 <= len(external_id) <= 200):
        errors["external_id"] = ["Must be a string of 1 to 200 characters."]
    elif external_id is not None and not storable(external_id):
        errors["external_id"] = [UNSTORABLE]
    return errors, False


def _check_rows(
    rows: list[Any],
    input_validator: SchemaValidator,
    answer_validator: SchemaValidator,
    result: UploadResult,
    valid: list[tuple[int, dict[str, Any]]],
) -> None:
    """Check every row: valid ones go to ``valid``, the others are counted (and the first
    ``MAX_REPORTED_ERRORS`` reported) in ``result``. A row a schema is too costly to check stops
    the upload there (see ``tasks_upload``)."""
    for index, row in enumerate(rows):
        errors, too_costly = _row_errors(row, input_validator, answer_validator)
        if not errors:
            valid.append((index, row))
            continue
        result.invalid += 1
        if len(result.errors) < MAX_REPORTED_ERRORS or too_costly:
            result.errors.append({"index": index, "detail": errors})
        if too_costly:
            raise ValidationFailed(
                f"Row {index} is too costly to check against the project's schemas; nothing was created.",
                code="invalid_rows",
                detail={"rows": result.errors, "invalid": result.invalid},
            )


def tasks_upload(*, batch: Batch, rows: list[Any], atomic: bool = False) -> UploadResult:
    """Create tasks from ``rows`` (``{"input", "gold_answer"?, "external_id"?}``).

    Invalid rows are reported by index and skipped, or with ``atomic`` the whole upload is refused
    (400) and nothing is written. A row whose ``external_id`` already exists in the batch (or
    earlier in the same upload) is counted as a duplicate and not created again. The batch row is
    locked for the upload so concurrent uploads to one batch de-duplicate exactly.

    A row that a schema is too costly to check (``SCHEMA_EVAL_BUDGET``) refuses the whole upload
    there, atomic or not (400 ``invalid_rows``, the rows found invalid so far): the schema is at
    fault, not the row, and going on would spend as much again on every later row. All rows
    together may cost at most ``SCHEMA_UPLOAD_BUDGET`` (400 ``upload_too_costly``).
    """
    if not rows:
        raise ValidationFailed("The upload holds no rows.", code="empty_upload")
    project = batch.project
    input_validator = validator(project.input_schema, field="input_schema")
    answer_validator = validator(project.answer_schema, field="answer_schema")
    result = UploadResult(received=len(rows))

    valid: list[tuple[int, dict[str, Any]]] = []
    with shared_budget(settings.SCHEMA_UPLOAD_BUDGET):
        _check_rows(rows, input_validator, answer_validator, result, valid)
    if atomic and result.invalid:
        raise ValidationFailed(
            f"{result.invalid} of {result.received} rows are invalid; nothing was created.",
            code="invalid_rows",
            detail={"rows": result.errors, "invalid": result.invalid},
        )

    with transaction.atomic():
        locked = Batch.objects.select_for_update().get(pk=batch.pk)
        if locked.status == BatchStatus.CLOSED:
            raise Conflict("Tasks cannot be added to a closed batch.", code="batch_closed")
        ids = [row["external_id"] for _, row in valid if row.get("external_id") is not None]
        existing: set[str] = set()
        for start in range(0, len(ids), LOOKUP_CHUNK):
            existing.update(
                Task.objects.filter(
                    batch=locked, external_id__in=ids[start : start + LOOKUP_CHUNK]
                ).values_list("external_id", flat=True)
            )
        to_create: list[Task] = []
        for _, row in valid:
            external_id = row.get("external_id")
            if external_id is not None:
                if external_id in existing:
                    result.duplicates += 1
                    continue
                existing.add(external_id)
            gold = row.get("gold_answer")
            to_create.append(
                Task(
                    batch=locked,
                    input=row["input"],
                    gold_answer=gold,
                    gold_explanation=row.get("gold_explanation") or "",
                    # A training batch's known answers are its work: served and counted like
                    # regular tasks, scored at submit, never hidden among other work.
                    is_gold=gold is not None and not locked.is_training,
                    external_id=external_id,
                    overlap=locked.overlap,
                )
            )
        Task.objects.bulk_create(to_create, batch_size=CREATE_CHUNK)
        if locked.published_at is not None and to_create:
            # A published batch's new tasks are paid for now; too little money undoes the upload.
            budget.batch_reserve_required(batch=locked)
    result.created = len(to_create)
    result.gold_created = sum(1 for t in to_create if t.is_gold)
    return result
