"""peridio binaries …: create (hash, upload, verify, sign), upload, list, get, update,
destroy (delete), download."""

import re
from typing import Any

import click

from peridio_cli import binary_create, binary_send, binary_upload, config, ui
from peridio_cli.base import (
    Command,
    Group,
    api,
    confirm,
    emit,
    emit_list,
    fetch_list,
    list_options,
    option,
    read_json_option,
    retries_option,
)
from peridio_cli.binary_send import TransferOptions
from peridio_cli.errors import Refused, UsageProblem
from peridio_cli.transfer import download, limits, waiting

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
        retries_option("each failed part"),
        option(
            "--no-wait",
            is_flag=True,
            help="Return once the upload is complete, without waiting for verification.",
        ),
        option(
            "--wait-timeout",
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


def take_transfer_options(kw: dict[str, Any]) -> TransferOptions:
    """The transfer options of a command, taken out of its keyword arguments."""
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
    options = TransferOptions(
        binary_part_size=kw.pop("binary_part_size", None),
        concurrency=kw.pop("concurrency", None),
        retries=kw.pop("retries", limits.DEFAULT_RETRIES),
        no_wait=bool(kw.pop("no_wait", False)),
        timeout=float(kw.pop("wait_timeout", waiting.DEFAULT_WAIT_SECONDS)),
        keys=keys,
    )
    if options.keys and options.no_wait:
        raise UsageProblem(
            "signing needs the content verified first: drop --no-wait, or sign later with "
            "`peridio binary-signatures create`."
        )
    return options


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
    one is never overwritten. Keys and files are checked before anything is created.

    \b
    Example:
      peridio binaries create --artifact-version-prn $VERSION_PRN --target universal \\
        --content-path firmware.bin --signing-key-pair release -o prn
    """
    opts = take_transfer_options(kw)
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
        binary = binary_create.create_record(
            api(ctx), artifact_version_prn, target, hash_, size, descriptive
        )
    else:
        client = api(ctx, connections=opts.workers + 2)
        binary_send.prepare(client, content_path, opts)
        binary = binary_create.create_with_content(
            client,
            artifact_version_prn,
            target,
            content_path,
            hash_=hash_,
            size=size,
            descriptive=descriptive,
            skip_upload=skip_upload,
            opts=opts,
        )
    emit(ctx, binary, "binary")


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
    """Upload a file as a binary's content, complete it, wait for verification; rerun to
    resume.

    Any size: parts go in parallel; keys and the file are checked before the first byte.

    \b
    Example:
      peridio binaries upload --binary-prn $BINARY_PRN --file firmware.bin
    """
    opts = take_transfer_options(kw)
    client = api(ctx, connections=opts.workers + 2)
    binary_send.prepare(client, path, opts)
    binary = binary_upload.upload_file(client, binary_prn, path, artifact_version_prn, target, opts)
    emit(ctx, binary, "binary")


# --- list, get, update, destroy ---------------------------------------------------------


@binaries.command("list")
@option("--artifact-version-prn", metavar="PRN", help="Only this version's binaries.")
@option("--target", help="Only this target.")
@option("--state", type=click.Choice(STATES), help="Only binaries in this state.")
@list_options
@click.pass_context
def binaries_list(ctx: click.Context, **params: Any) -> None:
    """List binaries, newest first unless --order asc.

    \b
    Example:
      peridio binaries list --artifact-version-prn $VERSION_PRN --state signed -o prn --all
    """
    page = fetch_list(ctx, "/binaries", "binaries", params, "listing binaries")
    emit_list(ctx, page, "binaries", "binary")


@binaries.command("get")
@option("--binary-prn", "--prn", "prn", metavar="PRN", required=True, help="The binary.")
@click.pass_context
def binaries_get(ctx: click.Context, prn: str) -> None:
    """Print a binary: prn, target, hash, size, state, signatures...

    \b
    Example:
      peridio binaries get --binary-prn $BINARY_PRN -o table
    """
    emit(ctx, api(ctx).get_binary(prn), "binary")


@binaries.command("update")
@option("--binary-prn", "--prn", "prn", metavar="PRN", required=True, help="The binary.")
@option(
    "--state",
    type=click.Choice(STATES),
    help="hashable: the upload is finished; uploadable: reset (parts and content deleted); "
    "destroyed.",
)
@option("--reason", help="Why it moves; kept in its history.")
@option("--hash", "hash_", metavar="SHA256", help="Only while uploadable.")
@option("--size", type=click.IntRange(min=0), help="Only while uploadable.")
@option("--description", allow_empty=True, help="Free text.")
@option("--custom-metadata", metavar="JSON", help="A JSON object.")
@option("--custom-metadata-path", metavar="FILE", help="A JSON object from a file.")
@option("--wait", is_flag=True, help="With --state hashable: wait until verified.")
@option(
    "--wait-timeout",
    type=click.FloatRange(min=0),
    default=waiting.DEFAULT_WAIT_SECONDS,
    show_default=True,
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
    wait_timeout: float,
) -> None:
    """Change a binary's description or metadata, its declaration, or its state.

    \b
    Examples:
      peridio binaries update --binary-prn $BINARY_PRN --state hashable --wait
      peridio binaries update --binary-prn $BINARY_PRN --description "RC 2"
    """
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
        binary = waiting.wait_verified(client, binary, wait_timeout)
    emit(ctx, binary, "binary")


@click.command("destroy", cls=Command)
@option("--binary-prn", "--prn", "prn", metavar="PRN", required=True, help="The binary.")
@option("--reason", help="Why; kept in the binary's history for the audit trail.")
@option(
    "--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."
)
@click.pass_context
def binaries_destroy(ctx: click.Context, prn: str, reason: str | None, yes: bool) -> None:
    """Destroy a binary (or discard an upload): its content is deleted for good.

    The record and its history stay. Asks for confirmation on a terminal; scripts pass --yes.

    \b
    Example:
      peridio binaries destroy --binary-prn $BINARY_PRN --reason "bad build" --yes
    """
    client = api(ctx)
    if not yes:
        binary = client.get_binary(prn)
        confirm(
            f"Destroy binary {prn} ({binary.get('target')}, {binary.get('state')}, "
            f"{ui.human_bytes(int(binary.get('size') or 0))})? Its content is deleted for good.",
            f"binaries destroy --binary-prn {prn}",
        )
    client.call(
        "DELETE", f"/binaries/{prn}", params={"reason": reason}, what=f"destroying binary {prn}"
    )
    emit(ctx, client.get_binary(prn), "binary")


binaries.add_command(binaries_destroy, "destroy")
binaries.add_command(binaries_destroy, "delete")


# --- download ---------------------------------------------------------------------------


@binaries.command("download")
@option("--binary-prn", "--prn", "prn", metavar="PRN", required=True, help="The binary (signed).")
@option(
    "--file",
    "dest",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write it ('-' for stdout). Written as FILE.part, renamed once its SHA-256 "
    "matches; a FILE.part left by an interrupted download is checked and resumed.",
)
@option("--force", is_flag=True, help="Replace FILE if it exists (only once verified).")
@option("--expires-in", type=click.IntRange(min=1), help="Lifetime of the URL, seconds.")
@retries_option("an interrupted transfer (each resumes where it stopped)")
@click.pass_context
def binaries_download(
    ctx: click.Context, prn: str, dest: str, force: bool, expires_in: int | None, retries: int
) -> None:
    """Download a signed binary's content, check its SHA-256, resume if interrupted.

    An existing FILE is never touched without --force.

    \b
    Example:
      peridio binaries download --binary-prn $BINARY_PRN --file firmware.bin
    """
    download.check_destination(dest, force)
    client = api(ctx)
    binary = client.get_binary(prn)
    if binary["state"] != "signed":
        raise Refused(f"binary {prn} is {binary['state']}; only signed binaries can be downloaded.")
    summary = download.download(
        client, binary, dest, expires_in=expires_in, retries=retries, force=force
    )
    if dest == "-":
        return
    ui.note(f"{dest}: {summary['size']} bytes, {summary['hash']} verified.")
    emit(ctx, summary, "download")
