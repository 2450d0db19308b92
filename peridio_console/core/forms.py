"""The one way a domain error reaches a console form: on the field it names, else the form."""

from django import forms

from peridio_console.core.errors import DomainError


def add_domain_error(
    form: forms.Form, error: DomainError, aliases: dict[str, str] | None = None
) -> None:
    """Show a service's refusal next to the field it names (or its alias), or above the form."""
    field = (aliases or {}).get(error.field or "", error.field)
    form.add_error(field if field in form.fields else None, error.message)
