"""The API's JSON parser (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``): DRF's, with our strict decode."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .. import strict_json


class StrictJSONParser(JSONParser):
    """``application/json`` through ``strict_json.loads``: ``NaN``, ``1e400`` or a body nested past
    ``JSON_MAX_DEPTH`` is a 400 ``malformed_request`` here, not a 500 in the database or in a
    recursive walk later. Messages keep DRF's ``JSON parse error - ...`` form."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return strict_json.loads(stream.read().decode(encoding))
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
