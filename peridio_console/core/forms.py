"""The console's one way from a form (or a button) to a service and back: a refusal reaches the
form on the field it names, a success becomes a flash message, and the view redirects or
renders the form again."""

from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import messages
from django.forms.utils import flatatt
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from peridio_console.core.errors import DomainError

T = TypeVar("T")


def add_domain_error(
    form: forms.Form, error: DomainError, aliases: dict[str, str] | None = None
) -> None:
    """Show a service's refusal next to the field it names (or its alias), or above the form."""
    field = (aliases or {}).get(error.field or "", error.field)
    form.add_error(field if field in form.fields else None, error.message)


def submit(
    request: HttpRequest,
    form: forms.Form,
    service: Callable[[dict[str, Any]], T],
    success: Callable[[T], str],
) -> T | None:
    """Validate `form` and call `service` with its cleaned data. On success flash
    `success(result)` and return the result (the view redirects); on a refusal put it on the
    form and return None (the view renders the form again, errors and all)."""
    if not form.is_valid():
        return None
    try:
        result = service(form.cleaned_data)
    except DomainError as exc:
        add_domain_error(form, exc)
        return None
    messages.success(request, success(result))
    return result


def act(request: HttpRequest, service: Callable[[], object], success: str) -> bool:
    """A button with no form to show again: call `service`, flash `success` or the refusal's
    sentence. True when it was done."""
    try:
        service()
    except DomainError as exc:
        messages.error(request, exc.message)
        return False
    messages.success(request, success)
    return True


CONFIRM_FIELD = "confirm"


def confirmed(request: HttpRequest, doing: str) -> bool:
    """Whether a destructive button came from its confirmation in the page (templates/console/
    _confirm.html); if not, flash that nothing changed and say how to confirm."""
    if request.POST.get(CONFIRM_FIELD) == "yes":
        return True
    messages.error(
        request,
        f"Nothing was changed: {doing} needs its confirmation (confirm=yes, sent by the "
        "confirm button that opens under the action).",
    )
    return False


class QuickSelect(forms.Select):
    """A <select> rendered in Python rather than through one template per option: the audit
    filter's list of actions cost 3 ms a page that way. The same HTML as Django's: the
    attributes it would give (id, aria-describedby, required), each option's value and label
    escaped, the chosen one selected. No option groups."""

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        widget = self.get_context(name, value, attrs)["widget"]
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (option["value"], flatatt({"selected": option["selected"]}), option["label"])
                for _, group, _ in widget["optgroups"]
                for option in group
            ),
        )
        return format_html(
            '<select name="{}"{}>{}</select>', name, flatatt(widget["attrs"]), options
        )
