"""Read settings from the environment; a bad value stops start-up with one clear sentence."""

import os
import secrets
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def env_str(name: str, default: str) -> str:
    """Set and not blank, or the default (`DATABASE_URL=` in a compose file means "unset")."""
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of true/false, yes/no, on/off or 1/0; got {raw!r}."
    )


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {raw!r}.") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise ImproperlyConfigured(f"{name} must be at least {minimum}{upper}; got {value}.")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (os.environ.get(name) or default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def secret_key(var_dir: Path, *, debug: bool) -> str:
    """SECRET_KEY from the environment; in development, generated once and kept in var/."""
    value = os.environ.get("SECRET_KEY", "").strip()
    if value:
        if len(value) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")
        return value
    if not debug:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`)."
        )
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process (web or worker) won the race
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def read_env_file(path: Path) -> None:
    """`NAME=value` lines of a local install's settings file (var/env, written by the first
    `make run`), applied under the environment: a variable already set wins."""
    if not path.is_file():
        return
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name.isidentifier():
            raise ImproperlyConfigured(
                f"{path} line {number} must look like NAME=value; got {raw.strip()!r}."
            )
        if name == "VAR_DIR":
            raise ImproperlyConfigured(
                f"{path} line {number} cannot set VAR_DIR: that file is read from VAR_DIR."
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if not os.environ.get(name, "").strip():  # empty counts as unset, as everywhere
            os.environ[name] = value


CACHE_SCHEMES = ("redis://", "rediss://", "file://", "locmem://")


def cache_from_url(url: str, var_dir: Path) -> dict[str, Any]:
    """CACHE_URL as Django's cache settings: Redis shared by several machines, a folder shared
    by the processes of one (the embedded default, under var/), or one process's memory."""
    if not url:
        url = "file://"
    if url.startswith(("redis://", "rediss://")):
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            # A Redis that is down fails a request in seconds instead of hanging it.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    if url.startswith("file://"):
        folder = url.removeprefix("file://") or str(var_dir / "cache")
        return {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(Path(folder).resolve()),
        }
    if url.startswith("locmem://"):
        return {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": url.removeprefix("locmem://"),
        }
    raise ImproperlyConfigured(
        f"CACHE_URL must start with {', '.join(CACHE_SCHEMES[:-1])} or {CACHE_SCHEMES[-1]}; "
        f"got {url!r}."
    )


def settings_error() -> str | None:
    """`Configuration error: <the one sentence>` when the settings do not load, else None."""
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - reading one setting imports the module
    except ImproperlyConfigured as exc:
        return f"Configuration error: {exc}"
    return None


def load_settings_or_exit() -> None:
    """Load the settings now; a bad value prints its one sentence on stderr and exits 2, without
    a traceback (manage.py, the WSGI module and gunicorn.conf.py call this first)."""
    error = settings_error()
    if error:
        print(error, file=sys.stderr)
        raise SystemExit(2)
