"""What `peridio binaries upload` does: take the binary (by PRN, or the one that declares the
file's SHA-256), check the file against what it declares, then send the content and finish."""

from typing import Any

from peridio_cli import ui
from peridio_cli.api import Api
from peridio_cli.binary_send import (
    TransferOptions,
    declared_size_problem,
    file_size,
    scan_for,
    send_and_finish,
    upload_overlapped,
)
from peridio_cli.errors import Failed, Refused, UsageProblem
from peridio_cli.transfer import hashing, limits, upload


def find_by_hash(
    client: Api, found: hashing.Scan, version: str | None, target: str | None
) -> dict[str, Any]:
    """The one binary that declares the file's SHA-256 (an uploadable one first)."""
    ui.note(
        "--binary-prn is empty or missing (is $BINARY_PRN set?); looking for the binary that "
        "declares this file's SHA-256."
    )
    params: dict[str, Any] = {"search": f"hash:{found.digest}"}
    if version:
        params["artifact_version_prn"] = version
    if target:
        params["target"] = target
    rows = [
        b
        for b in client.list_all(
            "/binaries", "binaries", params=params, what="looking for the binary by its hash"
        )
        if b.get("state") != "destroyed"
    ]
    waiting = [b for b in rows if b["state"] == "uploadable"]
    chosen = waiting if waiting else rows
    if len(chosen) != 1:
        found_text = (
            f"{len(chosen)} binaries declare it ({', '.join(b['prn'] for b in chosen[:3])})"
            if chosen
            else "no binary declares it"
        )
        raise UsageProblem(
            f"--binary-prn is empty and {found_text}; pass the binary's PRN, e.g. "
            "BINARY_PRN=$(peridio binaries create ... --output prn)."
        )
    binary = chosen[0]
    ui.note(f"using {binary['prn']} ({binary['target']}, {binary['state']}).")
    return binary


def upload_file(
    client: Api,
    binary_prn: str | None,
    path: str,
    version: str | None,
    target: str | None,
    opts: TransferOptions,
) -> dict[str, Any]:
    """Upload a file as a binary's content (the given binary, or the one that declares the
    file's SHA-256, narrowed by version and target), complete it, wait, sign; rerun, it
    resumes."""
    found: hashing.Scan | None = None
    if binary_prn:
        binary = client.get_binary(binary_prn)
        if binary["state"] == "uploadable" and binary.get("hash") is None:
            declared = binary.get("size")
            if declared is not None and int(declared) != file_size(path):
                raise Failed(
                    f"{path} has {file_size(path)} bytes, not the declared {declared}: upload "
                    f"the right file, or change the declaration with `peridio binaries update "
                    f"--prn {binary_prn} --size {file_size(path)}`."
                )
            held = upload.list_parts(client, binary_prn)
            return upload_overlapped(client, binary, path, opts, held)
    else:
        found = hashing.scan(
            path, opts.binary_part_size or limits.default_part_size(file_size(path))
        )
        binary = find_by_hash(client, found, version, target)
    if binary["state"] == "destroyed":
        raise Refused(f"binary {binary['prn']} is destroyed; create a new binary.")
    existing: dict[int, dict[str, Any]] = {}
    if found is None:
        found, existing = scan_for(client, binary, path, opts)
    elif binary["state"] == "uploadable":
        existing = upload.list_parts(client, binary["prn"])
        adopted = limits.adopt_layout(existing, found.size, opts.binary_part_size)
        if adopted and adopted != found.part_size:
            found = hashing.scan(path, adopted)
    problem = declared_size_problem(binary, found)
    if problem:
        fix = (
            f"change the declaration with `peridio binaries update --prn {binary['prn']} "
            f"--hash sha256:{found.digest} --size {found.size}`"
            if binary["state"] == "uploadable"
            else f"reset it first with `peridio binaries update --prn {binary['prn']} "
            "--state uploadable`"
            if binary["state"] != "signed"
            else "a signed binary's content never changes"
        )
        raise Failed(f"{problem}: upload the right file, or {fix}.")
    return send_and_finish(client, binary, found, existing, opts)
