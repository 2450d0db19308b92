"""Input rules shared by the API, the console, the admin and the CLI's server side."""

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from peridio_console.core.errors import InvalidInput

TARGET_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
MAX_SIZE = 53_687_091_200_000  # 50 TB
MAX_DESCRIPTION = 256
MAX_METADATA_BYTES = 1_000_000
STANDARD_TARGETS = (
    "x86_64-linux-gnu",
    "i686-linux-gnu",
    "aarch64-linux-gnu",
    "arm-linux-gnueabihf",
    "riscv64-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "universal",
)


def clean_target(value: Any) -> str:
    if not isinstance(value, str) or not TARGET_RE.fullmatch(value):
        raise InvalidInput(
            "target must be 1-128 characters of letters, digits, '.', '_' or '-' "
            f"(e.g. arm-linux-gnueabihf, custom-soc-v1 or universal); got {value!r}.",
            field="target",
        )
    return value


def clean_hash(value: Any, field: str = "hash") -> str:
    """Accept sha256:<64 hex> or <64 hex>; return the lowercase hex."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.lower().startswith("sha256:"):
        text = text[7:]
    if not isinstance(text, str) or not HEX64_RE.fullmatch(text):
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
        raise InvalidInput(
            f"{field} must be a SHA-256 as sha256:<64 hex digits> or <64 hex digits>; "
            f"got {shown!r}.",
            field=field,
        )
    return text.lower()


def clean_id(value: Any) -> uuid.UUID | None:
    """The hosted platform's `id` on create: the UUID the new object's PRN ends with."""
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        return uuid.UUID(value.strip())
    except ValueError:
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
        raise InvalidInput(
            f"id must be a UUID such as 0b6ee3e2-1ab8-4d6f-9a4e-6a0f1c2d3e4f (the last part of "
            f"the new PRN); got {shown!r}.",
            field="id",
        ) from None


def clean_size(value: Any, field: str = "size") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise InvalidInput(
            f"{field} must be a whole number of bytes from 0 to {MAX_SIZE}; got {value!r}.",
            field=field,
        )
    return value


def clean_description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        got = f"{len(value)} characters" if isinstance(value, str) else repr(value)
        raise InvalidInput(
            f"description must be text of at most {MAX_DESCRIPTION} characters; got {got}.",
            field="description",
        )
    return value


def clean_custom_metadata(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(
            f"custom_metadata must be a JSON object; got {type(value).__name__}.",
            field="custom_metadata",
        )
    try:
        size = len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"custom_metadata must be plain JSON; {exc}.", field="custom_metadata"
        ) from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(
            f"custom_metadata must be at most {MAX_METADATA_BYTES} bytes as JSON; "
            f"got {size} bytes.",
            field="custom_metadata",
        )
    return value


def clean_name(value: Any, field: str = "name", maximum: int = 128) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > maximum:
        raise InvalidInput(
            f"{field} must be non-empty text of at most {maximum} characters; got {value!r}.",
            field=field,
        )
    return value.strip()


def to_utc(value: datetime | None) -> datetime | None:
    """A filter's date-time in UTC (no offset means UTC). PostgreSQL refuses offsets beyond
    15:59 where ISO allows 23:59, and a time near year 1 or 9999 may not exist in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None
