"""peridio binary-signatures … and peridio signing-keys …"""

from typing import Any

import click

from peridio_cli import config, signing, ui
from peridio_cli.base import Group, api, emit, emit_list, fetch_list, list_options, option
from peridio_cli.errors import UsageProblem
from peridio_cli.transfer import hashing


def list_options_plain(func: Any) -> Any:
    return list_options(func, search=False)


@click.group("binary-signatures", cls=Group)
def binary_signatures() -> None:
    """Signatures attached to binaries; the first valid one makes a binary signed."""


@binary_signatures.command("create")
@option("--binary-prn", "--prn", "binary_prn", metavar="PRN", required=True, help="The binary.")
@option("--signing-key-prn", metavar="PRN", help="The registered key that verifies it.")
@option("--signing-key-keyid", metavar="KEYID", help="Or the key's keyid.")
@option(
    "--signature",
    "-g",
    metavar="SIG",
    help="Hex or base64. Base64 split over several words (`--signature $(base64 "
    "firmware.sig)`, unquoted) is joined back.",
)
@option(
    "--signing-key-private",
    metavar="PEM",
    help="Sign here with this private key instead (Ed25519, RSA or ECDSA).",
)
@option("--signing-key-pair", "-s", metavar="NAME", help="A signing key pair of the config file.")
@option(
    "--binary-content-path",
    "--file",
    "-c",
    "content_path",
    type=click.Path(exists=True, dir_okay=False),
    help="With a private key: hash this file and sign that (default: the verified hash).",
)
@click.argument("signature_rest", nargs=-1, metavar="")
@click.pass_context
def signatures_create(
    ctx: click.Context,
    binary_prn: str,
    signing_key_prn: str | None,
    signing_key_keyid: str | None,
    signature: str | None,
    signing_key_private: str | None,
    signing_key_pair: str | None,
    content_path: str | None,
    signature_rest: tuple[str, ...],
) -> None:
    """Attach a signature to a binary (which then becomes signed).

    \b
    Examples:
      peridio binary-signatures create --binary-prn $BINARY_PRN \\
        --signing-key-prn $SIGNING_KEY_PRN --signature "$(base64 -w0 firmware.sig)"
      peridio binary-signatures create --binary-prn $BINARY_PRN --signing-key-pair release
    """
    if signature_rest and signature is None:
        raise UsageProblem(f"unexpected argument {signature_rest[0]!r}.")
    if signing_key_pair is not None:
        pair = config.signing_key_pair(signing_key_pair)
        signing_key_prn = signing_key_prn or pair["signing_key_prn"]
        signing_key_private = signing_key_private or pair.get("signing_key_private_path")
    sources = [s for s in (signature, signing_key_private) if s is not None]
    if len(sources) != 1:
        raise UsageProblem(
            "give --signature, or --signing-key-private (or --signing-key-pair) to sign here."
        )
    if not signing_key_prn and not signing_key_keyid:
        raise UsageProblem("give --signing-key-prn (or --signing-key-keyid).")
    client = api(ctx)
    if signature is not None:
        value = "".join([signature, *signature_rest]).strip()
    else:
        assert signing_key_private is not None
        key = signing.load_private_key(signing_key_private)
        value = signing.signature_b64(key, _digest(client, binary_prn, content_path))
    body: dict[str, Any] = {"binary_prn": binary_prn, "signature": value}
    if signing_key_prn:
        body["signing_key_prn"] = signing_key_prn
    else:
        body["signing_key_keyid"] = signing_key_keyid
    answer = client.call("POST", "/binary_signatures", json=body, what=f"signing {binary_prn}")
    emit(ctx, answer["binary_signature"], "binary_signature")


def _digest(client: Any, binary_prn: str, content_path: str | None) -> str:
    if content_path is not None:
        return hashing.file_digest(content_path)
    binary = client.get_binary(binary_prn)
    declared = hashing.bare_hash(binary.get("hash"))
    if not declared:
        raise UsageProblem(f"{binary_prn} has no hash yet; give --binary-content-path.")
    ui.note(f"signing the SHA-256 {binary_prn} declares (give --file to hash your copy).")
    return declared


@binary_signatures.command("list")
@option("--binary-prn", metavar="PRN", help="Only this binary's signatures.")
@list_options_plain
@click.pass_context
def signatures_list(ctx: click.Context, **params: Any) -> None:
    """List signatures, newest first unless --order asc.

    \b
    Example:
      peridio binary-signatures list --binary-prn $BINARY_PRN -o table
    """
    page = fetch_list(
        ctx, "/binary_signatures", "binary_signatures", params, "listing binary signatures"
    )
    emit_list(ctx, page, "binary_signatures", "binary_signature")


@click.command("destroy", cls=binary_signatures.command_class)
@option(
    "--binary-signature-prn", "--prn", "prn", metavar="PRN", required=True, help="The signature."
)
@click.pass_context
def signatures_destroy(ctx: click.Context, prn: str) -> None:
    """Remove a signature (a binary left without one goes back to signable).

    \b
    Example:
      peridio binary-signatures destroy --prn $SIGNATURE_PRN
    """
    api(ctx).call("DELETE", f"/binary_signatures/{prn}", what=f"removing signature {prn}")


binary_signatures.add_command(signatures_destroy, "destroy")
binary_signatures.add_command(signatures_destroy, "delete")


@click.group("signing-keys", cls=Group)
def signing_keys() -> None:
    """Public keys that verify binary signatures."""


@signing_keys.command("create")
@option("--name", required=True, help="Unique within the organization.")
@option("--value", help="The public key: PEM text, or base64 of a raw Ed25519 key.")
@option(
    "--path",
    type=click.Path(exists=True, dir_okay=False),
    help="A PEM file; for a private key, only its public half is sent.",
)
@option("--key", type=click.Path(exists=True, dir_okay=False), help="A raw public key file.")
@option("--organization-prn", metavar="PRN", help="Accepted for the hosted CLI; unused.")
@click.pass_context
def keys_create(
    ctx: click.Context,
    name: str,
    value: str | None,
    path: str | None,
    key: str | None,
    organization_prn: str | None,
) -> None:
    """Register a public key that verifies signatures.

    \b
    Example:
      SIGNING_KEY_PRN=$(peridio signing-keys create --name release --path release.pem -o prn)
    """
    given = [v for v in (value, path, key) if v is not None]
    if len(given) != 1:
        raise UsageProblem("give exactly one of --value, --path (PEM file) or --key (raw file).")
    if path is not None:
        value = signing.public_key_text(path)
    elif key is not None:
        with open(key, encoding="utf-8") as handle:
            value = handle.read().strip()
    answer = api(ctx).call(
        "POST",
        "/signing_keys",
        json={"name": name, "value": value},
        what=f"registering signing key {name!r}",
    )
    emit(ctx, answer["signing_key"], "signing_key")


@signing_keys.command("list")
@list_options_plain
@click.pass_context
def keys_list(ctx: click.Context, **params: Any) -> None:
    """List the organization's signing keys.

    \b
    Example:
      peridio signing-keys list -o table
    """
    page = fetch_list(ctx, "/signing_keys", "signing_keys", params, "listing signing keys")
    emit_list(ctx, page, "signing_keys", "signing_key")


@signing_keys.command("get")
@option("--signing-key-prn", "--prn", "prn", metavar="PRN", required=True, help="The signing key.")
@click.pass_context
def keys_get(ctx: click.Context, prn: str) -> None:
    """Print a signing key.

    \b
    Example:
      peridio signing-keys get --signing-key-prn $SIGNING_KEY_PRN
    """
    answer = api(ctx).call("GET", f"/signing_keys/{prn}", what=f"getting signing key {prn}")
    emit(ctx, answer["signing_key"], "signing_key")


@click.command("destroy", cls=signing_keys.command_class)
@option("--signing-key-prn", "--prn", "prn", metavar="PRN", required=True, help="The signing key.")
@click.pass_context
def keys_destroy(ctx: click.Context, prn: str) -> None:
    """Revoke a key (admins): it takes no new signatures and its signatures stop counting.

    \b
    Example:
      peridio signing-keys destroy --signing-key-prn $SIGNING_KEY_PRN
    """
    client = api(ctx)
    client.call("DELETE", f"/signing_keys/{prn}", what=f"revoking signing key {prn}")
    answer = client.call("GET", f"/signing_keys/{prn}", what=f"getting signing key {prn}")
    emit(ctx, answer["signing_key"], "signing_key")


signing_keys.add_command(keys_destroy, "destroy")
signing_keys.add_command(keys_destroy, "delete")
