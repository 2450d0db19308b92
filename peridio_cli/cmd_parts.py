"""peridio binary-parts …: one part of a multipart upload, by hand (the guide's split loop)."""

import os

import click

from peridio_cli.base import Group, api, emit, emit_list, option, retries_option
from peridio_cli.errors import UsageProblem
from peridio_cli.transfer import hashing, limits, upload


@click.group("binary-parts", cls=Group)
def binary_parts() -> None:
    """Parts of a binary's content (1-10,000; all but the last at least 5 MiB)."""


@binary_parts.command("create")
@option("--binary-prn", "--prn", "binary_prn", metavar="PRN", required=True, help="The binary.")
@option(
    "--part-number",
    "--index",
    "index",
    type=click.IntRange(1, limits.MAX_PARTS),
    required=True,
    help="The part's position, 1-10,000. Creating an index again replaces the part.",
)
@option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False),
    help="The part's bytes: hashed, declared and uploaded.",
)
@option("--hash", "hash_", metavar="SHA256", help="Without --file: declare only, print the URL.")
@option("--size", type=click.IntRange(min=0), help="Without --file: the part's size.")
@option(
    "--expected-binary-size",
    type=click.IntRange(min=0),
    help="The whole binary's size, when it was created without one.",
)
@option(
    "--binary-content-path",
    type=click.Path(exists=True, dir_okay=False),
    help="The whole file, to take --expected-binary-size from.",
)
@retries_option("a failed upload")
@click.pass_context
def parts_create(
    ctx: click.Context,
    binary_prn: str,
    index: int,
    path: str | None,
    hash_: str | None,
    size: int | None,
    expected_binary_size: int | None,
    binary_content_path: str | None,
    retries: int,
) -> None:
    """Declare part N and, with --file, upload its bytes (retried; skipped when the same
    bytes are already there).

    \b
    Example:
      peridio binary-parts create --binary-prn $BINARY_PRN --part-number 1 --file part_aa
    """
    if binary_content_path is not None:
        if expected_binary_size is not None:
            raise UsageProblem("give --expected-binary-size or --binary-content-path, not both.")
        expected_binary_size = os.path.getsize(binary_content_path)
    client = api(ctx)
    if path is None:
        if hash_ is None or size is None:
            raise UsageProblem(
                "binary-parts create needs --file PART, or --hash and --size to declare it only."
            )
        part = upload.declare_part(client, binary_prn, index, hash_, size, expected_binary_size)
        emit(ctx, part, "binary_part")
        return
    length = os.path.getsize(path)
    part_hash = hashing.file_digest(path)
    if hash_ is not None and hashing.bare_hash(hash_) != part_hash:
        raise UsageProblem(f"--hash {hash_} is not the SHA-256 of {path} ({part_hash}).")
    if size is not None and size != length:
        raise UsageProblem(f"--size {size} is not the size of {path} ({length}).")
    part = upload.send_part(
        client,
        binary_prn,
        index,
        path,
        length,
        part_hash,
        retries=retries,
        expected_binary_size=expected_binary_size,
    )
    emit(ctx, part, "binary_part")


@binary_parts.command("list")
@option("--binary-prn", "--prn", "binary_prn", metavar="PRN", required=True, help="The binary.")
@click.pass_context
def parts_list(ctx: click.Context, binary_prn: str) -> None:
    """List a binary's parts: index, state, size, hash.

    \b
    Example:
      peridio binary-parts list --binary-prn $BINARY_PRN -o table
    """
    page = api(ctx).call(
        "GET", f"/binaries/{binary_prn}/parts", what=f"listing the parts of {binary_prn}"
    )
    emit_list(ctx, page, "binary_parts", "binary_part")
