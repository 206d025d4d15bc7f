"""Role checks: the caller must hold the profile the endpoint serves."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from crowd.selectors import worker_of

from ..selectors import requester_of


class IsRequester(BasePermission):
    message = "This endpoint is for requesters; create a requester profile first."
    code = "not_a_requester"

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        request.requester = requester_of(user)
        return request.requester is not None


class IsWorker(BasePermission):
    message = "This endpoint is for workers; create a worker profile first."
    code = "not_a_worker"

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        request.worker = worker_of(user)
        return request.worker is not None
