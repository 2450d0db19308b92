"""The disk fills up: a part upload answers 507 in the API's error shape and leaves the part not
valid; another storage failure answers 503; a database write that fails for a full disk says so
(507) in the API and the console; everything works again once space is freed."""

import errno
import os
import subprocess
from typing import Any

import pytest
from django.db import OperationalError, connection

from binaries import moves, storage, uploads
from binaries.models import Binary, BinaryPart, PartState, State
from binaries.storage import filesystem
from peridio_console.accounts.actors import Actor
from tests.console_helpers import logged_in, verified_binary
from tests.upload_helpers import MiB, declare, new_binary, random_bytes

pytestmark = pytest.mark.django_db

DISK_FULL_MESSAGE = (
    "The server's disk is full: part 1 was not stored. Upload it again once space has been freed."
)


@pytest.fixture
def filesystem_storage(settings, tmp_path):
    settings.STORAGE_BACKEND = "filesystem"
    settings.BINARIES_ROOT = tmp_path / "binaries"
    return storage.get()


def put(client, declared: uploads.DeclaredPart, body: bytes) -> Any:
    path = declared.upload_url.removeprefix("http://testserver")
    return client.put(path, data=body, content_type="application/octet-stream")


def error_of(response: Any) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), response.content
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def failing_writes(monkeypatch, code: int) -> None:
    def pwrite(fd: int, data: bytes, offset: int) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(filesystem.os, "pwrite", pwrite)


def part_of(declared: uploads.DeclaredPart) -> BinaryPart:
    return BinaryPart.objects.get(pk=declared.part.pk)


def assert_completes(binary: Binary, actor: Actor, data: bytes) -> None:
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.HASHABLE
    with storage.get().open(binary) as stored:
        assert stored.read() == data


# --- The disk under BINARIES_ROOT -------------------------------------------------------------


def test_it_answers_507_when_the_disk_is_full_during_a_part_upload(
    client, filesystem_storage, version, actor, monkeypatch
):
    data = random_bytes(3000)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, data)

    with monkeypatch.context() as patch:
        failing_writes(patch, errno.ENOSPC)
        response = put(client, declared, data)

    assert response.status_code == 507
    assert error_of(response) == {
        "code": "insufficient_storage",
        "message": DISK_FULL_MESSAGE,
        "field": None,
    }
    part = part_of(declared)
    assert (part.state, part.last_error) == (PartState.UPLOADABLE, DISK_FULL_MESSAGE)
    # Space is freed: the client sends the part again and the upload completes.
    assert put(client, declared, data).status_code == 200
    assert_completes(binary, actor, data)


def test_it_records_a_valid_part_as_not_valid_when_sending_it_again_fills_the_disk(
    client, filesystem_storage, version, actor, monkeypatch
):
    data = random_bytes(3000)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, data)
    assert put(client, declared, data).status_code == 200
    assert part_of(declared).state == PartState.VALID

    failing_writes(monkeypatch, errno.ENOSPC)
    response = put(client, declared, data)

    assert response.status_code == 507
    assert part_of(declared).state == PartState.UPLOADABLE  # its bytes may be half-written


def test_it_answers_503_naming_the_cause_of_another_storage_failure(
    client, filesystem_storage, version, actor, monkeypatch
):
    data = random_bytes(3000)
    declared = declare(new_binary(version, actor, data), 1, data)
    failing_writes(monkeypatch, errno.EIO)

    response = put(client, declared, data)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert error_of(response) == {
        "code": "storage_unavailable",
        "message": "The server could not store part 1 (Input/output error); upload it again.",
        "field": None,
    }
    assert part_of(declared).state == PartState.UPLOADABLE


def test_it_answers_503_naming_the_cause_when_a_download_cannot_be_read(
    client, engineer_api, filesystem_storage, version, actor, monkeypatch
):
    from tests.signing_helpers import signed_binary

    binary = signed_binary(client, engineer_api, version, actor, random_bytes(1000))
    url = engineer_api.get(f"/binaries/{binary.prn}/download_url").json()["download_url"]

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(filesystem, "open", unreadable, raising=False)
    response = client.get(url.removeprefix("http://testserver"))

    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "storage_unavailable"
    assert error["message"] == (
        f"The content of {binary.prn} could not be read ([Errno 13] Permission denied)."
    )


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB file system (tmpfs) to fill; mounting one takes root (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root; CI runs this test as root")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mount_point], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", mount_point], check=True)


def test_it_answers_507_when_a_real_disk_fills_and_recovers_once_it_grows(
    client, settings, small_disk, version, actor
):
    settings.STORAGE_BACKEND = "filesystem"
    settings.BINARIES_ROOT = small_disk / "binaries"
    data = random_bytes(3 * MiB)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, data)

    response = put(client, declared, data)

    assert response.status_code == 507
    assert error_of(response)["message"] == DISK_FULL_MESSAGE
    assert part_of(declared).state == PartState.UPLOADABLE

    subprocess.run(["mount", "-o", "remount,size=8m", small_disk], check=True)
    assert put(client, declared, data).status_code == 200
    assert_completes(binary, actor, data)


# --- The disk under the database ---------------------------------------------------------------

DATABASE_FULL_MESSAGE = (
    "The server's disk is full, so the database could not record this; nothing was changed. "
    "Free space on the server, then send the request again."
)


def disk_full(cause: str) -> OperationalError:
    """What Django raises when the database's disk is full: SQLite's own words, or PostgreSQL's
    SQLSTATE 53100 (disk_full) as the cause."""
    import psycopg

    if cause == "sqlite":
        return OperationalError("database or disk is full")
    error = OperationalError("could not extend file: No space left on device")
    error.__cause__ = psycopg.errors.DiskFull()
    return error


@pytest.mark.parametrize("cause", ["sqlite", "postgresql"])
def test_it_answers_507_from_the_api_when_the_database_disk_is_full(
    engineer_api, version, actor, monkeypatch, cause
):
    binary = new_binary(version, actor, random_bytes(100))

    def full(**kwargs: Any) -> Any:
        raise disk_full(cause)

    monkeypatch.setattr(uploads, "part_declare", full)
    response = engineer_api.put(f"/binaries/{binary.prn}/parts/1", {"hash": "a" * 64, "size": 100})

    assert response.status_code == 507, response.content
    assert error_of(response) == {
        "code": "insufficient_storage",
        "message": DATABASE_FULL_MESSAGE,
        "field": None,
    }
    assert not response.has_header("Retry-After")  # a full disk does not empty itself


@pytest.mark.parametrize("cause", ["sqlite", "postgresql"])
def test_it_answers_507_in_plain_text_from_the_console_when_the_database_disk_is_full(
    engineer_membership, version, monkeypatch, cause
):
    binary = verified_binary("signable", version)
    console = logged_in(engineer_membership)

    def full(**kwargs: Any) -> Any:
        raise disk_full(cause)

    monkeypatch.setattr(moves, "reset", full)
    response = console.post(
        f"/binaries/{binary.uuid}/reset", {"reason": "rebuild", "confirm": "yes"}
    )

    assert response.status_code == 507
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == DATABASE_FULL_MESSAGE


def test_it_answers_507_when_a_real_sqlite_database_cannot_grow(engineer_api):
    """SQLite's own SQLITE_FULL, made by capping the database at the pages it has: artifacts
    are created until one needs a page more."""
    if connection.vendor != "sqlite":
        pytest.skip("caps an SQLite database's size; this run is on PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
    try:
        for n in range(500):
            body = {"name": f"firmware-{n}", "description": "x" * 256}
            response = engineer_api.post("/artifacts", body)
            if response.status_code != 201:
                break
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA max_page_count = 4294967294")

    assert response.status_code == 507, response.content
    assert error_of(response)["message"] == DATABASE_FULL_MESSAGE
