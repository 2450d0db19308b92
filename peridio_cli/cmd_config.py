"""peridio config …: named profiles in the config file."""

import json

import click

from peridio_cli import config
from peridio_cli.base import option
from peridio_cli.errors import UsageProblem


@click.group("config")
def config_group() -> None:
    """The config file ($PERIDIO_CONFIG_DIR/config.json or ~/.config/peridio/config.json).

    Its commands take no global options: their --api-key and --base-url are the profile's.
    """


@config_group.group("profiles")
def profiles() -> None:
    """Named sets of base URL, API key and CA bundle; pick one with --profile."""


@profiles.command("create")
@option("--name", required=True)
@option("--base-url", "url", metavar="URL", help="Server URL.")
@option("--api-key", "key", metavar="KEY", help="API key (the file is made private: 0600).")
@option("--ca-path", "ca", metavar="PEM", help="CA bundle for HTTPS.")
def profiles_create(name: str, url: str | None, key: str | None, ca: str | None) -> None:
    """Create or replace a profile."""
    data = config.load()
    known = config.profiles(data)
    entry = {k: v for k, v in (("base_url", url), ("api_key", key), ("ca_path", ca)) if v}
    known[name] = entry
    data["profiles"] = known
    path = config.save(data)
    click.echo(f"profile {name!r} saved in {path}", err=True)


@profiles.command("list")
def profiles_list() -> None:
    """Profiles and their base URLs (API keys are not shown)."""
    shown = {
        name: {k: ("…" + v[-4:] if k == "api_key" and v else v) for k, v in entry.items()}
        for name, entry in config.profiles(config.load()).items()
    }
    click.echo(json.dumps(shown, indent=2, sort_keys=True))


@profiles.command("delete")
@option("--name", required=True)
def profiles_delete(name: str) -> None:
    data = config.load()
    known = config.profiles(data)
    if name not in known:
        raise UsageProblem(f"no profile {name!r} in {config.config_path()}.")
    del known[name]
    config.save(data)
