"""Sending a file's content to a binary and finishing, for `binaries create` and `binaries
upload`: the part size, the hash-first upload (send_and_finish) or the overlapped one (the
whole file hashed while its parts go), completing, waiting for verification, and signing."""

import os
from dataclasses import dataclass, field
from typing import Any

from peridio_cli import signing, ui
from peridio_cli.api import Api
from peridio_cli.errors import ApiError, Failed, Refused, Unavailable, UsageProblem
from peridio_cli.transfer import hashing, limits, upload, waiting


@dataclass
class TransferOptions:
    """How to send: the transfer flags of `binaries create` and `binaries upload`, parsed."""

    binary_part_size: int | None
    concurrency: int | None
    retries: int
    no_wait: bool
    timeout: float
    keys: list[tuple[str, str]]  # (private key path, signing key PRN)
    signers: list[tuple[Any, str]] = field(default_factory=list)  # (loaded key, PRN)
    watched: tuple[str, int, int] | None = None  # (path, size, mtime) when the work began

    @property
    def workers(self) -> int:
        return self.concurrency or limits.default_concurrency()


def prepare(client: Api, path: str | None, opts: TransferOptions) -> None:
    """Every check that can fail before the first byte: each private key loaded (decrypted)
    and matched against the public key of its --signing-key-prn; the file's size and
    modification time noted, to be checked again once its parts are sent."""
    if path is not None:
        stat = _stat(path)
        opts.watched = (path, stat.st_size, stat.st_mtime_ns)
    opts.signers = []
    for private, key_prn in opts.keys:
        key = signing.load_private_key(private)
        registered = client.call(
            "GET", f"/signing_keys/{key_prn}", what=f"getting signing key {key_prn}"
        )["signing_key"]
        if registered.get("revoked_at"):
            raise Refused(
                f"signing key {key_prn} was revoked at {registered['revoked_at']}; it takes no "
                "new signatures. Nothing was created or uploaded."
            )
        if not signing.matches(key, str(registered.get("value") or "")):
            raise UsageProblem(
                f"the private key {private} ({signing.describe(key)}) is not the pair of signing "
                f"key {key_prn} ({registered.get('name')!r}, {registered.get('algorithm')}): "
                "its public key differs. Nothing was created or uploaded; pass the private key "
                "that belongs to that PRN."
            )
        opts.signers.append((key, key_prn))


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror}.") from None


def check_unchanged(opts: TransferOptions) -> None:
    """The file still has the size and modification time it had when the work began."""
    if opts.watched is None:
        return
    path, size, mtime = opts.watched
    stat = _stat(path)
    if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
        raise Failed(
            f"{path} changed while it was being uploaded (size {size} -> {stat.st_size} bytes, "
            "or its modification time); the upload is not marked finished. Rerun the command "
            "once the file is final: parts with unchanged bytes are kept."
        )


def declared_size_problem(binary: dict[str, Any], found: hashing.Scan) -> str | None:
    declared_hash = hashing.bare_hash(binary.get("hash"))
    declared_size = binary.get("size")
    problems = []
    if declared_size is not None and int(declared_size) != found.size:
        problems.append(f"{found.size} bytes, not the declared {declared_size}")
    if declared_hash is not None and declared_hash != found.digest:
        problems.append(f"SHA-256 {found.digest}, not the declared {declared_hash}")
    if not problems:
        return None
    return f"{found.path} has " + " and ".join(problems)


def scan_for(
    client: Api, binary: dict[str, Any] | None, path: str, opts: TransferOptions
) -> tuple[hashing.Scan, dict[int, dict[str, Any]]]:
    """Hash the file with the part size this upload uses: the user's, else the one an
    interrupted upload of this binary used (so a rerun resumes it), else the default."""
    existing: dict[int, dict[str, Any]] = {}
    if binary is not None and binary["state"] == "uploadable":
        existing = upload.list_parts(client, binary["prn"])
    size = file_size(path)
    part_size = choose_part_size(opts, existing, size)
    return hashing.scan(path, part_size), existing


def choose_part_size(opts: TransferOptions, existing: dict[int, dict[str, Any]], size: int) -> int:
    """The user's part size, else the one an interrupted upload of this binary used (so a rerun
    resumes it), else the default; checked against the limits."""
    part_size = (
        opts.binary_part_size
        or limits.adopt_layout(existing, size, opts.binary_part_size)
        or limits.default_part_size(size)
    )
    limits.check_part_size(part_size, size)
    return part_size


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror}.") from None


def send_and_finish(
    client: Api,
    binary: dict[str, Any],
    found: hashing.Scan,
    existing: dict[int, dict[str, Any]],
    opts: TransferOptions,
) -> dict[str, Any]:
    """Upload what is missing, complete, wait for verification, sign."""
    prn = binary["prn"]
    if binary["state"] == "uploadable":
        missing: dict[str, Any] = {}
        if binary.get("hash") is None:
            missing["hash"] = f"sha256:{found.digest}"
        if binary.get("size") is None:
            missing["size"] = found.size
        if missing:
            binary = client.call(
                "PATCH", f"/binaries/{prn}", json=missing, what=f"declaring the content of {prn}"
            )["binary"]
        _send_parts(client, prn, found.path, upload.plans_for(found), found.size, existing, opts)
        binary = waiting.mark_hashable(client, prn)
    elif binary["state"] in ("hashable", "hashing", "signable", "signed"):
        ui.note(f"{prn} already has this content ({binary['state']}); nothing to upload.")
    if opts.no_wait:
        return binary
    if binary["state"] not in ("signable", "signed"):
        binary = waiting.wait_verified(client, binary, opts.timeout)
    if opts.keys:
        binary = sign_binary(client, binary, opts.signers, found.digest)
    return binary


def sign_binary(
    client: Api, binary: dict[str, Any], signers: list[tuple[Any, str]], digest: str
) -> dict[str, Any]:
    prn = binary["prn"]
    for key, key_prn in signers:
        live = [
            s
            for s in binary.get("signatures") or []
            if s.get("signing_key_prn") == key_prn and not s.get("revoked_at")
        ]
        if live:
            ui.note(f"{prn} is already signed with {key_prn}.")
            continue
        client.call(
            "POST",
            "/binary_signatures",
            json={
                "binary_prn": prn,
                "signing_key_prn": key_prn,
                "signature": signing.signature_b64(key, digest),
            },
            what=f"signing {prn} with {key_prn}",
        )
    return client.get_binary(prn)


def upload_overlapped(
    client: Api,
    binary: dict[str, Any],
    path: str,
    opts: TransferOptions,
    existing: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    """Upload a binary whose hash is not declared yet: each worker hashes its part before
    declaring it while one thread hashes the whole file; the hash is declared when the upload
    is marked finished. Parts already valid with the same bytes are skipped (a rerun)."""
    prn = binary["prn"]
    size = file_size(path)
    part_size = choose_part_size(opts, existing, size)
    hasher = hashing.BackgroundHash(path)
    hasher.start()
    _send_parts(
        client,
        prn,
        path,
        upload.plans_unhashed(size, part_size),
        size,
        existing,
        opts,
        tell_skipped=True,
    )
    digest = hasher.result(size)
    check_unchanged(opts)
    binary = waiting.mark_hashable(client, prn, {"hash": f"sha256:{digest}", "size": size})
    if opts.no_wait:
        return binary
    binary = waiting.wait_verified(client, binary, opts.timeout)
    if opts.keys:
        binary = sign_binary(client, binary, opts.signers, digest)
    return binary


def _send_parts(
    client: Api,
    prn: str,
    path: str,
    plans: list[upload.PartPlan],
    size: int,
    existing: dict[int, dict[str, Any]],
    opts: TransferOptions,
    *,
    tell_skipped: bool = False,
) -> None:
    """Upload the parts of the whole file that are missing, and say what was sent."""
    try:
        report = upload.Uploader(
            client,
            prn,
            path,
            plans,
            concurrency=opts.workers,
            retries=opts.retries,
            expected_binary_size=size,
            existing=existing,
            whole_file=True,
        ).run()
    except (Unavailable, ApiError) as exc:
        if (isinstance(exc, ApiError) and exc.status < 500) or "Rerun" in exc.message:
            raise
        raise Unavailable(
            f"{exc.message.rstrip('.')}. Rerun the same command to resume: parts already "
            "uploaded are kept."
        ) from None
    check_unchanged(opts)
    if report.sent:
        ui.note(
            f"uploaded {report.sent} part(s), {ui.human_bytes(report.bytes_sent)}"
            + (f", {report.retried} retried" if report.retried else "")
            + (f", {report.skipped} already there" if tell_skipped and report.skipped else "")
            + "."
        )
