"""The one role check, for the API and the console alike."""

from peridio_console.accounts.models import Role, role_allows
from peridio_console.core.errors import PermissionDenied


def require_role(role: str, needed: str, *, doing: str, who: str, where: str) -> None:
    """Refuse (403) unless `role` is at least `needed`, naming who asked and where.

    `who` introduces the asker: "you are" in the console, "this API key belongs to bob," in
    the API; `where` names the organization.
    """
    if role_allows(role, needed):
        return
    above = " or admin" if needed == Role.ENGINEER else ""
    article = "an" if role[:1] in "aeiou" else "a"
    raise PermissionDenied(
        f"{doing[:1].upper()}{doing[1:]} needs the {needed}{above} role; "
        f"{who} {article} {role} in {where}."
    )
