"""Named profiles (and signing key pairs) in a small JSON file.

    $PERIDIO_CONFIG_DIR/config.json, else $XDG_CONFIG_HOME/peridio/config.json,
    else ~/.config/peridio/config.json

    {
      "profiles": {
        "default": {"base_url": "http://127.0.0.1:8000", "api_key": "pdo_..."},
        "prod": {"base_url": "https://console.example.com", "api_key": "pdo_...",
                 "ca_path": "/etc/ssl/ca.pem"}
      },
      "signing_key_pairs": {
        "release": {"signing_key_prn": "prn:1:...:signing_key:...",
                    "signing_key_private_path": "~/keys/release.pem"}
      }
    }

Precedence: a flag, then its environment variable, then the profile, then the default.
The profile is --profile, else PERIDIO_PROFILE, else "default" when it exists.
"""

import json
import os
from pathlib import Path
from typing import Any

from peridio_cli.errors import UsageProblem

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
PROFILE_KEYS = ("base_url", "api_key", "ca_path")


def config_dir() -> Path:
    for name in ("PERIDIO_CONFIG_DIR", "PERIDIO_CONFIG_DIRECTORY"):
        value = os.environ.get(name)
        if value:
            return Path(value).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "peridio"


def config_path() -> Path:
    return config_dir() / "config.json"


def load() -> dict[str, Any]:
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageProblem(f"cannot read the config file {path}: {exc.strerror}.") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise UsageProblem(
            f"the config file {path} is not valid JSON ({exc}); fix or remove it."
        ) from None
    if not isinstance(data, dict):
        raise UsageProblem(f"the config file {path} must hold a JSON object.")
    return data


def save(data: dict[str, Any]) -> Path:
    """Write atomically, readable by its owner only (it may hold API keys)."""
    import tempfile

    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def profiles(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = data.get("profiles") or {}
    if not isinstance(found, dict):
        raise UsageProblem(f'"profiles" in {config_path()} must be an object.')
    return found


def profile(name: str | None) -> dict[str, Any]:
    """The named profile (an error naming those that exist if it is missing), or the
    "default" profile when no name is given, or nothing."""
    data = load()
    known = profiles(data)
    if name:
        if name not in known:
            names = ", ".join(sorted(known)) or "none"
            raise UsageProblem(
                f"no profile {name!r} in {config_path()} (profiles: {names}); create it with "
                f"`peridio config profiles create --name {name} --api-key ... --base-url ...`."
            )
        chosen = known[name]
    else:
        chosen = known.get("default") or {}
    if not isinstance(chosen, dict):
        raise UsageProblem(f"profile {name or 'default'!r} in {config_path()} must be an object.")
    return chosen


def signing_key_pair(name: str) -> dict[str, str]:
    pairs = load().get("signing_key_pairs") or {}
    pair = pairs.get(name) if isinstance(pairs, dict) else None
    if not isinstance(pair, dict) or not pair.get("signing_key_prn"):
        names = ", ".join(sorted(pairs)) if isinstance(pairs, dict) and pairs else "none"
        raise UsageProblem(
            f"no signing key pair {name!r} in {config_path()} (pairs: {names}); add "
            '"signing_key_pairs": {"NAME": {"signing_key_prn": ..., '
            '"signing_key_private_path": ...}}.'
        )
    return pair
