"""A binary's state as the console shows it: the API's state, qualified by the same rules the
API applies to signatures (signature_status) and to downloads (binaries.downloads)."""

from django import template

from binaries.models import Binary, BinarySignature, State
from binaries.signatures import signature_status

register = template.Library()


def state_text(binary: Binary) -> tuple[str, str]:
    """(CSS class, words) of the binary's badge."""
    if binary.state != State.SIGNED:
        return f"state-{binary.state}", binary.state
    if binary.integrity_failed_at is not None:
        return "state-alarm", "signed — content failed re-verification"
    status = signature_status(binary)
    if status == "revoked":
        return "state-alarm", "signed — signatures revoked"
    if status == "unsigned":
        return "state-alarm", "signed — no signature"
    return "state-signed", "signed"


@register.inclusion_tag("console/_badge.html")
def state_badge(binary: Binary) -> dict[str, str]:
    css, words = state_text(binary)
    return {"css": css, "words": words}


@register.inclusion_tag("console/_badge.html")
def signature_badge(signature: BinarySignature, binary: Binary) -> dict[str, str]:
    """valid, revoked (with its key), or kept for the record once the binary is destroyed."""
    if binary.state == State.DESTROYED:
        return {"css": "historical", "words": "historical (binary destroyed)"}
    if signature.revoked_at is not None:
        return {"css": "revoked", "words": "revoked"}
    return {"css": "valid", "words": "valid"}
