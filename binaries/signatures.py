"""Writes for signing keys and binary signatures (the checks live in signing.py)."""

from typing import Any

from django.db import transaction
from django.utils import timezone

from binaries import lifecycle, signing
from binaries.models import Binary, BinarySignature, SigningKey, State
from binaries.validation import clean_name
from peridio_console.accounts import audit
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditAction, Organization
from peridio_console.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    conflict_on_integrity_error,
)

SIGNABLE_STATES = (State.SIGNABLE, State.SIGNED)


def signing_key_create(
    *, organization: Organization, name: Any, value: Any, actor: Actor
) -> SigningKey:
    parsed = signing.parse_public_key(value)
    key = SigningKey(
        organization=organization,
        name=clean_name(name),
        algorithm=parsed.algorithm,
        public_key_pem=parsed.pem,
        keyid=parsed.keyid,
        created_by=actor.user,
    )

    def already_registered() -> Conflict:
        existing = SigningKey.objects.filter(organization=organization, keyid=parsed.keyid).first()
        return Conflict(
            f"This public key is already registered as {existing.name!r} ({existing.prn})."
            if existing
            else "This public key is already registered.",
            field="value",
            code="already_exists",
        )

    with conflict_on_integrity_error(already_registered):
        key.save()
        audit.record(
            organization=organization,
            actor=actor,
            action="signing_key.created",
            object_prn=key.prn,
            details={"name": key.name, "algorithm": key.algorithm, "keyid": key.keyid},
        )
    return key


_KEEP: Any = object()


def signing_key_rename(
    *, key: SigningKey, actor: Actor, name: Any = _KEEP, value: Any = None
) -> SigningKey:
    """Rename a key (the hosted SDK's update). Its value may be repeated but never changed: a
    signature names the key that made it, so new key material is a new key."""
    if value is not None and signing.parse_public_key(value).keyid != key.keyid:
        raise InvalidInput(
            f"value is not the public key of {key.prn}; a signing key cannot change its key "
            "(register the new key with POST /v1/signing_keys).",
            field="value",
        )
    if name is _KEEP:
        return key
    new_name = clean_name(name)
    if new_name == key.name:
        return key
    old_name, now = key.name, timezone.now()
    with transaction.atomic():
        SigningKey.objects.filter(pk=key.pk).update(name=new_name, updated_at=now)
        audit.record(
            organization=key.organization,
            actor=actor,
            action=AuditAction.SIGNING_KEY_UPDATED,
            object_prn=key.prn,
            details={"changes": {"name": [old_name, new_name]}},
        )
    key.name, key.updated_at = new_name, now
    return key


def signing_key_revoke(*, key: SigningKey, actor: Actor, reason: str = "") -> SigningKey:
    """Revoke a key: kept for history, no new signatures, its signatures stop counting.
    A reason (the admin asks staff for one) is kept in the event."""
    now = timezone.now()
    with transaction.atomic():
        if not SigningKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=now, updated_at=now
        ):
            key.refresh_from_db()
            return key  # already revoked: nothing more to do
        count = BinarySignature.objects.filter(signing_key=key, revoked_at__isnull=True).update(
            revoked_at=now, updated_at=now
        )
        audit.record(
            organization=key.organization,
            actor=actor,
            action="signing_key.revoked",
            object_prn=key.prn,
            details={
                "name": key.name,
                "keyid": key.keyid,
                "signatures_revoked": count,
                **({"reason": reason} if reason else {}),
            },
        )
    key.refresh_from_db()
    return key


def _usable_key(organization: Organization, key: SigningKey | None, keyid: Any) -> SigningKey:
    if key is None:
        if not isinstance(keyid, str) or not keyid.strip():
            raise NotFound(
                "Name the signing key with signing_key_prn or signing_key_keyid.",
                field="signing_key_prn",
            )
        key = SigningKey.objects.filter(
            organization=organization, keyid=keyid.strip().lower()
        ).first()
        if key is None:
            raise NotFound(
                f"No signing key with keyid {keyid!r} in this organization.",
                field="signing_key_keyid",
            )
    if key.revoked_at is not None:
        raise Conflict(
            f"Signing key {key.name!r} ({key.prn}) was revoked; sign with a live key.",
            field="signing_key_prn",
            code="key_revoked",
        )
    return key


def signature_create(
    *,
    binary: Binary,
    signature: Any,
    actor: Actor,
    signing_key: SigningKey | None = None,
    signing_key_keyid: Any = None,
) -> BinarySignature:
    """Verify and attach a signature; the first valid one moves the binary to signed."""
    key = _usable_key(binary.organization, signing_key, signing_key_keyid)
    binary.refresh_from_db()
    if binary.state not in SIGNABLE_STATES or not binary.verified_hash:
        raise Conflict(
            f"The binary is {binary.state}; signatures can be attached only once it is "
            "signable (its content verified) or signed.",
            code="invalid_state",
        )
    _refuse_second_signature(binary, key)
    scheme, raw = signing.verify(key, signature, binary.verified_hash)
    return _attach(binary, key, scheme, raw, actor)


def _refuse_second_signature(binary: Binary, key: SigningKey) -> None:
    existing = (
        BinarySignature.objects.select_related("binary__organization")
        .filter(binary=binary, signing_key=key)
        .first()
    )
    if existing is not None:
        raise Conflict(
            f"Signing key {key.name!r} ({key.prn}) already signed this binary "
            f"({existing.prn}); remove that signature first to sign with the key again.",
            field="signing_key_prn",
            code="already_signed",
        )


def _attach(
    binary: Binary, key: SigningKey, scheme: str, raw: bytes, actor: Actor
) -> BinarySignature:
    with transaction.atomic():
        # Re-check under the row lock: a reset or destroy may have happened meanwhile.
        current = Binary.objects.select_for_update().get(pk=binary.pk)
        if current.state not in SIGNABLE_STATES or current.verified_hash != binary.verified_hash:
            raise Conflict(
                f"The binary is {current.state}; signatures can be attached only once it is "
                "signable or signed.",
                code="invalid_state",
            )
        _refuse_second_signature(binary, key)  # the same key may have signed meanwhile
        created = BinarySignature.objects.create(
            binary=current, signing_key=key, signature=raw, scheme=scheme, created_by=actor.user
        )
        audit.record(
            organization=binary.organization,
            actor=actor,
            action="binary_signature.created",
            object_prn=created.prn,
            details={"binary_prn": binary.prn, "signing_key_prn": key.prn, "scheme": scheme},
        )
        if current.state == State.SIGNABLE:
            lifecycle.transition(
                current,
                to=State.SIGNED,
                actor=actor,
                reason=f"signature by {key.name} ({scheme})",
                details={"signature_prn": created.prn, "signing_key_prn": key.prn},
            )
    return created


def signature_delete(*, signature: BinarySignature, actor: Actor, reason: str = "") -> None:
    with transaction.atomic():
        prn, binary = signature.prn, signature.binary
        state = (
            Binary.objects.select_for_update().filter(pk=binary.pk).values_list("state", flat=True)
        )
        if state.get() == State.DESTROYED:
            raise Conflict(
                "The binary was destroyed; its signatures stay with its record for the audit "
                "trail and cannot be removed.",
                code="invalid_state",
            )
        signature.delete()
        audit.record(
            organization=binary.organization,
            actor=actor,
            action="binary_signature.deleted",
            object_prn=prn,
            details={"binary_prn": binary.prn, **({"reason": reason} if reason else {})},
        )


def signature_status(binary: Binary, signatures: list[BinarySignature] | None = None) -> str:
    """unsigned (no signature), valid (at least one live), or revoked (all revoked)."""
    signatures = list(binary.signatures.all()) if signatures is None else signatures
    if not signatures:
        return "unsigned"
    if any(s.revoked_at is None for s in signatures):
        return "valid"
    return "revoked"


def require_live_signature_for_signed(binary: Binary) -> None:
    if not binary.signatures.filter(revoked_at__isnull=True).exists():
        if binary.signatures.exists():
            raise Conflict(
                f"The binary is {binary.state} but every signature of it was revoked with its "
                "key; it needs a valid signature by a live key (POST /v1/binary_signatures).",
                field="state",
                code="signature_required",
            )
        raise Conflict(
            f"The binary is {binary.state}; it becomes signed when a valid signature is "
            "attached (POST /v1/binary_signatures), not by asking for the state.",
            field="state",
            code="signature_required",
        )
