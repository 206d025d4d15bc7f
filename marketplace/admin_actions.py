"""What every app's admin shares: read-only rows, and actions that call one service per row.

An admin never writes a state or money field by hand: the change form of such a row is view-only
and its state moves only through an action, which calls the same service as the API (so the same
locks, transitions, event rows and ledger postings apply). Each selected row is its own service
call: one refused row (a typed ``ApplicationError``) is reported and does not stop the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from .errors import ApplicationError

REASON_MAX_CHARS = 2000


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never added, changed or deleted here (insert-only history, money rows)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ActionsOnlyAdmin(ReadOnlyAdmin):
    """Rows are view-only; their state changes through the actions, which need the model's change
    permission. Django asks ``has_change_permission`` without an object for the actions and with one
    for the change form, so the form never accepts a POST (a full-row save could also overwrite
    counters a service changed meanwhile)."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and admin.ModelAdmin.has_change_permission(self, request)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        max_length=REASON_MAX_CHARS,
        help_text="Recorded with the change.",
    )


def error_text(exc: ApplicationError) -> str:
    """The error's message, or its per-row errors when it carries them (the review's 409)."""
    errors = exc.detail.get("errors") if isinstance(exc.detail, dict) else None
    if isinstance(errors, dict) and errors:
        return " ".join(str(message) for message in errors.values())
    return exc.message


def apply_each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    rows: Iterable[Model],
    call: Callable[[Any], object],
    *,
    done: str,
) -> None:
    """``call(row)`` for each row in turn, each one service call in its own transaction; report
    ``done`` (formatted with ``n``) for the rows changed and an error naming each row refused."""
    changed, refused = 0, []
    for row in rows:
        try:
            call(row)
            changed += 1
        except ApplicationError as exc:
            refused.append(f"{row.pk}: {error_text(exc)}")
    if changed:
        modeladmin.message_user(request, done.format(n=changed), messages.SUCCESS)
    if refused:
        modeladmin.message_user(request, "Not changed: " + "; ".join(refused), messages.ERROR)
    if not changed and not refused:
        modeladmin.message_user(request, "Nothing was selected.", messages.WARNING)


def confirm_and_apply(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: str,
    explanation: str,
    call: Callable[[Any, dict[str, Any]], object],
    done: str,
    form_class: type[forms.Form] = ReasonForm,
) -> TemplateResponse | None:
    """An action that needs input (a reason the service records): the first POST shows the
    selected rows and ``form_class``; the confirming POST (``apply``) runs ``call(row, cleaned_data)``
    for each row through ``apply_each``. An invalid form is shown again and changes nothing."""
    rows = list(queryset.order_by("pk"))
    form = form_class(request.POST) if "apply" in request.POST else form_class()
    if "apply" in request.POST and form.is_valid():
        data = form.cleaned_data
        apply_each(modeladmin, request, rows, lambda row: call(row, data), done=done)
        return None
    return TemplateResponse(
        request,
        "admin/action_confirm.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "explanation": explanation,
            "opts": modeladmin.model._meta,
            "rows": rows,
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )
