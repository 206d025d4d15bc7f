"""Typed application errors. The API maps each to ``{"code", "message", "detail"}`` once."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """Base class: a stable machine-readable ``code``, a human ``message``, an HTTP status."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.detail = detail if detail is not None else {}


class ValidationFailed(ApplicationError):
    status_code = 400
    default_code = "invalid"


class NotFound(ApplicationError):
    """Also used for other tenants' objects, so existence is never revealed."""

    status_code = 404
    default_code = "not_found"


class Forbidden(ApplicationError):
    status_code = 403
    default_code = "forbidden"


class Conflict(ApplicationError):
    """The object exists, but its current state does not allow the action."""

    status_code = 409
    default_code = "conflict"
