"""Start-up checks (run by `manage.py check`, `migrate` and `serve`): a secret that other users
of the machine could read stops the console before it serves anything."""

import stat
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error


def secret_files() -> list[Path]:
    """The files that hold secrets: the secret key and admin password kept in var/ and, on
    SQLite, the database with its WAL and shared memory (session keys, API key hashes)."""
    var = Path(settings.VAR_DIR)
    files = [var / "secret_key", var / "admin-password"]
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        name = Path(str(database["NAME"]))
        files += [name, name.with_name(f"{name.name}-wal"), name.with_name(f"{name.name}-shm")]
    return files


def check_private_files(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for path in secret_files():
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            errors.append(
                Error(
                    f"{path} must be private to its user (mode 600) but is {mode:o}; "
                    f"make it so with `chmod 600 {path}`.",
                    id="peridio.E001",
                )
            )
    return errors
