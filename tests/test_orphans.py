"""Stored bytes that no binary owns are found and removed by the janitor, and a reset racing
part writes leaves none behind.

Found by an adversarial review: a reset racing a PUT left an orphan `.partial` file (1 in 60
rounds) that no janitor removed: the discard deleted bytes before rows, the PUT re-created
the file, and the janitor looked only at binaries with parts.
"""

import contextlib
import os
import threading
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from binaries import janitor, moves
from binaries.models import State
from peridio_console.core.errors import DomainError
from tests.upload_helpers import (
    declare,
    declare_at,
    fresh,
    new_binary,
    put_bytes,
    put_http,
    random_bytes,
    sha256,
)

LATER = timedelta(hours=2)


def _age(backend, hours: float = 2) -> None:
    """Make every stored file look older than the janitor's threshold (filesystem)."""
    then = (timezone.now() - timedelta(hours=hours)).timestamp()
    for path in backend.root.rglob("*"):
        os.utime(path, (then, then))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_removes_files_no_binary_owns_and_keeps_the_rest(client, backend, version, actor):
    signable = new_binary(version, actor, data := random_bytes(1000), target="signable")
    assert put_bytes(client, declare(signable, 1, data), data) == 200
    moves.mark_hashable(binary=fresh(signable), actor=actor)  # verified eagerly
    uploading = new_binary(version, actor, data, target="uploading")
    assert put_bytes(client, declare(uploading, 1, data), data) == 200
    org_dir = backend.root / str(version.organization.uuid)
    stray = org_dir / f"{uuid.uuid4()}.partial"
    stray.write_bytes(b"left by a request that lost a race")
    reset = new_binary(version, actor, data, target="reset")
    leftover = org_dir / f"{reset.uuid}.partial"  # a reset binary has no parts: not its file
    leftover.write_bytes(b"written after the reset deleted the parts")
    before = backend.listing()

    assert janitor.remove_orphans() == []  # too young: a request may still be writing them
    _age(backend)
    removed = janitor.remove_orphans()

    assert sorted(removed) == sorted(str(p.relative_to(backend.root)) for p in (stray, leftover))
    assert backend.listing() == sorted(set(before) - set(removed))
    assert fresh(signable).state == State.SIGNABLE
    assert len([k for k in backend.listing() if str(uploading.uuid) in k]) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_it_aborts_multipart_uploads_and_objects_no_binary_owns_on_s3(backend, version, actor):
    data = random_bytes(1000)
    binary = new_binary(version, actor, data)
    declared = declare_at(binary, 1, data, "http://testserver/")
    assert put_http(declared.upload_url, data, sha256(data)).status_code == 200
    binary.refresh_from_db()
    dead_upload = binary.upload_id
    # Another upload takes its place (as a lost answer to a create could leave behind).
    type(binary).objects.filter(pk=binary.pk).update(upload_id=None)
    backend.start_upload(fresh(binary))
    stray_key = f"binaries/{version.organization.uuid}/{uuid.uuid4()}"
    backend.client.put_object(Bucket=backend.bucket, Key=stray_key, Body=b"no owner")

    removed = janitor.remove_orphans(now=timezone.now() + LATER)

    assert stray_key in removed
    assert f"(multipart upload) {backend.key(binary)}" in removed
    open_uploads = [u for _, u in backend.multipart_uploads()]
    assert dead_upload not in open_uploads
    assert fresh(binary).upload_id in open_uploads  # the live upload stays


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_leaves_no_orphan_when_resets_race_part_writes(backend, version, actor, live_server):
    """100 rounds of a part PUT over HTTP racing a reset of the failed upload: whatever the
    interleaving, once the janitor has run nothing is stored for the reset binaries."""
    data = random_bytes(64 * 1024)
    base_url = live_server.url + "/"
    for round_ in range(100):
        binary = new_binary(version, actor, data, target=f"race-{round_}")
        declared = declare_at(binary, 1, data, base_url)
        writer = threading.Thread(target=put_http, args=(declared.upload_url, data, sha256(data)))
        writer.start()
        with contextlib.suppress(DomainError):  # a refusal is fine: the race is under test
            moves.reset(binary=fresh(binary), actor=actor, reason="race")
        writer.join(timeout=60)
        assert not writer.is_alive()
        if fresh(binary).parts.exists():  # the write came after the reset: reset again
            moves.reset(binary=fresh(binary), actor=actor, reason="race")
    _age(backend)
    janitor.remove_orphans()
    assert backend.listing() == []
