"""JSON Schema checks for project schemas, task inputs and answers, with compiled validators cached."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from .errors import ValidationFailed

UNSTORABLE = "Must not contain the NUL character (\\u0000) or an unpaired surrogate."


def json_column(value: Any) -> Any:
    """A json/jsonb column read through a raw cursor: Django's PostgreSQL connection leaves those
    as text (its JSONField decodes them itself), so hand-written hot-path queries decode here."""
    return json.loads(value) if isinstance(value, str) else value


def storable(value: Any) -> bool:
    """Whether PostgreSQL can store ``value`` (jsonb or text): JSON escapes can smuggle in U+0000 or
    an unpaired UTF-16 surrogate, which it refuses with an error (a 500) instead of a 400."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        if value.isascii():
            return True
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(storable(k) and storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(storable(v) for v in value)
    return True


def schema_check(schema: Any, *, field: str) -> None:
    """Refuse a schema that is not itself valid JSON Schema (400 on ``field``)."""
    if not isinstance(schema, dict):
        raise ValidationFailed("Invalid JSON Schema.", detail={field: ["Must be a JSON object."]})
    if not storable(schema):
        raise ValidationFailed("Invalid JSON Schema.", detail={field: [UNSTORABLE]})
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        raise ValidationFailed(
            "Invalid JSON Schema.", detail={field: [f"Not a valid JSON Schema: {exc.message}"]}
        ) from exc


@lru_cache(maxsize=512)
def _compiled(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = validator_for(schema, default=Draft202012Validator)
    return cls(schema)


def validator(schema: dict[str, Any]) -> Any:
    """A compiled validator, cached by the schema's canonical JSON so edits invalidate it."""
    return _compiled(json.dumps(schema, sort_keys=True, separators=(",", ":")))


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every violation as ``"<json path>: <message>"``; an empty list when the instance is valid."""
    errors = sorted(validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message}" for e in errors]


_answer_validators: dict[tuple[int, str], Any] = {}


def answer_validator(project_id: int, version: Any) -> Any:
    """The compiled answer validator of a project, cached per (project, ``updated_at``).

    Any project edit bumps ``updated_at``, so a stale schema is never used; the cache holds at
    most a few hundred projects per process.
    """
    key = (project_id, str(version))
    found = _answer_validators.get(key)
    if found is None:
        from .models import Project

        schema = Project.objects.values_list("answer_schema", flat=True).get(pk=project_id)
        if len(_answer_validators) >= 512:
            _answer_validators.clear()
        found = _answer_validators[key] = validator(schema)
    return found
