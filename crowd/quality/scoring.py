"""Scoring an answer against a gold answer. Pure functions: no Django models, no I/O."""

from __future__ import annotations

import math
from typing import Any

from marketplace.enums import AnswerComparison

DEFAULT_JACCARD_THRESHOLD = 1.0


def comparison_errors(config: Any) -> list[str]:
    """What is wrong with a project's ``answer_comparison``; ``[]`` when it is valid."""
    if config in (None, {}):
        return []
    if not isinstance(config, dict):
        return ["Must be a JSON object."]
    kind = config.get("kind")
    allowed = {
        AnswerComparison.EXACT: set(),
        AnswerComparison.NUMERIC: {"tolerance"},
        AnswerComparison.SET: set(),
        AnswerComparison.JACCARD: {"threshold"},
    }
    if kind not in allowed:
        return [f"kind: choose one of {', '.join(AnswerComparison.values)}."]
    errors = []
    unknown = set(config) - {"kind"} - allowed[kind]
    if unknown:
        errors.append(f"Unknown key(s) for {kind}: {', '.join(sorted(unknown))}.")
    if kind == AnswerComparison.NUMERIC:
        tolerance = config.get("tolerance", 0)
        if not _is_number(tolerance) or tolerance < 0:
            errors.append("tolerance: a number ≥ 0.")
    if kind == AnswerComparison.JACCARD:
        threshold = config.get("threshold")
        if not _is_number(threshold) or not 0 < threshold <= 1:
            errors.append("threshold: a number in (0, 1].")
    return errors


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _labels(value: Any) -> frozenset[Any] | None:
    if not isinstance(value, list):
        return None
    try:
        return frozenset(value)
    except TypeError:  # unhashable items (objects): compare their JSON text instead
        import json

        return frozenset(json.dumps(v, sort_keys=True) for v in value)


def gold_score(answer: Any, gold: Any, config: dict[str, Any] | None) -> tuple[bool, float]:
    """``(correct, score)`` of ``answer`` against ``gold`` under the project's comparison.

    A type mismatch (a string where a number is expected) scores 0, never raises: the answer
    already passed the project's answer schema, so it is the gold answer that decides.
    """
    config = config or {}
    kind = config.get("kind", AnswerComparison.EXACT)
    if kind == AnswerComparison.NUMERIC:
        if not (_is_number(answer) and _is_number(gold)):
            return False, 0.0
        ok = abs(answer - gold) <= float(config.get("tolerance", 0)) + 1e-12
        return ok, 1.0 if ok else 0.0
    if kind in (AnswerComparison.SET, AnswerComparison.JACCARD):
        a, g = _labels(answer), _labels(gold)
        if a is None or g is None:
            return False, 0.0
        union = a | g
        jaccard = 1.0 if not union else len(a & g) / len(union)
        if kind == AnswerComparison.SET:
            return a == g, 1.0 if a == g else 0.0
        return jaccard >= float(config.get("threshold", DEFAULT_JACCARD_THRESHOLD)) - 1e-12, jaccard
    ok = answer == gold
    return ok, 1.0 if ok else 0.0
