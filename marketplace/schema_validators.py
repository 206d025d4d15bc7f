"""The validator classes project schemas run on: RE2 for requester regexes, no reference retrieval,
every step paid for from a budget.

jsonschema runs ``pattern`` and ``patternProperties`` (and the property-name matching inside
``additionalProperties`` and ``unevaluatedProperties``) on Python's ``re``, whose backtracking makes
``^(a+)+$`` take hours on 35 characters, and resolves a ``$ref`` it does not know with ``urlopen``.
The classes here override exactly those keywords with RE2 (linear in the input; no look-arounds or
backreferences, and no fallback to ``re``) and are always given ``REGISTRY``, which retrieves
nothing. ``format`` is never asserted (no format checker is passed), so ``format: regex`` compiles
nothing. Every keyword spends from the per-value budget of ``schema_budget``, and the keywords
whose own work grew faster than their input are replaced: ``uniqueItems`` (pairwise comparisons of
objects: 21 s for 3,000 of them) and ``unevaluatedItems``/``unevaluatedProperties`` (membership
tests in lists). The checks that decide whether a schema may run live in ``schemas``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2
import referencing
import referencing.exceptions
from jsonschema import Draft4Validator, Draft6Validator, Draft7Validator, Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend
from referencing.jsonschema import specification_with

from .schema_budget import charge_subschemas, charged, current, regex_units, remembered_search_units, spend

# RE2's cost is linear in the input times the compiled program's size; this bounds the second
# factor (a plain pattern is well under 100; an email-like one with bounded repeats ~3,000).
PATTERN_MAX_PROGRAM_SIZE = 5000


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is our 400, not a line on stderr
_RE2_OPTIONS.never_capture = True  # we only ask "does it match": no submatch pass over the input


def _ecma_escapes(pattern: str) -> str:
    r"""JSON Schema patterns are ECMA-262, where ``\u00e9`` is a code point; RE2 spells it ``\x{e9}``."""
    if "\\u" not in pattern:
        return pattern
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            code = pattern[i + 2 : i + 6]
            if pattern[i + 1] == "u" and len(code) == 4 and all(c in "0123456789abcdefABCDEF" for c in code):
                out.append(f"\\x{{{code}}}")
                i += 6
            else:
                out.append(pattern[i : i + 2])
                i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    """The compiled RE2 program; raises ``re2.error`` (never falls back to Python's ``re``)."""
    return re2.compile(_ecma_escapes(pattern), _RE2_OPTIONS)


@lru_cache(maxsize=256)
def _program_size(pattern: str) -> int:
    return int(_regex(pattern).programsize)


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used, or ``None``."""
    try:
        size = _regex(pattern).programsize
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        return f"RE2 cannot compile it ({reason}); it has no look-arounds or backreferences"
    if size > PATTERN_MAX_PROGRAM_SIZE:
        return f"too complex for RE2 (program size {size:,}; the limit is {PATTERN_MAX_PROGRAM_SIZE:,})"
    return None


def _search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text``; paid for before it runs, once per
    validation for each (pattern, text)."""
    searches = current().searches
    found = searches.get((pattern, text))
    if found is not None:
        spend(remembered_search_units(len(text)))
        return found
    regex = _regex(pattern)
    spend(regex_units(len(text), _program_size(pattern)))
    try:
        found = regex.search(text) is not None
    except UnicodeEncodeError:
        # An unpaired surrogate (refused later by ``storable``): RE2 scans the raw bytes instead.
        found = regex.search(text.encode("utf-8", "surrogatepass")) is not None
    searches[(pattern, text)] = found
    return found


def _is_valid(errors: Iterator[Any]) -> bool:
    return next(errors, None) is None


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    return [key for key in instance if key not in properties and not any(_search(p, key) for p in patterns)]


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """jsonschema's ``additionalProperties`` with the ``patternProperties`` matches on RE2."""
    if not validator.is_type(instance, "object"):
        return
    extras = _additional(instance, schema)
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            joined = ", ".join(repr(each) for each in sorted(extras, key=str))
            yield ValidationError(f"Additional properties are not allowed ({joined} {verb} unexpected)")


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> set[str]:
    """jsonschema 4.26's ``find_evaluated_property_keys_by_schema`` (draft 2020-12), copied because
    it matches ``patternProperties`` with Python's ``re``, and paid for per call: it follows
    ``$ref``, ``$dynamicRef`` and ``dependentSchemas`` without evaluating a keyword, so a schema
    that branches on those would otherwise run it 2**n times for free."""
    spend(1 + len(instance))
    if validator.is_type(schema, "boolean"):
        return set()
    keys: set[str] = set()
    for keyword in ("$ref", "$dynamicRef"):
        reference = schema.get(keyword)
        if reference is not None:
            resolved = validator._resolver.lookup(reference)
            evolved = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated_keys(evolved, instance, resolved.contents)
    properties = schema.get("properties")
    if validator.is_type(properties, "object"):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if (subschema := schema.get(keyword)) is not None:
            keys.update(k for k, v in instance.items() if _is_valid(validator.descend(v, subschema)))
    for pattern in schema.get("patternProperties", {}):
        keys.update(k for k in instance if _search(pattern, k))
    for key, subschema in schema.get("dependentSchemas", {}).items():
        if key in instance:
            keys |= _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _is_valid(validator.descend(instance, subschema)):
                keys |= _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                keys |= _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            keys |= _evaluated_keys(validator, instance, schema["else"])
    return keys


def _unevaluated_properties(validator: Any, unevaluated: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    failed = [
        key
        for key in instance
        if key not in evaluated
        and not _is_valid(validator.descend(instance[key], unevaluated, path=key, schema_path=key))
    ]
    if failed:
        verb = "was" if len(failed) == 1 else "were"
        if unevaluated is False:
            joined = ", ".join(repr(each) for each in sorted(failed, key=str))
            yield ValidationError(f"Unevaluated properties are not allowed ({joined} {verb} unexpected)")
        else:
            joined = ", ".join(repr(each) for each in failed)
            yield ValidationError(
                "Unevaluated properties are not valid under the given schema "
                f"({joined} {verb} unevaluated and invalid)"
            )


def _evaluated_indexes(validator: Any, instance: list[Any], schema: Any) -> set[int]:
    """jsonschema 4.26's ``find_evaluated_item_indexes_by_schema``, copied to be paid for per call
    (like ``_evaluated_keys``) and to answer a set: the original's list made ``unevaluatedItems``
    quadratic in the array's length."""
    spend(1 + len(instance))
    if validator.is_type(schema, "boolean"):
        return set()
    if "items" in schema:
        return set(range(len(instance)))
    indexes: set[int] = set()
    for keyword in ("$ref", "$dynamicRef"):
        reference = schema.get(keyword)
        if reference is not None:
            resolved = validator._resolver.lookup(reference)
            evolved = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            indexes |= _evaluated_indexes(evolved, instance, resolved.contents)
    if "prefixItems" in schema:
        indexes.update(range(len(schema["prefixItems"])))
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            indexes |= _evaluated_indexes(validator, instance, schema["if"])
            if "then" in schema:
                indexes |= _evaluated_indexes(validator, instance, schema["then"])
        elif "else" in schema:
            indexes |= _evaluated_indexes(validator, instance, schema["else"])
    for keyword in ("contains", "unevaluatedItems"):
        if keyword in schema:
            matcher = validator.evolve(schema=schema[keyword])
            indexes.update(index for index, item in enumerate(instance) if matcher.is_valid(item))
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _is_valid(validator.descend(instance, subschema)):
                indexes |= _evaluated_indexes(validator, instance, subschema)
    return indexes


def _unevaluated_items(validator: Any, unevaluated: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "array"):
        return
    evaluated = _evaluated_indexes(validator, instance, schema)
    extras = [item for index, item in enumerate(instance) if index not in evaluated]
    if extras:
        verb = "was" if len(extras) == 1 else "were"
        joined = ", ".join(repr(each) for each in extras)
        yield ValidationError(f"Unevaluated items are not allowed ({joined} {verb} unexpected)")


def _canonical(value: Any) -> Any:
    """A hashable key that is equal for values JSON Schema calls equal (``1`` and ``1.0``, objects
    in any key order) and different for those it does not (``true`` and ``1``). Recursive: request
    JSON nests at most ``JSON_MAX_DEPTH`` levels."""
    if value is True or value is False:
        return ("bool", value)
    if isinstance(value, list):
        return ("array", tuple(_canonical(each) for each in value))
    if isinstance(value, dict):
        return ("object", frozenset((key, _canonical(each)) for key, each in value.items()))
    return value


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """jsonschema's ``uniqueItems`` compares every pair of items once they are not all sortable (any
    two objects): 3,000 small objects took 21 s. Hashing canonical keys is linear."""
    if not unique or not validator.is_type(instance, "array"):
        return
    if len({_canonical(each) for each in instance}) < len(instance):
        yield ValidationError(f"{instance!r} has non-unique elements")


# Keywords replaced in every dialect that has them: requester regexes on RE2, linear time.
_REPLACED = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "unevaluatedProperties": _unevaluated_properties,
    "unevaluatedItems": _unevaluated_items,
    "uniqueItems": _unique_items,
}


def _safe(base: Any) -> Any:
    """``base`` with the keywords above replaced, and every keyword paying from the budget."""
    keywords = {**base.VALIDATORS, **{k: fn for k, fn in _REPLACED.items() if k in base.VALIDATORS}}
    return charge_subschemas(extend(base, {k: charged(k, fn) for k, fn in keywords.items()}))


# Draft 2020-12 is the default; ``$schema`` may also name drafts 7, 6 or 4. The class is picked here,
# once, from the root: jsonschema would switch to its own (Python ``re``) classes for any subschema
# naming a dialect, so ``$schema`` is refused below the root and removed from it before compiling.
DIALECTS = {
    "https://json-schema.org/draft/2020-12/schema": _safe(Draft202012Validator),
    "http://json-schema.org/draft-07/schema": _safe(Draft7Validator),
    "http://json-schema.org/draft-06/schema": _safe(Draft6Validator),
    "http://json-schema.org/draft-04/schema": _safe(Draft4Validator),
}
DEFAULT_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _retrieve_nothing(uri: str) -> Any:
    """The registry's loader: refuses every URI, so a reference is never fetched or read."""
    raise referencing.exceptions.NoSuchResource(ref=uri)


REGISTRY: referencing.Registry[Any] = referencing.Registry(retrieve=_retrieve_nothing)  # type: ignore[call-arg]


def root_resolver(schema: Any, uri: str) -> Any:
    """The resolver a compiled validator starts from, over a registry already crawled.

    jsonschema leaves the root uncrawled, and ``referencing`` crawls the whole schema again for
    every ``$ref`` to an ``$anchor`` (or an ``$id``) looked up from it without keeping the result:
    64 KiB of schema re-read per array item. Crawling once here makes every lookup a dict read."""
    resource = specification_with(uri).create_resource(schema)
    base = resource.id() or ""
    return REGISTRY.with_resource(base, resource).crawl().resolver(base_uri=base)
