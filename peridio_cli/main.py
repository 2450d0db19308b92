"""`peridio`: the command line of Peridio Console.

Exit codes: 0 success; 1 the operation failed (content mismatch, verification failed, timed
out); 2 usage (missing or empty flag, bad value); 3 the API refused (HTTP 4xx); 4 the server
could not be reached or failed (network, HTTP 5xx); 130 interrupted.
"""

import os
import sys
from typing import Any

import click

from peridio_cli import __version__
from peridio_cli.base import Group, common_options
from peridio_cli.cmd_artifacts import artifact_versions, artifacts
from peridio_cli.cmd_binaries import binaries
from peridio_cli.cmd_config import config_group
from peridio_cli.cmd_parts import binary_parts
from peridio_cli.cmd_signing import binary_signatures, signing_keys
from peridio_cli.errors import EXIT_INTERRUPTED, EXIT_USAGE, CliError


@click.group(
    "peridio",
    cls=Group,
    params=common_options(),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="peridio")
def cli(**_: Any) -> None:
    """Manage artifacts, versions, binaries and their signatures on a Peridio Console.

    Global options go before or after the command. `peridio COMMAND --help` shows each
    command's options and an example.

    \b
    Examples:
      peridio artifacts list -o table
      peridio binaries create --artifact-version-prn $VERSION_PRN --target universal \\
        --content-path firmware.bin --signing-key-pair release
      peridio binaries download --binary-prn $BINARY_PRN --file firmware.bin

    \b
    Environment:
      PERIDIO_API_KEY, PERIDIO_BASE_URL, PERIDIO_PROFILE, PERIDIO_CA_PATH,
      PERIDIO_OUTPUT (json, prn or table), PERIDIO_TIMEOUT (seconds per API call),
      PERIDIO_CONFIG_DIR (where config.json lives),
      PERIDIO_SIGNING_KEY_PASSWORD (for encrypted private keys, asked for on a terminal
      otherwise), and for `binaries create` PERIDIO_ARTIFACT_VERSION_PRN, PERIDIO_TARGET.
      NO_COLOR is honoured: peridio prints no colour.

    Exit codes: 0 done, 1 failed, 2 usage, 3 refused by the API, 4 server unreachable or
    failing, 130 interrupted.
    """


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    \b
    Examples:
      peridio completion bash > ~/.local/share/bash-completion/completions/peridio
      peridio completion zsh > "${fpath[1]}/_peridio"
      peridio completion fish > ~/.config/fish/completions/peridio.fish
    """
    from click.shell_completion import get_completion_class

    found = get_completion_class(shell)
    assert found is not None
    click.echo(found(cli, {}, "peridio", "_PERIDIO_COMPLETE").source())


for group in (
    artifacts,
    artifact_versions,
    binaries,
    binary_parts,
    binary_signatures,
    signing_keys,
    config_group,
    completion,
):
    cli.add_command(group)


def _usage_line(exc: click.UsageError) -> str:
    where = exc.ctx.command_path if exc.ctx is not None else "peridio"
    message = " ".join(exc.format_message().split())
    return f"{where}: {message} (see `{where} --help`)"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and a distinct exit code."""
    try:
        result = cli.main(args=argv, prog_name="peridio", standalone_mode=False)
    except click.UsageError as exc:
        click.echo(_usage_line(exc), err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"peridio: {' '.join(exc.format_message().split())}", err=True)
        return exc.exit_code
    except CliError as exc:
        click.echo(f"peridio: {' '.join(exc.message.split())}", err=True)
        return exc.exit_code
    except (KeyboardInterrupt, click.Abort):
        click.echo("peridio: interrupted; run the same command again to resume.", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _closed_pipe()
    except SystemExit:
        # click meets a closed stdout by swapping in a wrapper that ignores it and exiting 1.
        if type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
            return _closed_pipe()
        raise
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return _closed_pipe()
    return result if isinstance(result, int) else 0


def _closed_pipe() -> int:
    """`peridio ... | head -1`: the reader has what it wanted. Point stdout at /dev/null so
    the interpreter's last flush has nowhere to fail, and exit 0."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
