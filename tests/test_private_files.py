"""Private files: everything the project writes under var/ (the database and its WAL, the secret
key, the admin password, the cache, the broker's queue, static files, stored binaries) is its
user's alone, 0600 files in 0700 folders, whatever umask it was started with; and start-up
refuses a secret other users of the machine could read."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

# Everything a running console writes under var/, made through the project's own code.
WRITE_EVERYTHING = """
import hashlib, io, json, os, uuid
from types import SimpleNamespace
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from binaries.storage import FilesystemStorage
from peridio_console.celery import app

cache.set("login-failures", 1)
app.send_task("binaries.tasks.sweep")  # a message in the filesystem broker's queue
store = FilesystemStorage(settings.BINARIES_ROOT)
data = b"firmware"
for offset in (0, None):  # a part written in place (then completed), one in a file of its own
    binary = SimpleNamespace(organization=SimpleNamespace(uuid=uuid.uuid4()), uuid=uuid.uuid4())
    part = SimpleNamespace(
        index=1, token="t", size=len(data), hash=hashlib.sha256(data).hexdigest(), offset=offset
    )
    store.receive_part(binary, part, io.BytesIO(data), len(data))
    if offset == 0:
        store.complete(binary, [part])
with connection.cursor() as cursor:  # a write, so the database's WAL and SHM exist now
    cursor.execute("CREATE TABLE touched (x)")
print(json.dumps(
    {str(p): os.stat(p).st_mode for p in [settings.VAR_DIR, *settings.VAR_DIR.rglob("*")]}
))
"""


def environment(var: Path) -> dict[str, str]:
    """The embedded defaults in `var`, whatever this run uses (PostgreSQL, Redis, S3)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DEBUG": "true",
        "VAR_DIR": str(var),
        "DJANGO_SETTINGS_MODULE": "peridio_console.settings",
    }


def manage(var: Path, *args: str) -> subprocess.CompletedProcess:
    """manage.py in a fresh process started with the usual umask (022), not this run's."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=environment(var),
        umask=0o022,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_ok(var: Path, *args: str) -> str:
    result = manage(var, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def shown(mode: int) -> str:
    return f"{stat.S_IMODE(mode):04o}"


def test_it_writes_every_file_under_var_private_to_its_user(tmp_path):
    var = tmp_path / "var"
    run_ok(var, "migrate", "--noinput")
    run_ok(var, "bootstrap")
    run_ok(var, "collectstatic", "--noinput", "--verbosity", "0")
    listing = json.loads(run_ok(var, "shell", "--no-imports", "--command", WRITE_EVERYTHING))

    paths = {Path(p): mode for p, mode in listing.items()}
    names = {p.name for p in paths}
    assert {
        "secret_key",
        "admin-password",
        "db.sqlite3",
        "db.sqlite3-wal",
        "db.sqlite3-shm",
    } <= names
    assert {"cache", "celery", "queue", "binaries", "staticfiles"} <= names
    assert any(p.suffix == ".bin" for p in paths) and any(p.suffix == ".parts" for p in paths)
    for path in var.rglob("*"):  # what is left once the processes are gone
        paths.setdefault(path, path.stat().st_mode)
    wrong = {
        str(path.relative_to(tmp_path)): shown(mode)
        for path, mode in paths.items()
        if shown(mode) != ("0700" if stat.S_ISDIR(mode) else "0600")
    }
    assert wrong == {}


def test_it_refuses_to_start_while_a_secret_is_readable_by_others(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o700)
    planted = [var / "secret_key", var / "admin-password", var / "db.sqlite3"]
    for path in planted:
        path.write_text("" if path.suffix == ".sqlite3" else "x" * 50 + "\n")
        path.chmod(0o644)

    for command in (("check",), ("migrate", "--noinput")):
        result = manage(var, *command)

        assert result.returncode == 1, result.stdout + result.stderr
        for path in planted:
            assert (
                f"{path} must be private to its user (mode 600) but is 644; "
                f"make it so with `chmod 600 {path}`."
            ) in result.stderr

    for path in planted:
        path.chmod(0o600)
    assert manage(var, "check").returncode == 0
