"""Signing keys and binary signatures in the API."""

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status

from binaries import selectors, signatures
from binaries.api.auth import api_context, require_role, writer
from binaries.api.schemas import (
    ERRORS,
    BinarySignatureEnvelope,
    BinarySignatureList,
    ListParams,
    SigningKeyEnvelope,
    SigningKeyList,
    SigningKeyUpdateIn,
    fields_set,
    list_body,
)
from binaries.models import BinarySignature, SigningKey
from binaries.serializers import BinarySignatureOut, SigningKeyOut
from peridio_console.accounts.models import Role
from peridio_console.core.errors import NotFound

signing_keys = Router(tags=["signing keys"])
binary_signatures = Router(tags=["binary signatures"])


class SigningKeyIn(Schema):
    name: str
    value: str


class SignatureIn(Schema):
    binary_prn: str
    signature: str
    signing_key_prn: str | None = None
    signing_key_keyid: str | None = None


class SignatureListParams(ListParams):
    binary_prn: str | None = None


def _key(request: HttpRequest, prn: str, field: str = "prn") -> SigningKey:
    organization = api_context(request).organization
    uid = selectors.parse_scoped_prn(organization, prn, "signing_key", field)
    key = (
        SigningKey.objects.select_related("organization")
        .filter(organization=organization, uuid=uid)
        .first()
    )
    if key is None:
        raise NotFound(f"No signing key {prn} in this organization.", field=field)
    return key


@signing_keys.post("", response={201: SigningKeyEnvelope, **ERRORS})
def create_signing_key(request: HttpRequest, payload: SigningKeyIn) -> Status[dict]:
    """Register a public key (PEM, or base64 of a raw Ed25519 key). Never send a private key."""
    context = writer(request, "registering signing keys")
    key = signatures.signing_key_create(
        organization=context.organization,
        name=payload.name,
        value=payload.value,
        actor=context.actor,
    )
    return Status(201, {"signing_key": SigningKeyOut.from_model(key)})


@signing_keys.get("", response={200: SigningKeyList, **ERRORS})
def list_signing_keys(request: HttpRequest, params: Query[ListParams]) -> dict:
    """Oldest first unless order=desc. Search keys: name, keyid, prn, created_at, inserted_at,
    updated_at."""
    organization = api_context(request).organization
    queryset = selectors.signing_key_list(organization, search=params.search)
    return list_body("signing_keys", queryset, params, SigningKeyOut.from_model)


@signing_keys.get("/{prn}", response={200: SigningKeyEnvelope, **ERRORS})
def get_signing_key(request: HttpRequest, prn: str) -> dict:
    return {"signing_key": SigningKeyOut.from_model(_key(request, prn))}


@signing_keys.patch("/{prn}", response={200: SigningKeyEnvelope, **ERRORS})
def update_signing_key(request: HttpRequest, prn: str, payload: SigningKeyUpdateIn) -> dict:
    """Rename a key. `value` may repeat the key's own public key; a key never changes."""
    context = writer(request, "renaming signing keys")
    key = signatures.signing_key_rename(
        key=_key(request, prn), actor=context.actor, **fields_set(payload, prn)
    )
    return {"signing_key": SigningKeyOut.from_model(key)}


@signing_keys.delete("/{prn}", response={204: None, **ERRORS})
def revoke_signing_key(request: HttpRequest, prn: str) -> Status[None]:
    """Revoke: the key stays for history, takes no new signatures, and its signatures stop
    counting (binaries signed only by it report signature_status "revoked")."""
    context = api_context(request)
    require_role(context, Role.ADMIN, "revoking signing keys")
    signatures.signing_key_revoke(key=_key(request, prn), actor=context.actor)
    return Status(204, None)


def _signature(request: HttpRequest, prn: str) -> BinarySignature:
    organization = api_context(request).organization
    uid = selectors.parse_scoped_prn(organization, prn, "binary_signature")
    found = (
        BinarySignature.objects.select_related("binary__organization", "signing_key__organization")
        .filter(binary__organization=organization, uuid=uid)
        .first()
    )
    if found is None:
        raise NotFound(f"No binary signature {prn} in this organization.", field="prn")
    return found


@binary_signatures.post("", response={201: BinarySignatureEnvelope, **ERRORS})
def create_binary_signature(request: HttpRequest, payload: SignatureIn) -> Status[dict]:
    """Attach a signature (hex or base64) made with `signing_key_prn` or `signing_key_keyid`.
    The server verifies it against the binary's verified SHA-256; the first valid signature
    moves a signable binary to signed."""
    context = writer(request, "signing binaries")
    binary = selectors.get_binary(context.organization, payload.binary_prn, "binary_prn")
    key = (
        _key(request, payload.signing_key_prn, "signing_key_prn")
        if payload.signing_key_prn
        else None
    )
    created = signatures.signature_create(
        binary=binary,
        signature=payload.signature,
        actor=context.actor,
        signing_key=key,
        signing_key_keyid=payload.signing_key_keyid,
    )
    return Status(201, {"binary_signature": BinarySignatureOut.from_model(created)})


@binary_signatures.get("", response={200: BinarySignatureList, **ERRORS})
def list_binary_signatures(request: HttpRequest, params: Query[SignatureListParams]) -> dict:
    """Oldest first unless order=desc. Search keys: binary_prn, signing_key_prn,
    signature.signing_key.keyid (or keyid), prn, created_at, inserted_at, updated_at."""
    organization = api_context(request).organization
    binary = None
    if params.binary_prn:
        binary = selectors.get_binary(organization, params.binary_prn, "binary_prn")
    queryset = selectors.binary_signature_list(organization, binary=binary, search=params.search)
    return list_body("binary_signatures", queryset, params, BinarySignatureOut.from_model)


@binary_signatures.get("/{prn}", response={200: BinarySignatureEnvelope, **ERRORS})
def get_binary_signature(request: HttpRequest, prn: str) -> dict:
    return {"binary_signature": BinarySignatureOut.from_model(_signature(request, prn))}


@binary_signatures.delete("/{prn}", response={204: None, **ERRORS})
def delete_binary_signature(request: HttpRequest, prn: str) -> Status[None]:
    context = writer(request, "removing signatures")
    signatures.signature_delete(signature=_signature(request, prn), actor=context.actor)
    return Status(204, None)
