"""JSON Schema checks for project schemas, task inputs and answers, with compiled validators cached.

Project schemas are written by requesters, so they are untrusted input:

- References stay inside the schema. ``$ref``/``$dynamicRef`` must start with ``#`` (checked when a
  project is created or edited), and every validator gets a registry that retrieves nothing, so no
  schema, even one stored before these checks, can make the server open a URL or read a file.
- Regular expressions run on RE2, in time linear in the input (``schema_validators``); a pattern
  RE2 cannot compile, or too complex for it, is refused.
- Size and nesting are bounded (``PROJECT_SCHEMA_MAX_BYTES``, ``PROJECT_SCHEMA_MAX_DEPTH``).
- Checking one value costs at most ``SCHEMA_EVAL_BUDGET`` units of work (``schema_budget``):
  past that ``SchemaValidator`` raises ``SchemaTooCostly``, a 400 for the value's field.

A stored schema that fails these checks is never run: using it is a 400 ``schema_unusable``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2
import referencing.exceptions
import referencing.jsonschema
from django.conf import settings
from jsonschema.exceptions import SchemaError, ValidationError

from .errors import ValidationFailed
from .schema_budget import BudgetExhausted, budget, shared
from .schema_validators import DEFAULT_DIALECT, DIALECTS, REGISTRY, pattern_problem, root_resolver
from .strict_json import too_deep

UNSTORABLE = "Must not contain the NUL character (\\u0000) or an unpaired surrogate."


def json_column(value: Any) -> Any:
    """A json/jsonb column read through a raw cursor: Django's PostgreSQL connection leaves those
    as text (its JSONField decodes them itself), so hand-written hot-path queries decode here."""
    return json.loads(value) if isinstance(value, str) else value


def _storable_text(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def storable(value: Any) -> bool:
    """Whether PostgreSQL can store ``value`` (jsonb or text): JSON escapes can smuggle in U+0000 or
    an unpaired UTF-16 surrogate, which it refuses with an error (a 500) instead of a 400.
    Iterative, so no nesting depth can exhaust the stack."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if not _storable_text(node):
                return False
        elif isinstance(node, dict):
            for key, child in node.items():
                if isinstance(key, str) and not _storable_text(key):
                    return False
                stack.append(child)
        elif isinstance(node, list):
            stack.extend(node)
    return True


# --- checks -----------------------------------------------------------------------------------

# Where a schema holds subschemas (drafts 4 to 2020-12): everything else is data (``const``,
# ``enum``, ``default``, unknown keywords) and is never run as a schema.
_ONE = frozenset(
    {
        "additionalItems",
        "additionalProperties",
        "contains",
        "contentSchema",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_MANY = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
_MAP = frozenset(
    {"$defs", "definitions", "dependentSchemas", "patternProperties", "properties", "dependencies"}
)


def _path(parts: tuple[Any, ...]) -> str:
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.replace("_", "a").replace("$", "a").isalnum():
            text += f".{part}"
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _subschemas(node: dict[str, Any], parts: tuple[Any, ...]) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    for keyword, value in node.items():
        if keyword in _ONE and isinstance(value, dict | bool):
            yield value, (*parts, keyword)
        elif keyword in _MANY and isinstance(value, list):
            yield from ((v, (*parts, keyword, i)) for i, v in enumerate(value))
        elif keyword in _MAP and isinstance(value, dict):
            yield from ((v, (*parts, keyword, k)) for k, v in value.items() if isinstance(v, dict | bool))


def _dialect(schema: Any) -> tuple[str | None, str | None]:
    """The root's dialect URI and why it cannot be used (``None`` when it can)."""
    declared = schema.get("$schema") if isinstance(schema, dict) else None
    if declared is None:
        return DEFAULT_DIALECT, None
    uri = declared.rstrip("#") if isinstance(declared, str) else None
    if uri not in DIALECTS:
        return None, (
            f"$.$schema: unsupported dialect {declared!r}; use draft 2020-12 (the default: omit "
            "$schema), draft-07, draft-06 or draft-04"
        )
    return uri, None


def _reference_problems(schema: Any, uri: str) -> list[str]:
    """Walk the schema (iteratively) and say what makes it unsafe to run: a reference that leaves
    the document, does not resolve or lands outside a subschema; ``$schema`` below the root; a
    pattern RE2 cannot run; references that loop without reading the value. Nothing is run: a
    check that validated sample values would itself pay for a schema built to be costly."""
    problems: list[str] = []
    if not isinstance(schema, dict):
        return problems
    specification = referencing.jsonschema.specification_with(uri)
    root = REGISTRY.resolver_with_root(specification.create_resource(schema))
    nodes: list[tuple[dict[str, Any], tuple[Any, ...], Any]] = []
    stack: list[tuple[Any, tuple[Any, ...], Any]] = [(schema, (), root)]
    while stack:
        node, parts, resolver = stack.pop()
        if not isinstance(node, dict):
            continue
        resolver = resolver.in_subresource(specification.create_resource(node))
        nodes.append((node, parts, resolver))
        where = _path(parts)
        if parts and "$schema" in node:
            problems.append(f"{where}.$schema: only allowed at the top level")
        if isinstance(node.get("pattern"), str) and (why := pattern_problem(node["pattern"])):
            problems.append(f"{where}.pattern: {why}")
        for pattern in (
            node.get("patternProperties", {}) if isinstance(node.get("patternProperties"), dict) else ()
        ):
            if why := pattern_problem(pattern):
                problems.append(f"{_path((*parts, 'patternProperties', pattern))}: {why}")
        stack.extend((child, child_parts, resolver) for child, child_parts in _subschemas(node, parts))
    subschemas = {id(node) for node, _, _ in nodes}
    # Edges to the subschemas each one applies to the same value: a cycle among them recurses
    # until the stack runs out, whatever the value.
    in_place: dict[int, list[int]] = {id(node): list(_in_place(node)) for node, _, _ in nodes}
    for node, parts, resolver in nodes:
        for keyword in ("$ref", "$dynamicRef"):
            if keyword not in node:
                continue
            reference, where = node[keyword], f"{_path(parts)}.{keyword}"
            if not isinstance(reference, str) or not reference.startswith("#"):
                problems.append(
                    f"{where}: only references within the schema (starting with #) are allowed, "
                    f"not {reference!r}"
                )
                continue
            try:
                target = resolver.lookup(reference).contents
            except referencing.exceptions.Unresolvable:
                problems.append(f"{where}: {reference!r} does not resolve within the schema")
                continue
            if not isinstance(target, bool) and id(target) not in subschemas:
                problems.append(f"{where}: {reference!r} does not point at a subschema")
            elif isinstance(target, dict):
                in_place[id(node)].append(id(target))
    paths = {id(node): _path(parts) for node, parts, _ in nodes}
    looping = _on_a_cycle(in_place)
    if looping is not None:
        problems.append(f"{paths[looping]}: its references loop back to it without reading the value")
    return sorted(problems)


_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MANY = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP = ("dependentSchemas", "dependencies")


def _in_place(node: dict[str, Any]) -> Iterator[int]:
    """The ids of the subschemas ``node`` applies to the value itself (not to its items or
    properties); ``$ref`` targets are added by the caller."""
    for keyword in _IN_PLACE_ONE:
        if isinstance(node.get(keyword), dict):
            yield id(node[keyword])
    for keyword in _IN_PLACE_MANY:
        if isinstance(node.get(keyword), list):
            yield from (id(child) for child in node[keyword] if isinstance(child, dict))
    for keyword in _IN_PLACE_MAP:
        if isinstance(node.get(keyword), dict):
            yield from (id(child) for child in node[keyword].values() if isinstance(child, dict))


def _on_a_cycle(edges: dict[int, list[int]]) -> int | None:
    """A node on a cycle of ``edges``, or ``None``; iterative depth-first search."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if start in state:
            continue
        state[start] = 1
        path = [(start, iter(edges[start]))]
        while path:
            node, children = path[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                path.pop()
            elif state.get(child) == 1:
                return child
            elif child not in state and child in edges:
                state[child] = 1
                path.append((child, iter(edges[child])))
    return None


def _unusable(field: str, problems: list[str]) -> ValidationFailed:
    return ValidationFailed(
        f"The project's {field} cannot be used: {problems[0]}. Fix it, or create a new project.",
        code="schema_unusable",
        detail={field: problems},
    )


def _invalid(field: str, *problems: str, message: str = "Invalid JSON Schema.") -> ValidationFailed:
    return ValidationFailed(message, detail={field: list(problems)})


def schema_check(schema: Any, *, field: str) -> None:
    """Refuse (400 on ``field``) a schema that is not valid JSON Schema, is larger or deeper than
    the limits, or is unsafe to run (see the module docstring). Run on create and on edit."""
    if not isinstance(schema, dict):
        raise _invalid(field, "Must be a JSON object.")
    depth = settings.PROJECT_SCHEMA_MAX_DEPTH
    if too_deep(schema, depth):
        raise _invalid(
            field,
            f"Nested deeper than {depth} levels (PROJECT_SCHEMA_MAX_DEPTH).",
            message=f"The JSON Schema is nested deeper than the limit of {depth} levels.",
        )
    limit = settings.PROJECT_SCHEMA_MAX_BYTES
    size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace"))
    if size > limit:
        raise _invalid(
            field,
            f"{size:,} bytes as compact JSON; the limit is {limit:,} (PROJECT_SCHEMA_MAX_BYTES).",
            message=f"The JSON Schema is larger than the limit of {limit:,} bytes.",
        )
    if not storable(schema):
        raise _invalid(field, UNSTORABLE)
    uri, problem = _dialect(schema)
    if uri is None:
        raise _invalid(field, problem or "")
    try:
        DIALECTS[uri].check_schema(schema, format_checker=None)
    except SchemaError as exc:
        raise _invalid(field, f"Not a valid JSON Schema: {exc.message}") from exc
    problems = _reference_problems(schema, uri)
    if problems:
        raise _invalid(field, *problems)


class SchemaTooCostly(ValidationFailed):
    """Checking a value against a project schema ran out of ``SCHEMA_EVAL_BUDGET``. ``problem`` is
    the field-level message; callers put it under the value's own field (``answer``, a row's
    ``input`` or ``gold_answer``)."""

    def __init__(self, field: str, limit: int) -> None:
        self.problem = (
            f"The {field.replace('_', ' ')} is too costly to evaluate for this value "
            f"(more than {limit:,} steps)."
        )
        super().__init__(self.problem, detail={field: [self.problem]})


class UploadTooCostly(ValidationFailed):
    """Checking the rows of one upload spent more than ``SCHEMA_UPLOAD_BUDGET`` units in all."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Checking this upload against the project's schemas takes more than {limit:,} steps in all; "
            "nothing was created. Upload fewer rows at a time.",
            code="upload_too_costly",
            detail={"limit": limit},
        )


class SchemaValidator:
    """A compiled validator for one project schema. ``iter_errors`` raises nothing but
    ``ValidationFailed``: a reference loop (``RecursionError``) or anything unresolvable in a
    stored schema is a 400 ``schema_unusable``, never a 500 or a fetch, and a value that costs
    more than ``SCHEMA_EVAL_BUDGET`` to check is ``SchemaTooCostly``."""

    def __init__(self, inner: Any, field: str) -> None:
        self._inner, self._field = inner, field

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        """Every error of ``instance``, found within one budget (read from settings on each call),
        and within what is left of a ``shared_budget`` if one is open (``UploadTooCostly``)."""
        limit = settings.SCHEMA_EVAL_BUDGET
        many = shared()
        if many is not None:
            limit = min(limit, max(many.left, 0))
        opened = None
        try:
            with budget(limit) as opened:
                errors = list(self._inner.iter_errors(instance))
        except BudgetExhausted:
            if many is not None and limit < settings.SCHEMA_EVAL_BUDGET:
                raise UploadTooCostly(many.limit) from None
            raise SchemaTooCostly(self._field, limit) from None
        except RecursionError:
            raise _unusable(self._field, ["its references loop without end on this value"]) from None
        except (referencing.exceptions.Unresolvable, re2.error) as exc:
            raise _unusable(self._field, [f"a reference or pattern cannot be used ({exc})"]) from exc
        finally:
            if many is not None and opened is not None:
                many.left -= opened.spent
        return iter(errors)


def _compile(schema: Any, field: str) -> SchemaValidator:
    uri, problem = _dialect(schema)
    if uri is None:
        raise _unusable(field, [problem or ""])
    if isinstance(schema, dict):
        schema = {k: v for k, v in schema.items() if k != "$schema"}
    inner = DIALECTS[uri](schema, registry=REGISTRY, _resolver=root_resolver(schema, uri))
    return SchemaValidator(inner, field)


@lru_cache(maxsize=512)
def _compiled(schema_json: str, field: str) -> SchemaValidator:
    """A stored schema passes the safety checks again before it is compiled: one saved before
    they existed (a remote ``$ref``, a look-ahead) is refused here instead of being run."""
    schema = json.loads(schema_json)
    if not isinstance(schema, dict | bool):
        raise _unusable(field, ["it is not a JSON object"])
    try:
        uri, problem = _dialect(schema)
        if uri is not None:
            DIALECTS[uri].check_schema(schema, format_checker=None)
            problems = _reference_problems(schema, uri)
        else:
            problems = [problem or ""]
    except SchemaError as exc:
        problems = [f"not a valid JSON Schema: {exc.message}"]
    except RecursionError:
        problems = ["it is nested too deeply"]
    if problems:
        raise _unusable(field, problems)
    return _compile(schema, field)


def validator(schema: dict[str, Any], *, field: str = "schema") -> SchemaValidator:
    """A compiled validator, cached by the schema's canonical JSON so edits invalidate it. Raises
    ``ValidationFailed`` (``schema_unusable``) for a stored schema that is unsafe to run."""
    return _compiled(json.dumps(schema, sort_keys=True, separators=(",", ":")), field)


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every violation as ``"<json path>: <message>"``; an empty list when the instance is valid."""
    errors = sorted(validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message}" for e in errors]


_answer_validators: dict[tuple[int, str], Any] = {}


def answer_validator(project_id: int, version: Any) -> SchemaValidator:
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
        found = _answer_validators[key] = validator(schema, field="answer_schema")
    return found
