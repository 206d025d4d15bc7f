"""Admin: appeals against rejections. Admins overturn (pay the worker) or uphold them through
``appeal_decide``; no field of an appeal is edited by hand.

Imported at the end of ``crowd.admin``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from marketplace.admin_actions import ActionsOnlyAdmin
from marketplace.errors import ApplicationError

from .enums import APPEAL_UNDECIDED
from .models import Appeal
from .quality.appeals import NOTE_MAX_CHARS, appeal_decide

DEFAULT_ADMIN_NOTE = "Decided by admin"


class DecisionNoteForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        max_length=NOTE_MAX_CHARS,
        help_text="The worker sees it.",
    )


def _decide(
    modeladmin: AppealAdmin, request: HttpRequest, queryset: QuerySet[Appeal], *, overturn: bool
) -> TemplateResponse | None:
    """First POST: a page asking for the note. Second POST (``apply``): decide each appeal in its
    own transaction, reporting the ones refused (already decided, not enough money, …)."""
    undecided = queryset.filter(status__in=APPEAL_UNDECIDED).order_by("id")
    if "apply" in request.POST:
        form = DecisionNoteForm(request.POST)
        if form.is_valid():
            done, refused = [], []
            for appeal_id in undecided.values_list("id", flat=True):
                try:
                    appeal_decide(
                        appeal_id,
                        by_user=request.user,
                        as_admin=True,
                        overturn=overturn,
                        note=form.cleaned_data["note"],
                    )
                    done.append(appeal_id)
                except ApplicationError as exc:
                    refused.append(f"{appeal_id}: {exc.message}")
            verb = "Overturned" if overturn else "Upheld"
            if done:
                modeladmin.message_user(request, f"{verb} {len(done)} appeal(s).", messages.SUCCESS)
            if refused:
                modeladmin.message_user(request, "Not changed: " + "; ".join(refused), messages.WARNING)
            if not done and not refused:
                modeladmin.message_user(request, "No undecided appeal was selected.", messages.WARNING)
            return None
    else:
        form = DecisionNoteForm(initial={"note": DEFAULT_ADMIN_NOTE})
    title = "Overturn (pay the worker)" if overturn else "Uphold"
    return TemplateResponse(
        request,
        "admin/crowd/appeal/decide.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "explanation": (
                "Each answer becomes accepted and its worker is paid from the requester's reserve or "
                "available balance."
                if overturn
                else "The rejections stand; no money moves."
            ),
            "opts": modeladmin.model._meta,
            "appeals": list(undecided),
            "form": form,
            "action": "overturn" if overturn else "uphold",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )


@admin.register(Appeal)
class AppealAdmin(ActionsOnlyAdmin):
    list_display = [
        "id",
        "assignment",
        "worker",
        "status",
        "created_at",
        "requester_deadline",
        "decided_by_kind",
        "decided_at",
    ]
    list_filter = ["status", "decided_by_kind"]
    list_select_related = ["assignment", "worker__user"]
    search_fields = ["message", "note"]
    actions = ["overturn", "uphold"]
    fields = [
        "assignment",
        "worker",
        "message",
        "status",
        "created_at",
        "requester_deadline",
        "escalated_at",
        "decided_at",
        "decided_by",
        "decided_by_kind",
        "note",
    ]
    readonly_fields = fields

    @admin.action(description="Overturn (pay the worker)", permissions=["change"])
    def overturn(self, request: HttpRequest, queryset: QuerySet[Appeal]) -> TemplateResponse | None:
        return _decide(self, request, queryset, overturn=True)

    @admin.action(description="Uphold", permissions=["change"])
    def uphold(self, request: HttpRequest, queryset: QuerySet[Appeal]) -> TemplateResponse | None:
        return _decide(self, request, queryset, overturn=False)
