"""A lean path for the two hottest endpoints, in front of their DRF views.

Claim and submit are most of the traffic, and profiling put DRF's per-request machinery (request
wrapping, authenticator and permission objects, negotiation, response rendering) near half of
their Python time. The lean path handles only the plain case: an ``Authorization: Token|Bearer``
key of an active worker and a JSON body the view can take as is. Anything else (another way of
logging in, a bad key, a malformed body, a wrong role) goes to the DRF view, which owns every
error message. Both paths call the same services and render errors through the same
``error_body``, so a client cannot tell them apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from marketplace import strict_json
from marketplace.api.errors import error_body
from marketplace.authentication import KEYWORDS, user_for_key
from marketplace.errors import ApplicationError

from ..models import Worker

LeanHandler = Callable[..., HttpResponse | None]


def json_response(body: str | Any, status: int = 200) -> HttpResponse:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return HttpResponse(text.encode(), status=status, content_type="application/json")


def error_response(exc: ApplicationError) -> HttpResponse:
    return json_response(error_body(exc.code, exc.message, exc.detail), status=exc.status_code)


def token_worker(request: HttpRequest) -> Worker | None:
    """The worker behind a plain ``Token``/``Bearer`` header, or ``None`` for the DRF view to
    decide (no such header, a bad or revoked key, an inactive user, no worker profile)."""
    header = request.META.get("HTTP_AUTHORIZATION", "").encode("iso-8859-1", "replace").split()
    if len(header) != 2 or header[0].lower() not in KEYWORDS:
        return None
    try:
        key = header[1].decode()
    except UnicodeError:
        return None
    found = user_for_key(key)
    if found is None:
        return None
    user = request.user = found[0]
    try:
        return user.worker  # cached by the lookup: no query
    except Worker.DoesNotExist:
        return None


def json_body(request: HttpRequest) -> Any:
    """The parsed JSON body, or ``None`` when it is not plainly JSON: malformed, or refused by the
    strict decode (``NaN``, ``1e400``, too deep). The DRF view's parser then explains, as a 400."""
    if request.content_type != "application/json":
        return None
    try:
        return strict_json.loads(request.body)
    except ValueError:
        return None


def lean(drf_view: Callable[..., Any], handler: LeanHandler) -> Callable[..., Any]:
    """``drf_view`` with ``handler`` tried first; ``handler`` returns ``None`` to hand over.

    The wrapper keeps the DRF view's ``cls``/``initkwargs`` so the OpenAPI schema still
    describes the endpoint from the DRF view.
    """

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method == "POST":
            response = handler(request, *args, **kwargs)
            if response is not None:
                return response
        return drf_view(request, *args, **kwargs)

    for name in ("cls", "initkwargs", "view_class", "view_initkwargs"):
        if hasattr(drf_view, name):
            setattr(view, name, getattr(drf_view, name))
    view.__doc__ = drf_view.__doc__
    view.__name__ = getattr(drf_view, "__name__", "view")
    return csrf_exempt(view)
