"""peridio binaries …: create (hash, upload, verify, sign), upload, list, get, update,
destroy (delete), download."""

import os
import re
from dataclasses import dataclass
from typing import Any

import click

from peridio_cli import config, signing, ui
from peridio_cli.api import Api
from peridio_cli.base import (
    Command,
    Group,
    api,
    emit,
    emit_list,
    list_options,
    option,
    read_json_option,
)
from peridio_cli.errors import ApiError, Failed, Refused, UsageProblem
from peridio_cli.transfer import download, hashing, limits, upload, waiting

STATES = ("uploadable", "hashable", "hashing", "signable", "signed", "destroyed")
UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class ByteSize(click.ParamType):
    """A byte count: 8388608, 8MiB, 8M, 512KiB, 1GiB."""

    name = "bytes"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(?:i?[bB])?\s*", str(value))
        if not match:
            self.fail(f"{value!r} is not a size such as 8388608, 8MiB or 1GiB.", param, ctx)
        return int(match.group(1)) * UNITS[match.group(2).lower()]


@click.group("binaries", cls=Group)
def binaries() -> None:
    """Binaries: the files distributed to devices, one per artifact version and target."""


# --- Options shared by create and upload ------------------------------------------------


def transfer_options(func: Any) -> Any:
    options = [
        option(
            "--binary-part-size",
            type=ByteSize(),
            help="Bytes per part (e.g. 16MiB); default: 1/64 of the file within 8-64 MiB, "
            "and at most 10,000 parts.",
        ),
        option(
            "--concurrency",
            type=click.IntRange(1, 64),
            help=f"Parts in flight at once [default: min(2 x cores, 8) = "
            f"{limits.default_concurrency()}].",
        ),
        option(
            "--retries",
            type=click.IntRange(0, 50),
            default=limits.DEFAULT_RETRIES,
            show_default=True,
            help="Retries of each failed part, with exponential backoff.",
        ),
        option(
            "--no-wait",
            is_flag=True,
            help="Return once the upload is complete, without waiting for verification.",
        ),
        option(
            "--timeout",
            type=click.FloatRange(min=0),
            default=waiting.DEFAULT_WAIT_SECONDS,
            show_default=True,
            help="Seconds to wait for the server to verify the content.",
        ),
        option(
            "--signing-key-private",
            multiple=True,
            metavar="PEM",
            help="Private key to sign with once verified (repeatable; pairs with "
            "--signing-key-prn in order).",
        ),
        option(
            "--signing-key-prn",
            multiple=True,
            metavar="PRN",
            help="The registered signing key that verifies that signature (repeatable).",
        ),
        option(
            "--signing-key-pair",
            "-s",
            multiple=True,
            metavar="NAME",
            help="A signing key pair from the config file (repeatable).",
        ),
    ]
    for decorator in reversed(options):
        func = decorator(func)
    return func


@dataclass
class TransferOptions:
    binary_part_size: int | None
    concurrency: int | None
    retries: int
    no_wait: bool
    timeout: float
    keys: list[tuple[str, str]]  # (private key path, signing key PRN)

    @classmethod
    def take(cls, kw: dict[str, Any]) -> "TransferOptions":
        privates = list(kw.pop("signing_key_private", ()) or ())
        prns = list(kw.pop("signing_key_prn", ()) or ())
        pairs = list(kw.pop("signing_key_pair", ()) or ())
        if len(privates) != len(prns):
            raise UsageProblem(
                f"give one --signing-key-prn per --signing-key-private (got {len(privates)} "
                f"private keys and {len(prns)} PRNs)."
            )
        keys = list(zip(privates, prns, strict=True))
        for name in pairs:
            pair = config.signing_key_pair(name)
            private = pair.get("signing_key_private_path")
            if not private:
                raise UsageProblem(f"signing key pair {name!r} has no signing_key_private_path.")
            keys.append((str(private), str(pair["signing_key_prn"])))
        options = cls(
            binary_part_size=kw.pop("binary_part_size", None),
            concurrency=kw.pop("concurrency", None),
            retries=kw.pop("retries", limits.DEFAULT_RETRIES),
            no_wait=bool(kw.pop("no_wait", False)),
            timeout=float(kw.pop("timeout", waiting.DEFAULT_WAIT_SECONDS)),
            keys=keys,
        )
        if options.keys and options.no_wait:
            raise UsageProblem(
                "signing needs the content verified first: drop --no-wait, or sign later with "
                "`peridio binary-signatures create`."
            )
        return options

    @property
    def workers(self) -> int:
        return self.concurrency or limits.default_concurrency()


def _declared_size_problem(binary: dict[str, Any], found: hashing.Scan) -> str | None:
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


def _scan_for(
    client: Api, binary: dict[str, Any] | None, path: str, opts: TransferOptions
) -> tuple[hashing.Scan, dict[int, dict[str, Any]]]:
    """Hash the file with the part size this upload uses: the user's, else the one an
    interrupted upload of this binary used (so a rerun resumes it), else the default."""
    existing: dict[int, dict[str, Any]] = {}
    if binary is not None and binary["state"] == "uploadable":
        existing = upload.list_parts(client, binary["prn"])
    size = _file_size(path)
    part_size = _choose_part_size(opts, existing, size)
    return hashing.scan(path, part_size), existing


def _choose_part_size(opts: TransferOptions, existing: dict[int, dict[str, Any]], size: int) -> int:
    """The user's part size, else the one an interrupted upload of this binary used (so a rerun
    resumes it), else the default; checked against the limits."""
    part_size = (
        opts.binary_part_size
        or limits.adopt_layout(existing, size, opts.binary_part_size)
        or limits.default_part_size(size)
    )
    limits.check_part_size(part_size, size)
    return part_size


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror}.") from None


def _send_and_finish(
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
        report = upload.Uploader(
            client,
            prn,
            found.path,
            upload.plans_for(found),
            concurrency=opts.workers,
            retries=opts.retries,
            expected_binary_size=found.size,
            existing=existing,
            whole_file=True,
        ).run()
        if report.sent:
            ui.note(
                f"uploaded {report.sent} part(s), {ui.human_bytes(report.bytes_sent)}"
                + (f", {report.retried} retried" if report.retried else "")
                + "."
            )
        binary = waiting.mark_hashable(client, prn)
    elif binary["state"] in ("hashable", "hashing", "signable", "signed"):
        ui.note(f"{prn} already has this content ({binary['state']}); nothing to upload.")
    if opts.no_wait:
        return binary
    if binary["state"] not in ("signable", "signed"):
        binary = waiting.wait_verified(client, binary, opts.timeout)
    if opts.keys:
        binary = sign_binary(client, binary, opts.keys, found.digest)
    return binary


def sign_binary(
    client: Api, binary: dict[str, Any], keys: list[tuple[str, str]], digest: str
) -> dict[str, Any]:
    prn = binary["prn"]
    for private, key_prn in keys:
        live = [
            s
            for s in binary.get("signatures") or []
            if s.get("signing_key_prn") == key_prn and not s.get("revoked_at")
        ]
        if live:
            ui.note(f"{prn} is already signed with {key_prn}.")
            continue
        signature = signing.signature_b64(private, digest)
        client.call(
            "POST",
            "/binary_signatures",
            json={"binary_prn": prn, "signing_key_prn": key_prn, "signature": signature},
            what=f"signing {prn} with {key_prn}",
        )
    return client.get_binary(prn)


def _upload_overlapped(
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
    size = _file_size(path)
    part_size = _choose_part_size(opts, existing, size)
    hasher = hashing.BackgroundHash(path)
    hasher.start()
    report = upload.Uploader(
        client,
        prn,
        path,
        upload.plans_unhashed(size, part_size),
        concurrency=opts.workers,
        retries=opts.retries,
        expected_binary_size=size,
        existing=existing,
        whole_file=True,
    ).run()
    if report.sent:
        ui.note(
            f"uploaded {report.sent} part(s), {ui.human_bytes(report.bytes_sent)}"
            + (f", {report.retried} retried" if report.retried else "")
            + (f", {report.skipped} already there" if report.skipped else "")
            + "."
        )
    digest = hasher.result(size)
    binary = waiting.mark_hashable(client, prn, {"hash": f"sha256:{digest}", "size": size})
    if opts.no_wait:
        return binary
    binary = waiting.wait_verified(client, binary, opts.timeout)
    if opts.keys:
        binary = sign_binary(client, binary, opts.keys, digest)
    return binary


# --- create -----------------------------------------------------------------------------


@binaries.command("create")
@option(
    "--artifact-version-prn",
    metavar="PRN",
    envvar="PERIDIO_ARTIFACT_VERSION_PRN",
    help="The version the binary belongs to [env PERIDIO_ARTIFACT_VERSION_PRN].",
)
@option(
    "--target",
    envvar="PERIDIO_TARGET",
    help="Target triplet, custom target or 'universal' [env PERIDIO_TARGET].",
)
@option("--hash", "hash_", metavar="SHA256", help="sha256:<hex> or <hex> of the content.")
@option("--size", type=click.IntRange(min=0), help="Size in bytes.")
@option(
    "--content-path",
    "--file",
    "content_path",
    type=click.Path(exists=True, dir_okay=False),
    help="The file: hashed, uploaded in parallel parts, verified, and signed if keys are given.",
)
@option("--description", allow_empty=True, help="Free text.")
@option("--custom-metadata", metavar="JSON", help="A JSON object.")
@option("--custom-metadata-path", metavar="FILE", help="A JSON object from a file.")
@option("--skip-upload", is_flag=True, help="With --content-path: create the record only (hashed).")
@transfer_options
@click.pass_context
def binaries_create(
    ctx: click.Context,
    artifact_version_prn: str | None,
    target: str | None,
    hash_: str | None,
    size: int | None,
    content_path: str | None,
    description: str | None,
    custom_metadata: str | None,
    custom_metadata_path: str | None,
    skip_upload: bool,
    **kw: Any,
) -> None:
    """Create a binary; with --content-path also upload, verify and sign it.

    Rerunning the same command resumes: a binary of the same version and target that is
    uploadable with the same hash is reused and only its missing parts are sent; a signed
    one is never overwritten.
    """
    opts = TransferOptions.take(kw)
    missing = [
        f"{flag} (or set {env})"
        for flag, env, value in (
            ("--artifact-version-prn", "PERIDIO_ARTIFACT_VERSION_PRN", artifact_version_prn),
            ("--target", "PERIDIO_TARGET", target),
        )
        if not value
    ]
    if missing:
        raise UsageProblem(f"binaries create needs {' and '.join(missing)}.")
    assert artifact_version_prn is not None and target is not None
    metadata = read_json_option(custom_metadata, custom_metadata_path, "custom-metadata")
    descriptive: dict[str, Any] = {}
    if description is not None:
        descriptive["description"] = description
    if metadata is not None:
        descriptive["custom_metadata"] = metadata

    if content_path is None:
        if hash_ is None and size is None:
            raise UsageProblem(
                "binaries create needs --content-path FILE (to upload it), or --hash "
                "(and --size) to create the record only."
            )
        if opts.keys:
            raise UsageProblem("signing needs the content: add --content-path FILE.")
        body: dict[str, Any] = {"artifact_version_prn": artifact_version_prn, "target": target}
        if hash_ is not None:
            body["hash"] = hash_
        if size is not None:
            body["size"] = size
        answer = api(ctx).call(
            "POST", "/binaries", json={**body, **descriptive}, what="creating the binary"
        )
        emit(ctx, answer["binary"], "binary")
        return

    client = api(ctx, connections=opts.workers + 2)
    existing = _find_existing(client, artifact_version_prn, target)
    if existing is None and hash_ is None and not skip_upload:
        # A new binary: create it with its size, and hash the file while the parts upload.
        file_size = _file_size(content_path)
        if size is not None and size != file_size:
            raise UsageProblem(f"--size {size} is not the size of {content_path} ({file_size}).")
        body = {"artifact_version_prn": artifact_version_prn, "target": target, "size": file_size}
        try:
            binary = client.call(
                "POST", "/binaries", json={**body, **descriptive}, what="creating the binary"
            )["binary"]
        except ApiError as exc:
            if exc.code != "target_taken":
                raise
            existing = _find_existing(client, artifact_version_prn, target)
        else:
            emit(ctx, _upload_overlapped(client, binary, content_path, opts, {}), "binary")
            return
    found, parts = _scan_for(client, existing, content_path, opts)
    if hash_ is not None and hashing.bare_hash(hash_) != found.digest:
        raise UsageProblem(f"--hash {hash_} is not the SHA-256 of {content_path} ({found.digest}).")
    if size is not None and size != found.size:
        raise UsageProblem(f"--size {size} is not the size of {content_path} ({found.size}).")
    binary = _create_or_reuse(client, existing, artifact_version_prn, target, found, descriptive)
    if existing is None or binary["prn"] != existing["prn"]:
        parts = {}  # a new binary
    elif existing["state"] != "uploadable" and binary["state"] == "uploadable":
        parts = upload.list_parts(client, binary["prn"])  # reset: its parts are gone
    if skip_upload:
        emit(ctx, binary, "binary")
        return
    emit(ctx, _send_and_finish(client, binary, found, parts, opts), "binary")


def _find_existing(client: Api, version: str, target: str) -> dict[str, Any] | None:
    rows = client.list_all(
        "/binaries",
        "binaries",
        params={"artifact_version_prn": version, "target": target},
        what=f"looking for an existing {target} binary of {version}",
    )
    live = [b for b in rows if b.get("target") == target and b.get("state") != "destroyed"]
    return live[0] if live else None


def _create_or_reuse(
    client: Api,
    existing: dict[str, Any] | None,
    version: str,
    target: str,
    found: hashing.Scan,
    descriptive: dict[str, Any],
) -> dict[str, Any]:
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
            existing = _find_existing(client, version, target)
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


# --- upload -----------------------------------------------------------------------------


@binaries.command("upload")
@option(
    "--binary-prn",
    "--prn",
    "binary_prn",
    metavar="PRN",
    allow_empty=True,
    help="The binary. Left out or empty: the one binary that declares this file's SHA-256.",
)
@option(
    "--file",
    "--content-path",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The content.",
)
@option(
    "--artifact-version-prn",
    metavar="PRN",
    envvar="PERIDIO_ARTIFACT_VERSION_PRN",
    help="Narrows the search when --binary-prn is empty [env PERIDIO_ARTIFACT_VERSION_PRN].",
)
@option("--target", envvar="PERIDIO_TARGET", help="Narrows that search too [env PERIDIO_TARGET].")
@transfer_options
@click.pass_context
def binaries_upload(
    ctx: click.Context,
    binary_prn: str | None,
    path: str,
    artifact_version_prn: str | None,
    target: str | None,
    **kw: Any,
) -> None:
    """Upload a file as a binary's content (any size: parts in parallel), complete the
    upload, and wait until the server has verified it. Rerun to resume."""
    opts = TransferOptions.take(kw)
    client = api(ctx, connections=opts.workers + 2)
    found: hashing.Scan | None = None
    if binary_prn:
        binary = client.get_binary(binary_prn)
        if binary["state"] == "uploadable" and binary.get("hash") is None:
            declared = binary.get("size")
            if declared is not None and int(declared) != _file_size(path):
                raise Failed(
                    f"{path} has {_file_size(path)} bytes, not the declared {declared}: upload "
                    f"the right file, or change the declaration with `peridio binaries update "
                    f"--prn {binary_prn} --size {_file_size(path)}`."
                )
            held = upload.list_parts(client, binary_prn)
            emit(ctx, _upload_overlapped(client, binary, path, opts, held), "binary")
            return
    else:
        found = hashing.scan(
            path, opts.binary_part_size or limits.default_part_size(_file_size(path))
        )
        binary = _find_by_hash(client, found, artifact_version_prn, target)
    if binary["state"] == "destroyed":
        raise Refused(f"binary {binary['prn']} is destroyed; create a new binary.")
    existing: dict[int, dict[str, Any]] = {}
    if found is None:
        found, existing = _scan_for(client, binary, path, opts)
    elif binary["state"] == "uploadable":
        existing = upload.list_parts(client, binary["prn"])
        adopted = limits.adopt_layout(existing, found.size, opts.binary_part_size)
        if adopted and adopted != found.part_size:
            found = hashing.scan(path, adopted)
    problem = _declared_size_problem(binary, found)
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
    emit(ctx, _send_and_finish(client, binary, found, existing, opts), "binary")


def _find_by_hash(
    client: Api, found: hashing.Scan, version: str | None, target: str | None
) -> dict[str, Any]:
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


# --- list, get, update, destroy ---------------------------------------------------------


@binaries.command("list")
@option("--artifact-version-prn", metavar="PRN", help="Only this version's binaries.")
@option("--target", help="Only this target.")
@option("--state", type=click.Choice(STATES), help="Only binaries in this state.")
@list_options
@click.pass_context
def binaries_list(ctx: click.Context, **params: Any) -> None:
    page = api(ctx).call("GET", "/binaries", params=params, what="listing binaries")
    emit_list(ctx, page, "binaries", "binary")


@binaries.command("get")
@option("--prn", metavar="PRN", required=True)
@click.pass_context
def binaries_get(ctx: click.Context, prn: str) -> None:
    """Print a binary (the object itself: prn, target, hash, size, state, ...)."""
    emit(ctx, api(ctx).get_binary(prn), "binary")


@binaries.command("update")
@option("--prn", metavar="PRN", required=True)
@option(
    "--state",
    type=click.Choice(STATES),
    help="hashable: the upload is finished; uploadable: reset (parts and content deleted); "
    "destroyed.",
)
@option("--reason", help="Why it moves; kept in its history.")
@option("--hash", "hash_", metavar="SHA256", help="Only while uploadable.")
@option("--size", type=click.IntRange(min=0), help="Only while uploadable.")
@option("--description", allow_empty=True)
@option("--custom-metadata", metavar="JSON")
@option("--custom-metadata-path", metavar="FILE")
@option("--wait", is_flag=True, help="With --state hashable: wait until verified.")
@option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=waiting.DEFAULT_WAIT_SECONDS,
    help="Seconds --wait waits.",
)
@click.pass_context
def binaries_update(
    ctx: click.Context,
    prn: str,
    state: str | None,
    reason: str | None,
    hash_: str | None,
    size: int | None,
    description: str | None,
    custom_metadata: str | None,
    custom_metadata_path: str | None,
    wait: bool,
    timeout: float,
) -> None:
    body: dict[str, Any] = {}
    for key, value in (
        ("hash", hash_),
        ("size", size),
        ("description", description),
        (
            "custom_metadata",
            read_json_option(custom_metadata, custom_metadata_path, "custom-metadata"),
        ),
        ("state", state),
        ("reason", reason),
    ):
        if value is not None:
            body[key] = value
    if not body:
        raise UsageProblem("nothing to change: give --state, --description, --hash, --size, ...")
    if reason is not None and state is None:
        raise UsageProblem("--reason goes with --state: it records why the binary moves.")
    client = api(ctx)
    binary = client.call("PATCH", f"/binaries/{prn}", json=body, what=f"updating binary {prn}")[
        "binary"
    ]
    if wait and state == "hashable":
        binary = waiting.wait_verified(client, binary, timeout)
    emit(ctx, binary, "binary")


@click.command("destroy", cls=Command)
@option("--prn", metavar="PRN", required=True)
@option("--reason", help="Why; kept in the binary's history for the audit trail.")
@click.pass_context
def binaries_destroy(ctx: click.Context, prn: str, reason: str | None) -> None:
    """Destroy a binary: its content is deleted for good; the record and history stay."""
    client = api(ctx)
    client.call(
        "DELETE", f"/binaries/{prn}", params={"reason": reason}, what=f"destroying binary {prn}"
    )
    emit(ctx, client.get_binary(prn), "binary")


binaries.add_command(binaries_destroy, "destroy")
binaries.add_command(binaries_destroy, "delete")


# --- download ---------------------------------------------------------------------------


@binaries.command("download")
@option("--prn", "--binary-prn", "prn", metavar="PRN", required=True)
@option(
    "--file",
    "dest",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write it ('-' for stdout). A partial file is resumed.",
)
@option("--expires-in", type=click.IntRange(min=1), help="Lifetime of the URL, seconds.")
@option("--retries", type=click.IntRange(0, 50), default=limits.DEFAULT_RETRIES)
@click.pass_context
def binaries_download(
    ctx: click.Context, prn: str, dest: str, expires_in: int | None, retries: int
) -> None:
    """Download a signed binary's content; resumes a partial file and checks its SHA-256."""
    client = api(ctx)
    binary = client.get_binary(prn)
    if binary["state"] != "signed":
        raise Refused(f"binary {prn} is {binary['state']}; only signed binaries can be downloaded.")
    summary = download.download(client, binary, dest, expires_in=expires_in, retries=retries)
    if dest == "-":
        return
    ui.note(f"{dest}: {summary['size']} bytes, {summary['hash']} verified.")
    emit(ctx, summary, "download")
