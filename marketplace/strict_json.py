"""The one JSON decoder for request bodies: every entry point that parses client JSON uses ``loads``.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, turns ``1e400`` into ``inf`` and
recurses once per nesting level. PostgreSQL refuses the non-finite numbers (a 500 after validation
had passed), and a body nested a few hundred levels deep made every later recursive walk (JSON
Schema, ``json.dumps``, psycopg) raise ``RecursionError``. ``loads`` refuses all of that up front
with a ``ValueError`` whose message can be shown to the client.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from django.conf import settings

DEFAULT_MAX_DEPTH = 64
# The largest finite double has 309 integer digits; a longer JSON integer cannot be one.
_FLOAT_DIGITS = len(str(int(sys.float_info.max)))


class JsonRejected(ValueError):
    """Well-formed JSON we refuse (a non-finite or out-of-range number, too deep, not UTF-8)."""


def max_depth() -> int:
    """``JSON_MAX_DEPTH``: how many arrays/objects a request body may nest."""
    return int(getattr(settings, "JSON_MAX_DEPTH", DEFAULT_MAX_DEPTH))


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"


def _constant(name: str) -> Any:
    raise JsonRejected(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonRejected(f"the number {_short(text)} is out of range (at most about 1.8e308)")
    return value


def _int(text: str) -> int:
    # Checked before int(): past 4,300 digits int() itself raises, with advice meant for developers.
    digits = len(text) - text.startswith("-")
    if digits > _FLOAT_DIGITS or (digits == _FLOAT_DIGITS and abs(int(text)) > sys.float_info.max):
        raise JsonRejected(f"the number {_short(text)} is out of range (at most about 1.8e308)")
    return int(text)


def too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` arrays/objects; iterative, so any depth is safe."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def loads(data: str | bytes, *, depth: int | None = None) -> Any:
    """Decode client JSON. Raises ``json.JSONDecodeError`` for bad syntax and ``JsonRejected`` for
    ``NaN``/``Infinity``, numbers beyond a double's range, bytes that are not UTF-8, or nesting
    deeper than ``depth`` (default ``JSON_MAX_DEPTH``); both are ``ValueError``s."""
    limit = max_depth() if depth is None else depth
    try:
        value = json.loads(data, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        # The C scanner recurses per level: past Python's recursion limit it gives up cleanly.
        raise JsonRejected(f"nested deeper than {limit} levels") from None
    except UnicodeDecodeError:
        raise JsonRejected("the body is not UTF-8 text") from None
    if too_deep(value, limit):
        raise JsonRejected(f"nested deeper than {limit} levels")
    return value
