"""A deterministic budget for checking one value against a requester's JSON Schema.

RE2 and the size limits bound each step of a validation, not how many steps a schema takes: two
``$ref``s under an ``anyOf``, chained 14 deep, evaluate 2**14 branches for a value that fails
them all (2.6 s, doubling per level), and ``oneOf``, ``not`` and the ``unevaluated*`` keywords
evaluate subschemas again. So every step spends units from a budget opened per value by
``schemas.SchemaValidator`` (``SCHEMA_EVAL_BUDGET``). The budget lives in a ``ContextVar``, not on
a validator, because jsonschema makes a new validator for every ``descend``, ``evolve`` and
``$ref``: they all spend from the one counter. When it runs out, ``BudgetExhausted`` stops the
validation where it is.

Units count work, not time, so a verdict never depends on the machine's load. Work that grows
with the value or the schema is weighed by its size, before it runs wherever the size is known, so
that no unit costs much more than another: about 1 to 3.5 us each on the 2-core reference machine,
hostile or not (``bench/schema_budget.py`` prints them; ``docs/BENCHMARKS.md`` records them).

- a keyword evaluation: 1, plus 1 per ``WALKED_PER_UNIT`` items or properties of the value that it
  walks (``items``, ``contains``, ``propertyNames``, ...), per ``LOOKUPS_PER_UNIT`` entries of its
  own value that it looks up in the value (``properties``, ``required``, ...) or per
  ``COMPARED_PER_UNIT`` JSON values of its own value that it compares (``enum``, ``const``);
- entering a subschema (every ``descend``, ``$ref``, ``not``, ``if`` makes a validator for it):
  ``SUBSCHEMA_UNITS``, plus 1 per ``SCHEMA_KEYS_PER_UNIT`` keys of the subschema; a reference also
  1 per step of its JSON pointer;
- ``uniqueItems``: 1 per JSON value of the array (it hashes them all);
- a new error: ``NEW_ERROR_UNITS`` plus 1 per ``MESSAGE_CHARS_PER_UNIT`` characters of its message,
  which quotes the value (``repr``); 1 for each keyword it passes on the way up;
- an RE2 search: ``REGEX_SEARCH_UNITS + length * (program size + REGEX_PROGRAM_FLOOR) /
  REGEX_WORK_PER_UNIT``.
  RE2 runs a DFA when it can, but falls back to simulating the program, in time proportional to
  both, when a pattern's DFA grows too large: ``a[ab]{1000}[ab]{1000}[ab]{1000}[ab]{990}c`` took
  2.9 s over 100 kB of a's and b's. A search already made in this validation is not paid again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

SUBSCHEMA_UNITS = 4
SCHEMA_KEYS_PER_UNIT = 8
REFERENCE_UNITS = 1
WALKED_PER_UNIT = 2
LOOKUPS_PER_UNIT = 8
COMPARED_PER_UNIT = 2
NEW_ERROR_UNITS = 5
MESSAGE_CHARS_PER_UNIT = 64  # repr of nested values runs at ~50 ns a character
REGEX_SEARCH_UNITS = 2  # the call itself: caches, UTF-8 conversion
REGEX_WORK_PER_UNIT = 512  # characters x program instructions; simulated RE2 runs at ~6 ns each
REGEX_PROGRAM_FLOOR = 64  # a tiny program still costs up to ~0.5 us a character when simulated
HASHED_CHARS_PER_UNIT = 4096  # looking up a search already made hashes the text

Keyword = Callable[[Any, Any, Any, Any], Any]


class BudgetExhausted(Exception):
    """The value took more than ``limit`` units to check; nothing of the validation is kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit:,} steps")
        self.limit = limit


@dataclass
class Budget:
    """What one validation may still spend, and the regex searches it has already paid for (the
    same key is matched by ``patternProperties``, ``additionalProperties`` and the
    ``unevaluatedProperties`` helper, and a branching schema repeats them all)."""

    limit: int
    left: int
    searches: dict[tuple[str, str], bool] = field(default_factory=dict)

    @property
    def spent(self) -> int:
        return self.limit - self.left


_budget: ContextVar[Budget | None] = ContextVar("schema_budget", default=None)


@contextmanager
def budget(limit: int) -> Iterator[Budget]:
    """Open a budget of ``limit`` units for one validation; everything inside spends from it."""
    opened = Budget(limit=limit, left=limit)
    token = _budget.set(opened)
    try:
        yield opened
    finally:
        _budget.reset(token)


_shared: ContextVar[Budget | None] = ContextVar("schema_budget_shared", default=None)


@contextmanager
def shared_budget(limit: int) -> Iterator[Budget]:
    """One budget for many values checked one after the other (the rows of an upload): each
    value's own budget is at most what is left of it, and what each spends is taken from it. A
    value limit alone lets a schema that costs just under it per row hold a web process for hours
    on a 200,000-row upload."""
    opened = Budget(limit=limit, left=limit)
    token = _shared.set(opened)
    try:
        yield opened
    finally:
        _shared.reset(token)


def shared() -> Budget | None:
    """The shared budget the current values spend from, if one is open."""
    return _shared.get()


def current() -> Budget:
    """The open budget. Outside ``budget()`` a project schema is being run unbounded: a programming
    error, raised rather than allowed."""
    opened = _budget.get()
    if opened is None:
        raise RuntimeError("a project schema was evaluated outside schema_budget.budget()")
    return opened


def spend(units: int) -> None:
    """Take ``units`` from the open budget; raise ``BudgetExhausted`` once it is overdrawn."""
    opened = current()
    opened.left -= units
    if opened.left < 0:
        raise BudgetExhausted(opened.limit)


def regex_units(text_length: int, program_size: int) -> int:
    """What one RE2 search of ``text_length`` characters costs."""
    return REGEX_SEARCH_UNITS + text_length * (program_size + REGEX_PROGRAM_FLOOR) // REGEX_WORK_PER_UNIT


def remembered_search_units(text_length: int) -> int:
    """What finding a search already paid for costs: hashing the text, once per string object."""
    return 1 + text_length // HASHED_CHARS_PER_UNIT


def nodes(value: Any) -> int:
    """How many JSON values ``value`` holds, itself included; iterative, so any depth is safe."""
    if not isinstance(value, dict | list):
        return 1
    total, stack = 1, [value]
    while stack:
        node = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        total += len(children)
        stack.extend(child for child in children if isinstance(child, dict | list))
    return total


def _items(value: Any, instance: Any) -> int:
    return 1 + len(instance) // WALKED_PER_UNIT if isinstance(instance, list) else 1


def _properties(value: Any, instance: Any) -> int:
    return 1 + len(instance) // WALKED_PER_UNIT if isinstance(instance, dict) else 1


def _unique(value: Any, instance: Any) -> int:
    return 1 + nodes(instance) if value is True and isinstance(instance, list) else 1


def _reference(value: Any, instance: Any) -> int:
    return REFERENCE_UNITS + value.count("/") if isinstance(value, str) else 1


def _entries(value: Any, instance: Any) -> int:
    return 1 + len(value) // LOOKUPS_PER_UNIT if isinstance(value, dict | list) else 1


def _lookups(value: Any, instance: Any) -> int:
    return 1 + nodes(value) // LOOKUPS_PER_UNIT


def _compared(value: Any, instance: Any) -> int:
    return 1 + nodes(value) // COMPARED_PER_UNIT


# What one evaluation of a keyword costs up front, from its value and the instance; 1 if absent.
# Regex searches and the helpers of the ``unevaluated*`` keywords also spend as they go.
_UNITS: dict[str, Callable[[Any, Any], int]] = {
    "items": _items,
    "additionalItems": _items,
    "contains": _items,
    "unevaluatedItems": _items,
    "uniqueItems": _unique,
    "additionalProperties": _properties,
    "propertyNames": _properties,
    "unevaluatedProperties": _properties,
    "$ref": _reference,
    "$dynamicRef": _reference,
    "properties": _entries,
    "dependentSchemas": _entries,
    "patternProperties": _entries,
    "required": _entries,
    "dependentRequired": _lookups,
    "dependencies": _lookups,
    "enum": _compared,
    "const": _compared,
}


def charged(keyword: str, function: Keyword) -> Keyword:
    """``function`` (a jsonschema keyword) spending from the budget before it runs and for every
    error it passes on, its own or a subschema's."""
    units = _UNITS.get(keyword)

    def keyword_charged(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        spend(1 if units is None else units(value, instance))
        for error in function(validator, value, instance, schema) or ():
            # An empty schema path: the error is new (every level it passes adds to its path), so
            # its message, which often quotes the whole value, was just built.
            fresh = not error.schema_path
            spend(NEW_ERROR_UNITS + len(error.message) // MESSAGE_CHARS_PER_UNIT if fresh else 1)
            yield error

    keyword_charged.__name__ = keyword_charged.__qualname__ = f"charged_{keyword}"
    return keyword_charged


def charge_subschemas(cls: Any) -> Any:
    """``cls`` (a validator class of ours) paying whenever it enters a subschema: ``descend``,
    ``$ref``, ``not``, ``if`` and the ``unevaluated*`` helpers all ``evolve`` a new validator first,
    and that, more than the keywords, is what a branch costs. Subclassing is deprecated by
    jsonschema, so the class's own method is wrapped."""
    evolve = cls.evolve

    def evolve_charged(self: Any, **changes: Any) -> Any:
        schema = changes.get("schema")
        spend(SUBSCHEMA_UNITS + (len(schema) // SCHEMA_KEYS_PER_UNIT if isinstance(schema, dict) else 0))
        return evolve(self, **changes)

    cls.evolve = evolve_charged
    return cls
