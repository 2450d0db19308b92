"""peridio config …: named profiles in the config file."""

import json
import os

import click

from peridio_cli import config
from peridio_cli.base import HelpGroup, option
from peridio_cli.errors import UsageProblem


@click.group("config", cls=HelpGroup)
def config_group() -> None:
    """The config file ($PERIDIO_CONFIG_DIR/config.json or ~/.config/peridio/config.json).

    Its commands take no global options: their --api-key and --base-url are the profile's.
    """


@config_group.group("profiles", cls=HelpGroup)
def profiles() -> None:
    """Named sets of base URL, API key and CA bundle; pick one with --profile."""


@profiles.command("create")
@option("--name", required=True, help="The profile's name (--profile NAME picks it).")
@option("--base-url", "url", metavar="URL", help="Server URL.")
@option("--api-key", "key", metavar="KEY", help="API key (the file is made private: 0600).")
@option("--ca-path", "ca", metavar="PEM", help="CA bundle for HTTPS.")
def profiles_create(name: str, url: str | None, key: str | None, ca: str | None) -> None:
    """Create or replace a profile.

    \b
    Example:
      peridio config profiles create --name prod --base-url https://console.example.com \\
        --api-key $KEY
    """
    data = config.load()
    known = config.profiles(data)
    entry = {k: v for k, v in (("base_url", url), ("api_key", key), ("ca_path", ca)) if v}
    known[name] = entry
    data["profiles"] = known
    path = config.save(data)
    click.echo(f"profile {name!r} saved in {path}", err=True)


@profiles.command("list")
def profiles_list() -> None:
    """Profiles and their base URLs (API keys are not shown).

    \b
    Example:
      peridio config profiles list
    """
    shown = {
        name: {k: ("…" + v[-4:] if k == "api_key" and v else v) for k, v in entry.items()}
        for name, entry in config.profiles(config.load()).items()
    }
    click.echo(json.dumps(shown, indent=2, sort_keys=True))


@profiles.command("delete")
@option("--name", required=True, help="The profile to remove.")
def profiles_delete(name: str) -> None:
    """Remove a profile from the config file.

    \b
    Example:
      peridio config profiles delete --name old
    """
    data = config.load()
    known = config.profiles(data)
    if name not in known:
        raise UsageProblem(f"no profile {name!r} in {config.config_path()}.")
    del known[name]
    config.save(data)


@config_group.group("signing-key-pairs", cls=HelpGroup)
def signing_key_pairs() -> None:
    """Named pairs of a registered signing key's PRN and its private key file, for
    --signing-key-pair NAME."""


@signing_key_pairs.command("create")
@option("--name", required=True, help="The pair's name (--signing-key-pair NAME picks it).")
@option("--signing-key-prn", required=True, metavar="PRN", help="The registered signing key.")
@option(
    "--signing-key-private-path",
    "private",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Its private key file (it stays on this machine; only the path is saved).",
)
def pairs_create(name: str, signing_key_prn: str, private: str) -> None:
    """Create or replace a signing key pair.

    \b
    Example:
      peridio config signing-key-pairs create --name release \\
        --signing-key-prn $SIGNING_KEY_PRN --signing-key-private-path ~/keys/release.pem
    """
    data = config.load()
    pairs = data.get("signing_key_pairs") or {}
    if not isinstance(pairs, dict):
        raise UsageProblem(f'"signing_key_pairs" in {config.config_path()} must be an object.')
    pairs[name] = {
        "signing_key_prn": signing_key_prn,
        "signing_key_private_path": os.path.abspath(os.path.expanduser(private)),
    }
    data["signing_key_pairs"] = pairs
    path = config.save(data)
    click.echo(f"signing key pair {name!r} saved in {path}", err=True)


@signing_key_pairs.command("list")
def pairs_list() -> None:
    """The signing key pairs of the config file.

    \b
    Example:
      peridio config signing-key-pairs list
    """
    click.echo(json.dumps(config.load().get("signing_key_pairs") or {}, indent=2, sort_keys=True))


@signing_key_pairs.command("delete")
@option("--name", required=True, help="The pair to remove.")
def pairs_delete(name: str) -> None:
    """Remove a signing key pair from the config file (not the key file).

    \b
    Example:
      peridio config signing-key-pairs delete --name old
    """
    data = config.load()
    pairs = data.get("signing_key_pairs") or {}
    if not isinstance(pairs, dict) or name not in pairs:
        raise UsageProblem(f"no signing key pair {name!r} in {config.config_path()}.")
    del pairs[name]
    config.save(data)
