"""The hosted Peridio platform's own client, as the conformance tests see it.

peridio-cli 1.7.0 is built on the Rust SDK peridio-rust 1.4.0 (its Cargo.toml pins the tag).
Below, first the SDK's response structs transcribed field by field into pydantic models with
serde's semantics: unknown fields ignored, an `Option<T>` may be null or absent, anything else
is required and of its exact type (no string for a number, no null for a string), unsigned
integers are non-negative and within their width. Then `HostedApi`, which sends each call the
way the SDK's `Api::execute_full` does (same method, path, query, headers, JSON body with the
struct's field order and its null / skipped fields), and `cli_binaries_create`, the CLI's
`binaries create --content-path` flow (src/api/binaries.rs, binary_processor.rs,
binary_upload.rs, binary_signatures.rs) call for call.
"""

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

U16 = Annotated[int, Field(ge=0, le=2**16 - 1)]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
JsonMap = dict[str, Any]  # serde_json::Map<String, Value>


class Struct(BaseModel):
    """`#[derive(Deserialize)]` without `deny_unknown_fields`: extra keys are ignored, types are
    not coerced (serde_json refuses "1" for a u64 and 1 for a String)."""

    model_config = ConfigDict(extra="ignore", strict=True)


# --- src/api/mod.rs ---------------------------------------------------------------------------


class Signature(Struct):
    signature: str
    signing_key_prn: str
    keyid: str


# --- src/api/error.rs: `ApiError` is untagged; its `Generic(Value)` arm takes any JSON, but the
# platform's own shapes are these two (the CLI prints `detail`, or `field: message`). ---------


class StandardErrors(Struct):
    detail: str


class StandardApiError(Struct):
    errors: StandardErrors


class ValidationApiError(Struct):
    errors: dict[str, list[str]]


# --- src/api/artifacts.rs ---------------------------------------------------------------------


class Artifact(Struct):
    custom_metadata: JsonMap | None = None
    description: str | None = None
    inserted_at: str
    name: str
    organization_prn: str
    prn: str
    updated_at: str


class ArtifactResponse(Struct):  # Create/Get/UpdateArtifactResponse
    artifact: Artifact


class ListArtifactsResponse(Struct):
    artifacts: list[Artifact]
    next_page: str | None = None


# --- src/api/artifact_versions.rs -------------------------------------------------------------


class ArtifactVersion(Struct):
    artifact_prn: str
    custom_metadata: JsonMap | None = None
    description: str | None = None
    inserted_at: str
    organization_prn: str
    prn: str
    version: str
    updated_at: str


class ArtifactVersionResponse(Struct):  # Create/Get/UpdateArtifactVersionResponse
    artifact_version: ArtifactVersion


class ListArtifactVersionsResponse(Struct):
    artifact_versions: list[ArtifactVersion]
    next_page: str | None = None


# --- src/api/binaries.rs ----------------------------------------------------------------------

BinaryState = Literal["uploadable", "hashable", "hashing", "signable", "signed", "destroyed"]


class Binary(Struct):
    artifact_version_prn: str
    custom_metadata: JsonMap | None = None
    description: str | None = None
    hash: str | None = None
    organization_prn: str
    prn: str
    inserted_at: str
    revision: U32
    signatures: list[Signature] | None = None
    size: U64 | None = None
    state: BinaryState
    target: str
    updated_at: str


class BinaryResponse(Struct):  # Create/Get/UpdateBinaryResponse
    binary: Binary


class ListBinariesResponse(Struct):
    binaries: list[Binary]
    next_page: str | None = None


class GetBinaryDownloadUrlResponse(Struct):
    download_url: str


# --- src/api/binary_parts.rs ------------------------------------------------------------------

BinaryPartState = Literal["uploadable", "invalid_size", "invalid_hash", "valid"]


class ListBinaryPart(Struct):
    binary_prn: str | None = None
    hash: str
    index: U16
    inserted_at: str
    organization_prn: str
    prn: str
    size: U64
    state: BinaryPartState
    updated_at: str


class BinaryPart(ListBinaryPart):
    presigned_upload_url: str


class CreateBinaryPartResponse(Struct):
    binary_part: BinaryPart


class ListBinaryPartsResponse(Struct):
    binary_parts: list[ListBinaryPart]
    next_page: str | None = None


# --- src/api/binary_signatures.rs (the struct comes from signature_common.rs's macro) ----------


class BinarySignature(Struct):
    binary_prn: str
    inserted_at: str
    keyid: str
    organization_prn: str
    prn: str
    signature: str
    signing_key_prn: str
    updated_at: str


class CreateBinarySignatureResponse(Struct):
    binary_signature: BinarySignature


class ListBinarySignaturesResponse(Struct):
    binary_signatures: list[BinarySignature]
    next_page: str | None = None


# --- src/api/signing_keys.rs ------------------------------------------------------------------


class SigningKey(Struct):
    value: str | None = None
    inserted_at: str
    keyid: str
    name: str
    organization_prn: str
    prn: str
    updated_at: str


class SigningKeyResponse(Struct):  # Create/Get/UpdateSigningKeyResponse
    signing_key: SigningKey


class ListSigningKeysResponse(Struct):
    signing_keys: list[SigningKey]
    next_page: str | None = None


class Empty(Struct):
    """Delete*Response {}: only read when a DELETE answers 2xx other than 204."""


# --- The client ---------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


class SdkError(Exception):
    """What `execute_full` returns for a status outside 2xx (StructuredError or HttpError), or
    a 2xx body its struct cannot decode (JsonDeserializationFailure)."""

    def __init__(self, status: int, text: str, why: str):
        super().__init__(f"{why} ({status}): {text[:2000]}")
        self.status = status
        self.text = text
        self.why = why

    @property
    def detail(self) -> str:
        return _error_text(self.text)


def _error_text(text: str) -> str:
    """The error body as the platform's format: `errors.detail`, or `field: message` lines.
    Raises if the body is neither (the SDK would print it as raw JSON or text)."""
    body = json.loads(text)
    try:
        return StandardApiError.model_validate(body).errors.detail
    except ValidationError:
        errors = ValidationApiError.model_validate(body).errors
        return "; ".join(f"{name}: {message}" for name, ms in errors.items() for message in ms)


@dataclass
class Call:
    method: str
    path: str
    status: int
    body: Any = None
    answer: str = ""


@dataclass
class HostedApi:
    """peridio-rust's `Api`: every request carries `Authorization: Token <key>` and
    `x-api-version: <n>`; JSON bodies are `serde_json::to_vec` of the params struct."""

    base_url: str  # what PERIDIO_BASE_URL holds, e.g. http://host/v1
    api_key: str
    api_version: int = 2
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        # reqwest's defaults: `accept: */*`, no user agent, no compression asked for.
        self.http = httpx.Client(timeout=120, headers={"accept": "*/*"})
        del self.http.headers["user-agent"]
        del self.http.headers["accept-encoding"]

    def close(self) -> None:
        self.http.close()

    def execute(
        self,
        method: str,
        path: str,
        model: type[M],
        body: dict[str, Any] | None = None,
        params: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> M | None:
        url = f"{self.base_url}{path}" + (f"?{urlencode(params)}" if params else "")
        sent = {
            **(headers or {}),
            "Authorization": f"Token {self.api_key}",
            "x-api-version": str(self.api_version),
        }
        content = None
        if body is not None:
            sent["content-type"] = "application/json"
            content = json.dumps(body, separators=(",", ":")).encode()
        response = self.http.request(method, url, content=content, headers=sent)
        self.calls.append(
            Call(method, urlsplit(url).path, response.status_code, body, response.text)
        )
        if response.status_code == 204:
            return None
        if not 200 <= response.status_code <= 299:
            raise SdkError(response.status_code, response.text, "API error")
        try:
            return model.model_validate_json(response.text)
        except ValidationError as error:
            why = f"decoding failed: {error}"
            raise SdkError(response.status_code, response.text, why) from error

    # artifacts.rs
    def artifacts_create(
        self, name: str, description: str | None = None, id: str | None = None
    ) -> ArtifactResponse | None:
        body = {"custom_metadata": None, "description": description, "id": id, "name": name}
        return self.execute("POST", "/artifacts", ArtifactResponse, _skip_none(body, "id"))

    def artifacts_get(self, prn: str) -> ArtifactResponse | None:
        return self.execute("GET", f"/artifacts/{prn}", ArtifactResponse)

    def artifacts_list(self, search: str | None = None) -> ListArtifactsResponse | None:
        return self.execute("GET", "/artifacts", ListArtifactsResponse, params=_list(search))

    def artifacts_update(self, prn: str, **changes: Any) -> ArtifactResponse | None:
        body = {"prn": prn, **_present(changes, ("custom_metadata", "description", "name"))}
        return self.execute("PATCH", f"/artifacts/{prn}", ArtifactResponse, body)

    def artifacts_delete(self, prn: str) -> Empty | None:
        return self.execute("DELETE", f"/artifacts/{prn}", Empty)

    # artifact_versions.rs
    def artifact_versions_create(
        self, artifact_prn: str, version: str, description: str | None = None, id: str | None = None
    ) -> ArtifactVersionResponse | None:
        body = {
            "artifact_prn": artifact_prn,
            "custom_metadata": None,
            "id": id,
            "description": description,
            "version": version,
        }
        return self.execute(
            "POST", "/artifact_versions", ArtifactVersionResponse, _skip_none(body, "id")
        )

    def artifact_versions_get(self, prn: str) -> ArtifactVersionResponse | None:
        return self.execute("GET", f"/artifact_versions/{prn}", ArtifactVersionResponse)

    def artifact_versions_list(self, search: str | None = None):
        return self.execute(
            "GET", "/artifact_versions", ListArtifactVersionsResponse, params=_list(search)
        )

    def artifact_versions_update(self, prn: str, **changes: Any):
        body = {"prn": prn, **_present(changes, ("custom_metadata", "description"))}
        return self.execute("PATCH", f"/artifact_versions/{prn}", ArtifactVersionResponse, body)

    def artifact_versions_delete(self, prn: str) -> Empty | None:
        return self.execute("DELETE", f"/artifact_versions/{prn}", Empty)

    # binaries.rs
    def binaries_create(
        self,
        artifact_version_prn: str,
        target: str,
        hash: str,
        size: int,
        description: str | None = None,
        custom_metadata: JsonMap | None = None,
        id: str | None = None,
    ) -> BinaryResponse | None:
        body = {
            "artifact_version_prn": artifact_version_prn,
            "custom_metadata": custom_metadata,
            "description": description,
            "hash": hash,
            "id": id,
            "size": size,
            "target": target,
        }
        return self.execute("POST", "/binaries", BinaryResponse, _skip_none(body, "id"))

    def binaries_get(self, prn: str) -> BinaryResponse | None:
        return self.execute("GET", f"/binaries/{prn}", BinaryResponse)

    def binaries_list(self, search: str | None = None) -> ListBinariesResponse | None:
        return self.execute("GET", "/binaries", ListBinariesResponse, params=_list(search))

    def binaries_update(self, prn: str, **changes: Any) -> BinaryResponse | None:
        names = ("custom_metadata", "description", "state", "hash", "size")
        body = {"prn": prn, **_present(changes, names)}
        return self.execute("PATCH", f"/binaries/{prn}", BinaryResponse, body)

    def binaries_delete(self, prn: str) -> Empty | None:
        return self.execute("DELETE", f"/binaries/{prn}", Empty)

    def binaries_download_url(self, prn: str) -> GetBinaryDownloadUrlResponse | None:
        return self.execute("GET", f"/binaries/{prn}/download_url", GetBinaryDownloadUrlResponse)

    # binary_parts.rs
    def binary_parts_create(
        self, binary_prn: str, index: int, expected_binary_size: int, hash: str, size: int
    ) -> CreateBinaryPartResponse | None:
        body = {
            "binary_prn": binary_prn,
            "index": index,
            "expected_binary_size": expected_binary_size,
            "hash": hash,
            "size": size,
        }
        # The SDK's own arithmetic, kept as it is: the part's size times its position (for a
        # short last part the range names bytes past the real end).
        content_range = f"bytes {(index - 1) * size}-{size * index - 1}/{expected_binary_size}"
        return self.execute(
            "PUT",
            f"/binaries/{binary_prn}/parts/{index}",
            CreateBinaryPartResponse,
            body,
            headers={"content-range": content_range},
        )

    def binary_parts_list(self, binary_prn: str) -> ListBinaryPartsResponse | None:
        return self.execute("GET", f"/binaries/{binary_prn}/parts", ListBinaryPartsResponse)

    # binary_signatures.rs
    def binary_signatures_create(
        self,
        binary_prn: str,
        signature: str,
        signing_key_prn: str | None = None,
        signing_key_keyid: str | None = None,
    ) -> CreateBinarySignatureResponse | None:
        body = {
            "binary_prn": binary_prn,
            "signing_key_prn": signing_key_prn,
            "signature": signature,
            "signing_key_keyid": signing_key_keyid,
        }
        body = _skip_none(body, "signing_key_prn", "signing_key_keyid")
        return self.execute("POST", "/binary_signatures", CreateBinarySignatureResponse, body)

    def binary_signatures_list(self, search: str | None = None):
        return self.execute(
            "GET", "/binary_signatures", ListBinarySignaturesResponse, params=_list(search)
        )

    def binary_signatures_delete(self, prn: str) -> Empty | None:
        return self.execute("DELETE", f"/binary_signatures/{prn}", Empty)

    # signing_keys.rs
    def signing_keys_create(self, value: str, name: str) -> SigningKeyResponse | None:
        return self.execute(
            "POST", "/signing_keys", SigningKeyResponse, {"value": value, "name": name}
        )

    def signing_keys_get(self, prn: str) -> SigningKeyResponse | None:
        return self.execute("GET", f"/signing_keys/{prn}", SigningKeyResponse)

    def signing_keys_list(self, search: str | None = None) -> ListSigningKeysResponse | None:
        return self.execute("GET", "/signing_keys", ListSigningKeysResponse, params=_list(search))

    def signing_keys_update(self, prn: str, **changes: Any) -> SigningKeyResponse | None:
        body = {"prn": prn, **_present(changes, ("value", "name"))}
        return self.execute("PATCH", f"/signing_keys/{prn}", SigningKeyResponse, body)

    def signing_keys_delete(self, prn: str) -> Empty | None:
        return self.execute("DELETE", f"/signing_keys/{prn}", Empty)


def _skip_none(body: dict[str, Any], *names: str) -> dict[str, Any]:
    """`#[serde(skip_serializing_if = "Option::is_none")]` on `names`; other None go as null."""
    return {k: v for k, v in body.items() if not (k in names and v is None)}


def _present(changes: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """The optional fields of an Update*Params, in the struct's order, skipped when None."""
    assert set(changes) <= set(order), changes
    return {name: changes[name] for name in order if changes.get(name) is not None}


def _list(search: str | None) -> list[tuple[str, str]]:
    """ListParams::to_query_params: only what is set, in the order limit, order, search, page."""
    return [("search", search)] if search is not None else []


# --- The CLI (peridio-cli 1.7.0) ----------------------------------------------------------------

DEFAULT_PART_SIZE = 5242880  # binary_upload.rs: BinaryUploader's default


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()  # format!("{hash:x}")


def sign_hex_digest(private_key: Any, hex_digest: str) -> str:
    """binary_signatures.rs `sign_binary`: Ed25519 over the bytes of the lowercase hex digest,
    sent as uppercase hex (`format!("{signed_hash:X}")`)."""
    return private_key.sign(hex_digest.encode()).hex().upper()


def raw_public_key_b64(private_key: Any) -> str:
    """signing_keys.rs `create --algorithm Ed25519`: the base64 of the raw 32-byte public key."""
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode()


def upload_chunk(url: str, chunk: bytes) -> httpx.Response:
    """binary_upload.rs `upload_chunk`'s PUT, from a fresh reqwest Client (no API key)."""
    headers = {
        "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(chunk).digest()).decode(),
        "content-length": str(len(chunk)),
        "content-type": "application/octet-stream",
        "accept": "*/*",
    }
    with httpx.Client(timeout=120) as http:
        del http.headers["user-agent"]
        del http.headers["accept-encoding"]
        return http.put(url, content=chunk, headers=headers)


@dataclass
class Signer:
    """`--signing-key-private <pem> --signing-key-prn <prn>`: the key the CLI signs with."""

    private_key: Any
    signing_key_prn: str


def cli_binaries_create(
    api: HostedApi,
    artifact_version_prn: str,
    target: str,
    content: bytes,
    signer: Signer | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    concurrency: int = 1,
    polls: int = 30,
) -> Binary:
    """`peridio binaries create --artifact-version-prn .. --target .. --content-path ..
    [--signing-key-private .. --signing-key-prn ..]`: get_or_create_binary, then
    BinaryProcessor::process_binary. Parts go `concurrency` at a time (the CLI's default is
    twice the cores, at most 16). Raises SdkError or CliError where the CLI stops."""
    hash, size = sha256_hex(content), len(content)
    search = f"target:'{target}' and artifact_version_prn:'{artifact_version_prn}'"
    found = api.binaries_list(search)
    if found is not None and len(found.binaries) == 1:
        binary = found.binaries[0]
        if binary.hash != hash or binary.size != size:
            if binary.state == "signed":
                _signed_binary_message_lookups(api, binary)
                raise CliError("A signed binary already exists ... it cannot be overwritten.")
            binary = _reset_binary(api, binary, hash, size)
    else:
        binary = _some(api.binaries_create(artifact_version_prn, target, hash, size)).binary
    upload = (part_size, concurrency)
    return _process_binary(api, binary, content, signer, upload, polls)


class CliError(Exception):
    """Where the real CLI prints an error and exits non-zero (or panics)."""


def _some(response: M | None) -> M:
    if response is None:
        raise CliError("the SDK returned None where the CLI expects a body (the CLI panics)")
    return response


def _signed_binary_message_lookups(api: HostedApi, binary: Binary) -> None:
    """The CLI names the artifact and version in its message; a failed lookup only shortens it."""
    try:
        version = _some(api.artifact_versions_get(binary.artifact_version_prn)).artifact_version
        api.artifacts_get(version.artifact_prn)
    except (SdkError, CliError):
        pass


def _reset_binary(api: HostedApi, binary: Binary, hash: str, size: int) -> Binary:
    binary = _some(api.binaries_update(binary.prn, state="uploadable")).binary
    return _some(api.binaries_update(binary.prn, hash=hash, size=size)).binary


def _process_binary(
    api: HostedApi,
    binary: Binary,
    content: bytes,
    signer: Signer | None,
    upload: tuple[int, int],
    polls: int,
) -> Binary:
    """binary_processor.rs `process_binary`, by the state the binary was found or created in."""
    signed_hash = binary.hash  # binaries.rs: BinaryProcessorConfig.binary_content_hash
    if binary.state == "uploadable":
        _upload_parts(api, binary, content, *upload)
        binary = _some(api.binaries_update(binary.prn, state="hashable")).binary
        binary = _some(api.binaries_update(binary.prn, state="hashing")).binary
    elif binary.state == "hashable":
        binary = _some(api.binaries_update(binary.prn, state="hashing")).binary
    elif binary.state == "signable" and signer is not None:
        return _sign_binary(api, binary, signer, signed_hash)
    elif binary.state != "hashing":
        return binary  # signable without a key, signed ("already signed"), destroyed
    if signer is None:
        return binary
    binary = _wait_for_signable(api, binary.prn, polls)
    return _sign_binary(api, binary, signer, signed_hash)


def _upload_parts(
    api: HostedApi, binary: Binary, content: bytes, part_size: int, concurrency: int
) -> None:
    """binary_upload.rs: list the parts, then each part not yet valid (declare, PUT the bytes),
    `concurrency` at a time (the CLI's `buffer_unordered`)."""
    from concurrent.futures import ThreadPoolExecutor

    listed = _some(api.binary_parts_list(binary.prn)).binary_parts
    valid = {part.index for part in listed if part.state == "valid"}
    chunks = [content[start : start + part_size] for start in range(0, len(content), part_size)]
    todo = [(index, chunk) for index, chunk in enumerate(chunks, 1) if index not in valid]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for done in [pool.submit(_upload_part, api, binary, *job) for job in todo]:
            done.result()


def _upload_part(api: HostedApi, binary: Binary, index: int, chunk: bytes) -> None:
    part = _some(
        api.binary_parts_create(
            binary.prn,
            index,
            expected_binary_size=_some(binary.size),
            hash=sha256_hex(chunk),
            size=len(chunk),
        )
    ).binary_part
    response = upload_chunk(part.presigned_upload_url, chunk)
    api.calls.append(Call("PUT", "<presigned_upload_url>", response.status_code))
    if not 200 <= response.status_code <= 201:
        raise CliError(f"Wasn't able to upload binary part {index}: {response.text[:500]}")


def _wait_for_signable(api: HostedApi, prn: str, polls: int) -> Binary:
    """The CLI polls every 10 s, 30 times; the test's server hashes inline, so no waiting."""
    for _ in range(polls):
        binary = _some(api.binaries_get(prn)).binary
        if binary.state == "signable":
            return binary
    raise CliError("Binary not yet signable")


def _sign_binary(api: HostedApi, binary: Binary, signer: Signer, hash: str | None) -> Binary:
    """The processor signs the `hash` the server returned when the binary was found or created
    (not the local digest), and sends signing_key_prn."""
    signature = sign_hex_digest(signer.private_key, _some(hash))
    api.binary_signatures_create(binary.prn, signature, signing_key_prn=signer.signing_key_prn)
    return _some(api.binaries_update(binary.prn, state="signed")).binary
