"""Signed URL tokens for the filesystem backend's own transfer endpoints."""

from datetime import datetime
from typing import Any

from django.core import signing

from binaries.models import Binary, BinaryPart

PART_SALT = "peridio.binary-part-upload"


def sign_part_token(binary: Binary, part: BinaryPart, expires_at: datetime) -> str:
    payload = {
        "b": binary.uuid.hex,
        "i": part.index,
        "s": part.size,
        "h": part.hash,
        "t": part.token,
        "e": int(expires_at.timestamp()),
    }
    return signing.Signer(salt=PART_SALT).sign_object(payload, compress=True)


def read_part_token(token: str) -> dict[str, Any]:
    """The token's payload; raises signing.BadSignature when it was tampered with."""
    return signing.Signer(salt=PART_SALT).unsign_object(token)


DOWNLOAD_SALT = "peridio.binary-download"


def sign_download_token(binary: Binary, expires_at: datetime) -> str:
    payload = {"b": binary.uuid.hex, "h": binary.verified_hash, "e": int(expires_at.timestamp())}
    return signing.Signer(salt=DOWNLOAD_SALT).sign_object(payload)


def read_download_token(token: str) -> dict[str, Any]:
    return signing.Signer(salt=DOWNLOAD_SALT).unsign_object(token)
