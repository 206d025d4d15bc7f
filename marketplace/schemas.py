"""JSON Schema checks for project schemas, task inputs and answers, with compiled validators cached."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from .errors import ValidationFailed


def schema_check(schema: Any, *, field: str) -> None:
    """Refuse a schema that is not itself valid JSON Schema (400 on ``field``)."""
    if not isinstance(schema, dict):
        raise ValidationFailed("Invalid JSON Schema.", detail={field: ["Must be a JSON object."]})
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
