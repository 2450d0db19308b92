"""What `peridio binaries create` does: the record alone, or with a file: find the
version's binary for the target, create or reuse it (a binary that declares other content is
reset or redeclared; a signed one is never overwritten), then send the content and finish."""

from typing import Any

from peridio_cli import ui
from peridio_cli.api import Api
from peridio_cli.binary_send import (
    TransferOptions,
    file_size,
    scan_for,
    send_and_finish,
    upload_overlapped,
)
from peridio_cli.errors import ApiError, Refused, UsageProblem
from peridio_cli.transfer import hashing, upload


def find_existing(client: Api, version: str, target: str) -> dict[str, Any] | None:
    """The version's live binary for the target, if it has one."""
    rows = client.list_all(
        "/binaries",
        "binaries",
        params={"artifact_version_prn": version, "target": target},
        what=f"looking for an existing {target} binary of {version}",
    )
    live = [b for b in rows if b.get("target") == target and b.get("state") != "destroyed"]
    return live[0] if live else None


def create_or_reuse(
    client: Api,
    existing: dict[str, Any] | None,
    version: str,
    target: str,
    found: hashing.Scan,
    descriptive: dict[str, Any],
) -> dict[str, Any]:
    """The binary that takes this content: a new one, the existing one when it declares the
    same content, else the existing one reset or redeclared (never a signed one)."""
    if existing is None:
        body = {
            "artifact_version_prn": version,
            "target": target,
            "hash": f"sha256:{found.digest}",
            "size": found.size,
            **descriptive,
        }
        try:
            return client.call("POST", "/binaries", json=body, what="creating the binary")["binary"]
        except ApiError as exc:
            if exc.code != "target_taken":
                raise
            existing = find_existing(client, version, target)
            if existing is None:
                raise
    prn, state = existing["prn"], existing["state"]
    declared = hashing.bare_hash(existing.get("hash"))
    same = (
        declared in (None, found.digest)
        and existing.get("size") in (None, found.size)
        and (declared is not None or state == "uploadable")
    )
    if same:
        ui.note(f"reusing {prn} ({target}, {state}), which declares the same content.")
        if descriptive:
            existing = client.call(
                "PATCH", f"/binaries/{prn}", json=descriptive, what=f"updating {prn}"
            )["binary"]
        return existing
    if state == "signed":
        raise Refused(
            f"a signed binary {prn} already exists for target {target!r} of {version} with "
            f"other content ({existing.get('hash')}); a signed binary is never overwritten: "
            "destroy it first or use another version or target."
        )
    if state in ("hashable", "hashing", "signable"):
        ui.note(f"{prn} ({state}) declares other content; resetting it to uploadable.")
        client.call(
            "PATCH",
            f"/binaries/{prn}",
            json={"state": "uploadable", "reason": "replaced by peridio binaries create"},
            what=f"resetting {prn}",
        )
    else:
        ui.note(f"{prn} (uploadable) declares other content; replacing its declaration.")
    body = {"hash": f"sha256:{found.digest}", "size": found.size, **descriptive}
    return client.call("PATCH", f"/binaries/{prn}", json=body, what=f"redeclaring {prn}")["binary"]


def create_record(
    client: Api,
    version: str,
    target: str,
    hash_: str | None,
    size: int | None,
    descriptive: dict[str, Any],
) -> dict[str, Any]:
    """A binary without its content: the record, with the hash and size given."""
    body: dict[str, Any] = {"artifact_version_prn": version, "target": target}
    if hash_ is not None:
        body["hash"] = hash_
    if size is not None:
        body["size"] = size
    answer = client.call(
        "POST", "/binaries", json={**body, **descriptive}, what="creating the binary"
    )
    return answer["binary"]


def create_with_content(
    client: Api,
    version: str,
    target: str,
    content_path: str,
    *,
    hash_: str | None,
    size: int | None,
    descriptive: dict[str, Any],
    skip_upload: bool,
    opts: TransferOptions,
) -> dict[str, Any]:
    """Create the binary of a file (or reuse the one the version has for the target), then
    upload, verify and sign it unless skip_upload; rerun, it resumes."""
    existing = find_existing(client, version, target)
    if existing is None and hash_ is None and not skip_upload:
        # A new binary: create it with its size, and hash the file while the parts upload.
        length = file_size(content_path)
        if size is not None and size != length:
            raise UsageProblem(f"--size {size} is not the size of {content_path} ({length}).")
        body = {"artifact_version_prn": version, "target": target, "size": length}
        try:
            binary = client.call(
                "POST", "/binaries", json={**body, **descriptive}, what="creating the binary"
            )["binary"]
        except ApiError as exc:
            if exc.code != "target_taken":
                raise
            existing = find_existing(client, version, target)
        else:
            return upload_overlapped(client, binary, content_path, opts, {})
    found, parts = scan_for(client, existing, content_path, opts)
    if hash_ is not None and hashing.bare_hash(hash_) != found.digest:
        raise UsageProblem(f"--hash {hash_} is not the SHA-256 of {content_path} ({found.digest}).")
    if size is not None and size != found.size:
        raise UsageProblem(f"--size {size} is not the size of {content_path} ({found.size}).")
    binary = create_or_reuse(client, existing, version, target, found, descriptive)
    if existing is None or binary["prn"] != existing["prn"]:
        parts = {}  # a new binary
    elif existing["state"] != "uploadable" and binary["state"] == "uploadable":
        parts = upload.list_parts(client, binary["prn"])  # reset: its parts are gone
    if skip_upload:
        return binary
    return send_and_finish(client, binary, found, parts, opts)
