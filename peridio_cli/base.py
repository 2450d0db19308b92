"""The click machinery every command shares.

- Global options (--api-key, --base-url, --profile, --ca-path, --output, --verbose) are
  accepted before the command (`peridio --output prn binaries create ...`) and after it
  (`peridio binaries create ... --output prn`, as the guide's CI example writes it).
- An option followed directly by another option, or last with nothing after it, is given an
  empty value: `--binary-prn $BINARY_PRN --file x` with BINARY_PRN unset reads as
  `--binary-prn "" --file x`, and the empty value is then refused with a message saying so
  (or, where an option allows it, handled), instead of swallowing `--file` as the PRN.
"""

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import click

from peridio_cli import config, ui
from peridio_cli.api import DEFAULT_TIMEOUT, Api
from peridio_cli.errors import Refused, UsageProblem

COMMON = ("api_key", "base_url", "profile", "ca_path", "output", "timeout", "progress", "verbose")
OUTPUTS = ("json", "prn", "table")
PROGRESS = ("bar", "plain", "none")


class Opt(click.Option):
    """An option that refuses an empty value (an unset shell variable) unless allow_empty."""

    def __init__(self, *args: Any, allow_empty: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.allow_empty = allow_empty

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        empty = value == "" or (isinstance(value, tuple | list) and "" in value)
        if empty and not self.allow_empty:
            raise click.BadParameter(
                "got an empty value; is the shell variable that should hold it set?",
                ctx=ctx,
                param=self,
            )
        return super().process_value(ctx, value)


def common_options() -> list[click.Option]:
    """The global options, each with one meaning everywhere: no command uses their letters."""
    return [
        Opt(
            ["--api-key", "-a", "api_key"],
            metavar="KEY",
            help="API key [env PERIDIO_API_KEY, or the profile's].",
        ),
        Opt(
            ["--base-url", "-b", "base_url"],
            metavar="URL",
            help=f"Server URL [env PERIDIO_BASE_URL; default {config.DEFAULT_BASE_URL}].",
        ),
        Opt(
            ["--profile", "-p", "profile"],
            metavar="NAME",
            help="Profile of the config file [env PERIDIO_PROFILE; default: 'default'].",
        ),
        Opt(
            ["--ca-path", "ca_path"],
            metavar="PEM",
            help="CA bundle to trust for HTTPS [env PERIDIO_CA_PATH].",
        ),
        Opt(
            ["--output", "-o", "output"],
            type=click.Choice(OUTPUTS),
            help="json (default for one object), prn (PRNs only), or table "
            "(default for lists on a terminal) [env PERIDIO_OUTPUT].",
        ),
        Opt(
            ["--timeout", "timeout"],
            type=click.FloatRange(min=0.1),
            metavar="SECONDS",
            help="Longest wait for an API call, retries included [env PERIDIO_TIMEOUT; "
            "default 30].",
        ),
        Opt(
            ["--progress", "progress"],
            type=click.Choice(PROGRESS),
            help="bar (on a terminal), plain (a line every 5 s: the default without a "
            "terminal) or none.",
        ),
        Opt(
            ["--verbose", "-v", "verbose"],
            is_flag=True,
            default=None,
            help="Log each request (method, path, status, time) to stderr.",
        ),
    ]


def _value_options(command: click.Command, ctx: click.Context) -> tuple[set[str], set[str]]:
    takes_value: set[str] = set()
    every: set[str] = set()
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            every.update(param.opts)
            every.update(param.secondary_opts)
            if not param.is_flag and not param.count and param.nargs == 1:
                takes_value.update(param.opts)
    return takes_value, every


def fill_empty_values(command: click.Command, ctx: click.Context, args: list[str]) -> list[str]:
    takes_value, every = _value_options(command, ctx)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        if arg == "--":
            out.extend(args[i + 1 :])
            break
        if arg in takes_value:
            following = args[i + 1] if i + 1 < len(args) else None
            if following is None or following.split("=", 1)[0] in every:
                out.append("")
            else:
                out.append(following)
                i += 1
        i += 1
    return out


class Command(click.Command):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.params.extend(common_options())

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, fill_empty_values(self, ctx, args))

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta["peridio.leaf"] = {name: ctx.params.pop(name, None) for name in COMMON}
        if _pick(ctx, "verbose", None):
            ui.set_verbose(True)
        ui.set_progress(_pick(ctx, "progress", None))
        return super().invoke(ctx)


class HelpGroup(click.Group):
    """A group that, called bare, prints its help on stdout and exits 0."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and not ctx.resilient_parsing:
            click.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)


class Group(HelpGroup):
    command_class = Command
    group_class = type  # subgroups are Groups too


def option(*names: str, **kwargs: Any) -> Any:
    """click.option with empty values refused (see Opt)."""
    return click.option(*names, cls=Opt, **kwargs)


def _pick(ctx: click.Context, name: str, env: str | None) -> Any:
    leaf = ctx.meta.get("peridio.leaf", {})
    if leaf.get(name) not in (None, ""):
        return leaf[name]
    root = ctx.find_root().params
    if root.get(name) not in (None, ""):
        return root[name]
    if env and os.environ.get(env):
        return os.environ[env]
    return None


@dataclass
class Settings:
    api_key: str | None
    base_url: str
    ca_path: str | None
    output: str | None
    timeout: float


def _timeout(ctx: click.Context) -> float:
    value = _pick(ctx, "timeout", "PERIDIO_TIMEOUT")
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds >= 0.1 or seconds == float("inf"):
        raise UsageProblem(f"PERIDIO_TIMEOUT must be a number of seconds (>= 0.1); got {value!r}.")
    return seconds


def settings(ctx: click.Context) -> Settings:
    profile = config.profile(_pick(ctx, "profile", "PERIDIO_PROFILE"))
    output = _pick(ctx, "output", "PERIDIO_OUTPUT")
    if output is not None and output not in OUTPUTS:
        raise UsageProblem(f"PERIDIO_OUTPUT must be one of {', '.join(OUTPUTS)}; got {output!r}.")
    return Settings(
        api_key=_pick(ctx, "api_key", "PERIDIO_API_KEY") or profile.get("api_key"),
        base_url=_pick(ctx, "base_url", "PERIDIO_BASE_URL")
        or profile.get("base_url")
        or config.DEFAULT_BASE_URL,
        ca_path=_pick(ctx, "ca_path", "PERIDIO_CA_PATH") or profile.get("ca_path"),
        output=output,
        timeout=_timeout(ctx),
    )


def api(ctx: click.Context, connections: int = 10) -> Api:
    """The API client for this invocation (closed when the command ends)."""
    found = ctx.meta.get("peridio.api")
    if isinstance(found, Api):
        return found
    chosen = settings(ctx)
    if not chosen.api_key:
        raise UsageProblem(
            "no API key: pass --api-key, set PERIDIO_API_KEY, or add one to a profile "
            "(`peridio config profiles create --name default --api-key ...`)."
        )
    if not chosen.base_url.startswith(("http://", "https://")):
        raise UsageProblem(
            f"the base URL must start with http:// or https://; got {chosen.base_url!r}."
        )
    client = Api(
        chosen.base_url,
        chosen.api_key,
        ca_path=chosen.ca_path,
        connections=connections,
        timeout=chosen.timeout,
    )
    ctx.meta["peridio.api"] = client
    ctx.call_on_close(client.close)
    return client


# --- Output -----------------------------------------------------------------------------

COLUMNS: dict[str, tuple[str, ...]] = {
    "artifact": ("prn", "name", "description"),
    "artifact_version": ("prn", "version", "artifact_prn"),
    "binary": ("prn", "target", "state", "size", "hash"),
    "binary_part": ("index", "state", "size", "hash"),
    "signing_key": ("prn", "name", "algorithm", "keyid", "revoked_at"),
    "binary_signature": ("prn", "binary_prn", "keyid", "scheme"),
}


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return "-"
    if column == "size" and isinstance(value, int):
        return ui.human_bytes(value)
    if column == "signatures" and isinstance(value, list):
        live = [s for s in value if isinstance(s, dict) and not s.get("revoked_at")]
        keys = ", ".join(str(s.get("keyid") or s.get("signing_key_prn") or "?") for s in live)
        return (
            f"{len(live)} valid"
            + (f" ({keys})" if keys else "")
            + (f", {len(value) - len(live)} revoked" if len(value) > len(live) else "")
        )
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def stdout_width() -> int | None:
    """The terminal's width when stdout is one (tables are cut to it), else None."""
    try:
        if sys.stdout.isatty():
            return os.get_terminal_size(sys.stdout.fileno()).columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...], width: int | None) -> str:
    cells = [[_cell(row.get(c), c) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    if width is not None:
        # Narrow the widest column, one character at a time, until the row fits.
        while sum(widths) + 2 * (len(widths) - 1) > width and max(widths) > 8:
            widths[widths.index(max(widths))] -= 1
    lines = ["  ".join(_clip(c.upper(), w).ljust(w) for c, w in zip(columns, widths, strict=True))]
    for row in cells:
        lines.append(
            "  ".join(_clip(v, w).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        )
    return "\n".join(lines)


def emit(ctx: click.Context, obj: dict[str, Any] | None, kind: str) -> None:
    """One object: JSON (the object itself, not wrapped), its PRN, or key/value rows."""
    if obj is None:
        return
    output = settings(ctx).output or "json"
    if output == "prn":
        click.echo(obj.get("prn", ""))
    elif output == "table":
        width = max((len(k) for k in obj), default=0)
        room = stdout_width()
        for key, value in obj.items():
            line = f"{key.ljust(width)}  {_cell(value, key)}"
            click.echo(_clip(line, room) if room and not ctx.meta.get("peridio.wide") else line)
    else:
        click.echo(json.dumps(obj, indent=2))


def fetch_list(
    ctx: click.Context, path: str, key: str, params: dict[str, Any], what: str
) -> dict[str, Any]:
    """A list's page, or with --all every page (following next_page) as one."""
    every = bool(params.pop("all", False))
    params.pop("wide", None)
    client = api(ctx)
    if not every:
        return dict(client.call("GET", path, params=params, what=what))
    if params.get("page"):
        raise UsageProblem("give --all or --page, not both.")
    params = {**params, "limit": params.get("limit") or 100}
    return {key: client.list_all(path, key, what=what, params=params), "next_page": None}


def emit_list(ctx: click.Context, page: dict[str, Any], key: str, kind: str) -> None:
    """A list: the API's page as JSON, one PRN a line, or a table (the default on a
    terminal). A page that is not the last says so on stderr."""
    rows = page.get(key, [])
    output = settings(ctx).output or ("table" if sys.stdout.isatty() else "json")
    if output == "prn":
        for row in rows:
            click.echo(row.get("prn", ""))
    elif output == "table":
        columns = COLUMNS.get(kind, ("prn",))
        wide = bool(ctx.meta.get("peridio.wide"))
        click.echo(_table(rows, columns, None if wide else stdout_width()))
    else:
        click.echo(json.dumps(page, indent=2))
    if page.get("next_page"):
        ui.note(
            f"showing the first {len(rows)}; there are more: add --all for every page, or "
            f"--page {page['next_page']} for the next."
        )


def confirm(question: str, command: str) -> None:
    """Ask on a terminal; without one, refuse (a script says --yes)."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageProblem(
            f"not a terminal, so nobody can confirm: run `peridio {command} --yes` to "
            "proceed. Nothing was changed."
        )
    if not click.confirm(question, default=False, err=True):
        raise Refused("not confirmed; nothing was changed.")


def read_json_option(value: str | None, path: str | None, name: str) -> Any:
    """--custom-metadata JSON or --custom-metadata-path FILE → a JSON object (or None)."""
    if value is not None and path is not None:
        raise UsageProblem(f"give --{name} or --{name}-path, not both.")
    text = value
    where = f"--{name}"
    if path is not None:
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise UsageProblem(f"cannot read --{name}-path {path}: {exc.strerror}.") from None
        where = path
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageProblem(f"{where} must be a JSON object: {exc}.") from None
    if not isinstance(data, dict):
        raise UsageProblem(f'{where} must be a JSON object such as {{"git_commit": "abc"}}.')
    return data


def retries_option(what: str) -> Any:
    """--retries, with exponential backoff between tries."""
    from peridio_cli.transfer.limits import DEFAULT_RETRIES

    return option(
        "--retries",
        type=click.IntRange(0, 50),
        default=DEFAULT_RETRIES,
        show_default=True,
        help=f"Retries of {what}, with exponential backoff.",
    )


def list_options(func: Any, search: bool = True) -> Any:
    """--limit, --order, --search, --page: the API's list parameters; --all and --wide."""
    decorators = [
        option("--limit", type=click.IntRange(1, 100), help="Rows per page (1-100; default 10)."),
        option("--order", type=click.Choice(["asc", "desc"]), help="By creation time."),
        option("--search", metavar="QUERY", help='Clauses such as "target:universal".'),
        option("--page", metavar="CURSOR", help="The next_page of a previous list."),
        option("--all", "all", is_flag=True, help="Every page, following next_page to the end."),
        option(
            "--wide",
            is_flag=True,
            callback=_remember_wide,
            expose_value=False,
            help="Tables: do not cut columns to the terminal's width.",
        ),
    ]
    if not search:
        decorators.pop(2)
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _remember_wide(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta["peridio.wide"] = True
    return value
