"""PRNs: prn:1:<org-uuid> for an organization, prn:1:<org-uuid>:<type>:<uuid> for the rest."""

import uuid
from dataclasses import dataclass

TYPES = (
    "artifact",
    "artifact_version",
    "binary",
    "binary_part",
    "binary_signature",
    "signing_key",
)
EXPECTED = "prn:1:<organization-uuid> or prn:1:<organization-uuid>:<type>:<uuid>"


class MalformedPRN(ValueError):
    pass


@dataclass(frozen=True)
class PRN:
    organization: uuid.UUID
    type: str = "organization"
    id: uuid.UUID | None = None

    def __str__(self) -> str:
        if self.type == "organization":
            return f"prn:1:{self.organization}"
        return f"prn:1:{self.organization}:{self.type}:{self.id}"


def format_prn(
    organization: uuid.UUID, type_: str = "organization", id_: uuid.UUID | None = None
) -> str:
    return str(PRN(organization, type_, id_))


def _uuid(text: str, what: str, raw: str) -> uuid.UUID:
    try:
        value = uuid.UUID(text)
    except ValueError:
        raise MalformedPRN(
            f"{raw!r} is not a PRN: the {what} must be a UUID; expected {EXPECTED}."
        ) from None
    if str(value) != text.lower():
        raise MalformedPRN(f"{raw!r} is not a PRN: the {what} must be a UUID; expected {EXPECTED}.")
    return value


def parse_prn(raw: str, expected_type: str | None = None) -> PRN:
    """Parse a PRN; when expected_type is given, refuse a PRN of another type."""
    if not isinstance(raw, str):
        raise MalformedPRN(f"expected a PRN of the form {EXPECTED}.")
    parts = raw.strip().split(":")
    if len(parts) not in (3, 5) or parts[0] != "prn" or parts[1] != "1":
        raise MalformedPRN(f"{raw!r} is not a PRN; expected {EXPECTED}.")
    org = _uuid(parts[2], "organization", raw)
    if len(parts) == 3:
        prn = PRN(org)
    else:
        if parts[3] not in TYPES:
            raise MalformedPRN(
                f"{raw!r} is not a PRN: unknown type {parts[3]!r}; "
                f"expected one of {', '.join(TYPES)}."
            )
        prn = PRN(org, parts[3], _uuid(parts[4], parts[3], raw))
    if expected_type is not None and prn.type != expected_type:
        form = (
            "prn:1:<organization-uuid>"
            if expected_type == "organization"
            else f"prn:1:<organization-uuid>:{expected_type}:<uuid>"
        )
        article = "an" if expected_type[0] in "aeiou" else "a"
        raise MalformedPRN(
            f"{raw!r} is a PRN of type {prn.type}; expected {article} {expected_type} PRN ({form})."
        )
    return prn
