"""`{{ size|mib }}`: sizes in MiB, as the uploader and the binary's page write them."""

from django import template

from binaries.console.binaries import mib as mib_text

register = template.Library()


@register.filter
def mib(size: int | None) -> str:
    return mib_text(size)
