"""How long checking one value against a project schema can take under ``SCHEMA_EVAL_BUDGET``.

Hostile schemas (each accepted by ``schema_check``) are run until the budget stops them, and the
wall time to that point is the worst a value can cost; realistic schemas are run to the end, and
their units show how far they stay from the budget. Every figure is the best and the worst of
``--repeat`` runs in this process (the first run also compiles the RE2 programs and fills RE2's DFA
cache, so the worst is usually the first).

    .venv/bin/python bench/schema_budget.py [--budget N] [--repeat 5] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _fanout(levels: int, leaf: Any, keyword: str = "anyOf") -> dict[str, Any]:
    """Two references to the next level under ``keyword``, ``levels`` deep: 2**levels leaves."""
    defs = {
        f"d{i}": {keyword: [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)
    }
    return {"$defs": {**defs, f"d{levels}": leaf}, "$ref": "#/$defs/d0"}


def _ref_fanout(levels: int, leaf: Any, keyword: str) -> dict[str, Any]:
    """Like ``_fanout`` but through ``$ref`` + ``$dynamicRef`` (or ``dependentSchemas``) side by side,
    which the helpers of ``unevaluatedProperties``/``unevaluatedItems`` follow without a keyword."""
    defs: dict[str, Any] = {}
    for i in range(levels):
        nxt = f"#/$defs/d{i + 1}"
        if keyword == "dependentSchemas":
            defs[f"d{i}"] = {"dependentSchemas": {"a": {"$ref": nxt}, "b": {"$ref": nxt}}}
        else:
            defs[f"d{i}"] = {"$ref": nxt, "$dynamicRef": nxt}
    return {"$defs": {**defs, f"d{levels}": leaf}, "$ref": "#/$defs/d0"}


def _deep_pointer_fanout(levels: int) -> dict[str, Any]:
    """``_fanout`` whose targets sit 14 ``properties`` deep, so each lookup walks a long pointer."""
    defs: dict[str, Any] = {}
    path = "/properties/p" * 7
    for i in range(levels + 1):
        node: Any = (
            {"type": "string"}
            if i == levels
            else {"anyOf": [{"$ref": f"#/$defs/d{i + 1}{path}"}, {"$ref": f"#/$defs/d{i + 1}{path}"}]}
        )
        for _ in range(7):
            node = {"properties": {"p": node}}
        defs[f"d{i}"] = node
    return {"$defs": defs, "$ref": f"#/$defs/d0{path}"}


def _dynamic_tree() -> dict[str, Any]:
    """A recursive schema through ``$dynamicRef``; references must start with ``#``, so the dynamic
    scope cannot grow past the schema's own nesting of ``$id``s."""
    return {
        "$id": "urn:tree",
        "$dynamicAnchor": "node",
        "type": "object",
        "properties": {"c": {"$dynamicRef": "#node"}},
        "additionalProperties": {"$defs": {"inner": {"$id": "urn:inner"}}, "$dynamicRef": "#node"},
    }


def _nested_value(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"c": value, **{f"k{i}": {} for i in range(20)}}
    return value


def _nested(count: int) -> Any:
    return {"items": [{"id": i, "tags": ["a", "b"], "box": [i, i + 1]} for i in range(count)]}


NESTED = _nested(600)
NESTED_BUT_LAST = _nested(600)
NESTED_BUT_LAST["items"][-1]["box"][-1] = -1

_rng = random.Random(13)
AB_100K = "".join(_rng.choice("ab") for _ in range(100_000))
NFA_PATTERN = "a[ab]{1000}[ab]{1000}[ab]{1000}[ab]{990}c"  # RE2 program size 3,996: the DFA gives up

LABELS = ["person", "car", "bicycle", "dog", "cat", "traffic light", "stop sign", "bus"]
BOX = {
    "type": "object",
    "properties": {
        "label": {"enum": LABELS},
        "x": {"type": "number", "minimum": 0, "maximum": 1},
        "y": {"type": "number", "minimum": 0, "maximum": 1},
        "w": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "h": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "occluded": {"type": "boolean"},
    },
    "required": ["label", "x", "y", "w", "h"],
    "additionalProperties": False,
}


def _form_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """An object with 30 properties: enums, patterns, bounded numbers, arrays, a conditional."""
    properties: dict[str, Any] = {}
    answer: dict[str, Any] = {}
    for i in range(10):
        properties[f"choice_{i}"] = {"type": "string", "enum": [f"option {k}" for k in range(12)]}
        answer[f"choice_{i}"] = "option 7"
    for i in range(8):
        properties[f"code_{i}"] = {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{4,8}$", "maxLength": 12}
        answer[f"code_{i}"] = "AB-123456"
    for i in range(6):
        properties[f"score_{i}"] = {"type": "integer", "minimum": 1, "maximum": 5}
        answer[f"score_{i}"] = 4
    for i in range(4):
        properties[f"tags_{i}"] = {
            "type": "array",
            "items": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"},
            "maxItems": 20,
            "uniqueItems": True,
        }
        answer[f"tags_{i}"] = [f"tag-{k}" for k in range(10)]
    properties["comment"] = {"type": "string", "maxLength": 5000, "pattern": "^[^<>]*$"}
    answer["comment"] = "Looks fine to me. " * 250
    properties["email"] = {"type": "string", "pattern": "^[^@\\s]{1,64}@[^@\\s]{1,255}$"}
    answer["email"] = "reviewer@example.com"
    schema = {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
        "if": {"properties": {"score_0": {"const": 1}}},
        "then": {"required": ["comment"]},
    }
    return schema, answer


def _cases() -> list[tuple[str, str, dict[str, Any], Any]]:
    """(kind, name, schema, value); kind is "hostile" or "realistic"."""
    form, form_answer = _form_schema()
    box = {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "occluded": False}
    boxes = [{"label": LABELS[i % 8], **box} for i in range(500)]
    big_object = {f"k{i}": i for i in range(50_000)}
    return [
        ("hostile", "anyOf/$ref x2, 20 levels, value 1", _fanout(20, {"type": "string"}), 1),
        ("hostile", "oneOf/$ref x2, 20 levels, value 1", _fanout(20, {"type": "string"}, "oneOf"), 1),
        ("hostile", "allOf/$ref x2, 20 levels, value 1", _fanout(20, {"type": "string"}, "allOf"), 1),
        (
            "hostile",
            "anyOf x2, 20 levels, 100 kB string (error repr)",
            _fanout(20, {"type": "integer"}),
            AB_100K,
        ),
        (
            "hostile",
            "anyOf x2, 20 levels, 8,000-value enum",
            _fanout(20, {"enum": [f"v{i}" for i in range(8000)]}),
            "x",
        ),
        (
            "hostile",
            "anyOf x2, 20 levels, 100k-item array under items: {}",
            _fanout(20, {"items": {}, "type": "string"}),
            [0] * 100_000,
        ),
        (
            "hostile",
            "anyOf x2, 20 levels, uniqueItems on 20k objects",
            _fanout(20, {"uniqueItems": True, "type": "string"}),
            [{"a": i} for i in range(20_000)],
        ),
        (
            "hostile",
            "anyOf x2, 20 levels, 4,000 required names",
            _fanout(20, {"required": [f"n{i}" for i in range(4000)]}),
            {},
        ),
        (
            "hostile",
            "anyOf x2, 20 levels, not: a 40 kB schema (its repr)",
            _fanout(20, {"not": {"enum": [f"value number {i}" for i in range(2000)]}}),
            "value number 7",
        ),
        (
            "hostile",
            "oneOf x2 both valid, 14 levels, 100 kB string",
            _fanout(14, {"type": "string"}, "oneOf"),
            AB_100K,
        ),
        (
            "hostile",
            "if/then/else x2, 20 levels, value 1",
            {
                "$defs": {
                    **{
                        f"d{i}": {
                            "if": {"$ref": f"#/$defs/d{i + 1}"},
                            "then": {"$ref": f"#/$defs/d{i + 1}"},
                            "else": {"$ref": f"#/$defs/d{i + 1}"},
                        }
                        for i in range(20)
                    },
                    "d20": {"type": "string"},
                },
                "$ref": "#/$defs/d0",
            },
            1,
        ),
        (
            "hostile",
            "contains under anyOf x2, 20 levels, 10k items",
            _fanout(20, {"contains": {"type": "string"}}),
            list(range(10_000)),
        ),
        (
            "hostile",
            "200 patternProperties x 300 keys, additionalProperties: false",
            {
                "patternProperties": {f"^p{i}_[a-z]+$": {"type": "integer"} for i in range(200)},
                "additionalProperties": False,
            },
            {f"key{i}": i for i in range(300)},
        ),
        (
            "hostile",
            "anyOf x2, 20 levels, enum of one 6,000-node object",
            _fanout(20, {"enum": [NESTED]}),
            NESTED_BUT_LAST,
        ),
        (
            "hostile",
            "anyOf x2, 20 levels, leaf with 3,000 unknown keywords",
            _fanout(20, {**{f"x{i}": 0 for i in range(3000)}, "type": "string"}),
            1,
        ),
        (
            "hostile",
            "anyOf x2, 14 levels, each $ref a 14-step pointer",
            _deep_pointer_fanout(14),
            1,
        ),
        (
            "hostile",
            "$dynamicRef tree, value 60 levels x 20 keys",
            _dynamic_tree(),
            _nested_value(60),
        ),
        (
            "hostile",
            "20 NFA patterns (program 3,996) over 100 kB",
            {"allOf": [{"pattern": f"{NFA_PATTERN}{'d' * i}"} for i in range(20)]},
            AB_100K,
        ),
        ("hostile", "1 NFA pattern (program 3,996) over 100 kB", {"pattern": NFA_PATTERN}, AB_100K),
        (
            "hostile",
            "unevaluatedProperties through $ref+$dynamicRef x2, 20 levels",
            {**_ref_fanout(20, {}, "dynamic"), "unevaluatedProperties": False},
            {"x": 1},
        ),
        (
            "hostile",
            "unevaluatedProperties through dependentSchemas x2, 20 levels",
            {**_ref_fanout(20, {}, "dependentSchemas"), "unevaluatedProperties": False},
            {"a": 1, "b": 2, "c": 3},
        ),
        (
            "hostile",
            "unevaluatedItems through $ref+$dynamicRef x2, 20 levels",
            {**_ref_fanout(20, {}, "dynamic"), "unevaluatedItems": False},
            [1],
        ),
        (
            "hostile",
            "propertyNames pattern over 50k keys, anyOf x2, 12 levels",
            _fanout(12, {"propertyNames": {"pattern": "^k[0-9]+$"}, "type": "string"}),
            big_object,
        ),
        (
            "hostile",
            "$ref to $anchor per item of 5k, 50 kB schema",
            {
                "items": {"$ref": "#item"},
                "$defs": {
                    "item": {"$anchor": "item", "type": "integer"},
                    **{f"pad{i}": {"type": "string", "description": "x" * 20} for i in range(1000)},
                },
            },
            list(range(5_000)),
        ),
        (
            "realistic",
            "demo sentiment answer",
            {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "neutral",
        ),
        (
            "realistic",
            "demo text input",
            {
                "type": "object",
                "properties": {"text": {"type": "string", "minLength": 1}},
                "required": ["text"],
                "additionalProperties": False,
            },
            {"text": "The zipper broke the second time I used the backpack."},
        ),
        ("realistic", "form: 30 properties, enums, patterns, 4.5 kB comment", form, form_answer),
        ("realistic", "500 bounding boxes", {"type": "array", "items": BOX, "maxItems": 1000}, boxes),
        (
            "realistic",
            "polygon of 2,000 points",
            {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
                "minItems": 3,
            },
            [[i * 0.5, i * 0.25] for i in range(2000)],
        ),
        (
            "realistic",
            "10 kB free text under a pattern",
            {"type": "string", "maxLength": 20000, "pattern": "^[\\s\\S]*\\S[\\s\\S]*$"},
            "word " * 2000,
        ),
    ]


def _run(schema: dict[str, Any], value: Any, limit: int) -> tuple[int, bool, float]:
    from marketplace.schema_budget import BudgetExhausted, budget
    from marketplace.schemas import validator

    inner = validator(schema)._inner  # the jsonschema validator, to read the units spent
    started = time.perf_counter()
    exhausted = False
    with budget(limit) as opened:
        try:
            list(inner.iter_errors(value))
        except BudgetExhausted:
            exhausted = True
    return opened.spent, exhausted, time.perf_counter() - started


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings.local")
    import django

    django.setup()
    from django.conf import settings

    from marketplace.schemas import schema_check

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=settings.SCHEMA_EVAL_BUDGET)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    load = ", ".join(f"{each:.2f}" for each in os.getloadavg())
    print(
        f"budget {args.budget:,} units, best/worst of {args.repeat} runs, {os.cpu_count()} cores, load {load}"
    )
    print(f"{'kind':9} {'case':62} {'units':>9} {'stopped':>7} {'best ms':>8} {'worst ms':>8} {'us/unit':>7}")
    for kind, name, schema, value in _cases():
        if args.only and args.only not in name:
            continue
        schema_check(schema, field="schema")  # every case is a schema a requester may save
        runs = [_run(schema, value, args.budget) for _ in range(args.repeat)]
        spent, exhausted, _ = runs[0]
        best, worst = min(r[2] for r in runs), max(r[2] for r in runs)
        print(
            f"{kind:9} {name:62} {spent:>9,} {'yes' if exhausted else 'no':>7} {best * 1000:8.1f} "
            f"{worst * 1000:8.1f} {best * 1e6 / max(spent, 1):7.2f}"
        )
    print("load at the end:", ", ".join(f"{each:.2f}" for each in os.getloadavg()))


if __name__ == "__main__":
    main()
