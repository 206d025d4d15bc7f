"""``<id:...>`` in API routes: a database id, so at most a signed 64-bit integer.

Django's ``<int:...>`` takes any number of digits, and an id past the bigint range reached the
database (or a raw query) and failed there. Past the range this converter does not match, so the
request falls through to the API's catch-all 404 (``not_found``), like any unknown path.
"""

from __future__ import annotations

from django.urls import register_converter

ID_MAX = 2**63 - 1  # PostgreSQL bigint, SQLite INTEGER: the largest id a row can have


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > ID_MAX:
            raise ValueError("beyond the id range")  # Django: this route does not match
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
