"""The upload protocol's writes: declare parts, receive them, complete, reset, destroy.

Storage calls run outside database transactions; each database change is one short
transaction, and a request that fails half-way leaves the rows as they were.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from binaries import content, lifecycle, storage
from binaries.models import (
    MAX_PART_INDEX,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    Binary,
    BinaryPart,
    PartState,
    State,
)
from binaries.validation import clean_hash, clean_size
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditAction
from peridio_console.core.errors import Conflict, InvalidInput

log = logging.getLogger(__name__)

# The running totals of a binary whose parts are all removed (with the parts, in one transaction).
NO_PARTS = {"parts_count": 0, "parts_bytes": 0, "parts_max_index": 0}


@dataclass
class DeclaredPart:
    part: BinaryPart
    upload_url: str
    expires_at: datetime


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.2f} MiB" if n % (1 << 20) else f"{n >> 20} MiB"


def clean_index(index: Any) -> int:
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= MAX_PART_INDEX:
        raise InvalidInput(
            f"The part index must be a whole number from 1 to {MAX_PART_INDEX}; got {index!r}.",
            field="index",
        )
    return index


def _require_uploadable(binary: Binary, what: str) -> None:
    if binary.state != State.UPLOADABLE:
        raise Conflict(
            f"The binary is {binary.state}; {what} only while it is uploadable "
            "(reset it to uploadable to upload new content).",
            code="invalid_state",
        )


def _adopt_expected_size(binary: Binary, expected: Any) -> None:
    expected = clean_size(expected, "expected_binary_size")
    if binary.size is None:
        Binary.objects.filter(pk=binary.pk, state=State.UPLOADABLE, size__isnull=True).update(
            size=expected, updated_at=timezone.now()
        )
        binary.refresh_from_db()
    if binary.size != expected:
        raise InvalidInput(
            f"expected_binary_size is {expected} but the binary was declared with size "
            f"{binary.size}; they must match.",
            field="expected_binary_size",
        )


@dataclass(frozen=True)
class _PartsSoFar:
    """The binary as a declaration of part `index` finds it, read in one query: its size, the
    running totals of its other parts, and part `index`'s size as declared so far (None while
    it is new)."""

    binary_size: int | None
    others_count: int
    others_bytes: int
    max_index: int
    old_size: int | None

    @classmethod
    def read(cls, binary: Binary, index: int) -> "_PartsSoFar":
        """In one statement, so one snapshot of both rows. Refuses (invalid_state) when the
        binary is no longer uploadable."""
        own = BinaryPart.objects.filter(binary=OuterRef("pk"), index=index).values("size")
        state, size, count, total, max_index, old_size = (
            Binary.objects.filter(pk=binary.pk)
            .values_list(
                "state", "size", "parts_count", "parts_bytes", "parts_max_index", Subquery(own)
            )
            .get()
        )
        if state != State.UPLOADABLE:
            binary.refresh_from_db()
            _require_uploadable(binary, "parts can be uploaded")
        return cls(
            binary_size=size,
            others_count=count - (old_size is not None),
            others_bytes=total - (old_size or 0),
            max_index=max_index,
            old_size=old_size,
        )


def _check_part_fits(so_far: _PartsSoFar, index: int, size: int) -> None:
    if size > MAX_PART_SIZE:
        raise InvalidInput(
            f"A part can be at most 5 GiB ({MAX_PART_SIZE} bytes); got {size}.", field="size"
        )
    if so_far.binary_size is None:
        return
    total = so_far.others_bytes + size
    if total > so_far.binary_size:
        raise InvalidInput(
            f"Part {index} of {size} bytes would make the parts {total} bytes in all, more "
            f"than the binary's declared size of {so_far.binary_size}.",
            field="size",
        )
    # A short part must be the last: none above it, and where every part below it is
    # declared (with none above, those are all the others) it must end the binary.
    every_lower_declared = so_far.others_count == index - 1
    if size < MIN_PART_SIZE and (
        so_far.max_index > index or (every_lower_declared and total != so_far.binary_size)
    ):
        raise InvalidInput(
            f"Part {index} is {size} bytes; every part but the last must be at least "
            f"{_mib(MIN_PART_SIZE)} ({MIN_PART_SIZE} bytes).",
            field="size",
        )


def _offsets(parts: list[BinaryPart]) -> dict[int, int | None]:
    """Each part's byte offset, where every lower part is declared; None where not known."""
    result: dict[int, int | None] = {}
    offset: int | None = 0
    expected_index = 1
    for part in sorted(parts, key=lambda p: p.index):
        if part.index != expected_index:
            offset = None
        result[part.index] = offset
        if offset is not None:
            offset += part.size
        expected_index = part.index + 1
    return result


def part_declare(
    *,
    binary: Binary,
    index: Any,
    hash: Any,
    size: Any,
    expected_binary_size: Any = None,
    base_url: str,
) -> DeclaredPart:
    """Declare (or re-declare) part `index`, and give the URL its bytes go to.

    Constant work whatever the number of parts: the checks read the totals kept on the
    binary's row and this part's own row. Only a re-declaration that changes a part's size
    visits other parts: those above it written in place (filesystem backend)."""
    index = clean_index(index)
    digest = clean_hash(hash)
    size = clean_size(size)
    _require_uploadable(binary, "parts can be uploaded")
    if expected_binary_size is not None:
        _adopt_expected_size(binary, expected_binary_size)
    # Checked before the store is called (a refused part starts no upload), and again under
    # the lock below: a declaration of another part may change the totals meanwhile.
    _check_part_fits(_PartsSoFar.read(binary, index), index, size)
    backend = storage.get()
    backend.start_upload(binary)  # may call the object store: outside any transaction
    in_place = backend.name == "filesystem"
    try:
        with transaction.atomic():
            # Lock the binary row before any part row: declarations of different parts of
            # one binary then take their locks in one order (no deadlock on PostgreSQL), and
            # a concurrent move or reset (which updates this row first) waits or is waited on.
            list(Binary.objects.select_for_update().filter(pk=binary.pk).values_list("pk"))
            # Then read, in a statement of its own: on PostgreSQL a statement that waited for
            # a lock sees the locked row as it is now but other rows as they were before.
            so_far = _PartsSoFar.read(binary, index)
            _check_part_fits(so_far, index, size)
            part, _ = BinaryPart.objects.update_or_create(
                binary=binary,
                index=index,
                defaults={
                    "hash": digest,
                    "size": size,
                    "state": PartState.UPLOADABLE,
                    "token": secrets.token_hex(16),
                    "last_error": "",
                    "updated_at": timezone.now(),
                },
            )
            Binary.objects.filter(pk=binary.pk).update(
                parts_count=so_far.others_count + 1,
                parts_bytes=so_far.others_bytes + size,
                parts_max_index=max(so_far.max_index, index),
            )
            if in_place and so_far.old_size not in (None, size):
                _invalidate_moved_parts(binary, above=index)
            part.refresh_from_db()
    except IntegrityError:
        # Another request created this part at the same moment and it was gone again (a
        # reset) before update_or_create could read it back.
        raise Conflict(
            f"Part {index} was declared by another request at the same moment; declare it again.",
            code="part_busy",
        ) from None
    expires_at = timezone.now() + timedelta(seconds=settings.UPLOAD_URL_TTL_SECONDS)
    binary.refresh_from_db()
    url = backend.part_upload_url(binary, part, expires_at, base_url)
    return DeclaredPart(part=part, upload_url=url, expires_at=expires_at)


def _invalidate_moved_parts(binary: Binary, *, above: int) -> None:
    """Part `above` changed size: each part above it written in place has moved (its bytes sit
    at the old offset) and must be sent again. Only a part with every lower part declared is
    written in place, and no part is removed alone, so a new part, or one re-declared with its
    old size, moves none. Rare, so one row at a time, locked in index order."""
    moved = (
        BinaryPart.objects.select_for_update()
        .filter(binary=binary, index__gt=above, offset__isnull=False)
        .order_by("index")
        .values_list("pk", "index")
    )
    for pk, index in moved:
        BinaryPart.objects.filter(pk=pk).update(
            state=PartState.UPLOADABLE,
            offset=None,
            last_error=f"An earlier part changed size; upload part {index} again.",
            token=secrets.token_hex(16),
        )


def part_receive(*, token_payload: dict[str, Any], stream: Any, length: int) -> BinaryPart:
    """Take a part's bytes through this server's upload URL (filesystem backend)."""
    part = (
        BinaryPart.objects.select_related("binary", "binary__organization")
        .filter(binary__uuid=token_payload["b"], index=token_payload["i"], token=token_payload["t"])
        .first()
    )
    if part is None or part.hash != token_payload["h"] or part.size != token_payload["s"]:
        raise _superseded()
    binary = part.binary
    _require_uploadable(binary, "parts can be uploaded")
    backend = storage.get()
    if not isinstance(backend, storage.FilesystemStorage):
        raise _superseded()  # a URL of this server's, issued before the store became S3
    # Where every lower part is declared, the bytes go straight to their place in the object.
    # (None also when a reset removed the part meanwhile: the update below then finds no row.)
    part.offset = _offsets(list(binary.parts.all())).get(part.index)
    # The part as declared, while its binary takes bytes: the write and its record are
    # conditional on both (a completion or a reset meanwhile turns them into no-ops).
    current = BinaryPart.objects.filter(
        pk=part.pk, token=part.token, binary__state=State.UPLOADABLE
    )
    failure: storage.StorageError | None = None
    if length != part.size:
        check = storage.PartCheck(
            PartState.INVALID_SIZE,
            f"Part {part.index} was declared as {part.size} bytes but the request carries "
            f"{length} (Content-Length).",
        )
    else:

        def still_current() -> bool:
            return current.exists()

        try:
            check = backend.receive_part(binary, part, stream, length, still_current)
        except OSError as exc:
            # Some of its bytes may be on disk: whatever it was before, the part is not valid.
            failure = storage.write_failure(exc, f"part {part.index}")
            check, part.offset = storage.PartCheck(PartState.UPLOADABLE, str(failure)), None
    recorded = current.update(
        state=check.state, last_error=check.message, offset=part.offset, updated_at=timezone.now()
    )
    if failure is not None:
        raise failure
    if not recorded:
        binary.refresh_from_db()  # completed meanwhile: its parts are no longer written to
        _require_uploadable(binary, "parts can be uploaded")
    try:
        part.refresh_from_db()
    except BinaryPart.DoesNotExist:  # a reset removed the part while its bytes arrived
        raise _superseded() from None
    return part


def _superseded() -> Conflict:
    return Conflict(
        "This upload URL was superseded: the part was declared again or the binary was "
        "reset. Declare the part again for a new URL.",
        code="superseded",
    )


def parts_refresh(binary: Binary) -> list[BinaryPart]:
    """Ask the store what it holds (S3: ListParts) and record each part's state."""
    parts = list(binary.parts.all())
    if binary.state != State.UPLOADABLE or not parts:
        return parts
    checks = storage.get().check_parts(binary, parts)
    for part in parts:
        check = checks.get(part.index)
        if check and (check.state != part.state or check.message != part.last_error):
            BinaryPart.objects.filter(pk=part.pk, token=part.token).update(
                state=check.state, last_error=check.message, updated_at=timezone.now()
            )
    return list(binary.parts.all())


def _completion_problems(binary: Binary, parts: list[BinaryPart]) -> str | None:
    if binary.hash is None or binary.size is None:
        missing = " and ".join(n for n in ("hash", "size") if getattr(binary, n) is None)
        return f"The binary has no declared {missing}; set it before marking it hashable."
    if binary.size == 0 and not parts:
        return None
    if not parts:
        return "No parts were uploaded; upload the content before marking the binary hashable."
    indexes = [p.index for p in parts]
    missing_indexes = sorted(set(range(1, max(indexes) + 1)) - set(indexes))
    problems = []
    if missing_indexes:
        problems.append(f"missing parts {_ranges(missing_indexes)}")
    for state in (PartState.UPLOADABLE, PartState.INVALID_HASH, PartState.INVALID_SIZE):
        bad = [p.index for p in parts if p.state == state]
        if bad:
            word = "not uploaded" if state == PartState.UPLOADABLE else state.replace("_", " ")
            problems.append(f"parts {_ranges(bad)} {word}")
    total = sum(p.size for p in parts)
    if not problems and total != binary.size:
        problems.append(f"the parts add up to {total} bytes but the binary is {binary.size}")
    short = [p.index for p in parts[:-1] if p.size < MIN_PART_SIZE]
    if short:
        problems.append(f"parts {_ranges(short)} are under {_mib(MIN_PART_SIZE)} but not last")
    if problems:
        return "The upload is not complete: " + "; ".join(problems) + "."
    return None


def _ranges(numbers: list[int]) -> str:
    spans: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(spans)


def complete(binary: Binary) -> list[BinaryPart]:
    """Check parts 1..N and complete the upload in the store (object-store I/O: call it
    outside any transaction). Returns the parts; the caller makes the move."""
    binary.refresh_from_db()
    if binary.state != State.UPLOADABLE:
        raise lifecycle.TransitionRefused(
            binary.state, State.HASHABLE, lifecycle.allowed_client_moves(binary.state)
        )
    try:
        parts = parts_refresh(binary)
        problem = _completion_problems(binary, parts)
        if problem:
            raise Conflict(problem, code="upload_incomplete")
        storage.get().complete(binary, parts)
    except (storage.StorageError, Conflict):
        # A concurrent request may have completed the upload meanwhile (its parts are then
        # gone, and S3 knows its id no more): say so, not "incomplete" or "store refused".
        binary.refresh_from_db()
        if binary.state != State.UPLOADABLE:
            raise lifecycle.TransitionRefused(
                binary.state, State.HASHABLE, lifecycle.allowed_client_moves(binary.state)
            ) from None
        raise
    return parts


def reset(
    *,
    binary: Binary,
    actor: Actor,
    reason: str = "",
    last_error: str = "",
    only_from: set[str] | frozenset[str] | None = None,
    guard: dict[str, Any] | None = None,
) -> Binary:
    """Back to uploadable: parts and stored content deleted, progress cleared."""
    snapshot = Binary.objects.select_related("organization").get(pk=binary.pk)
    with transaction.atomic():
        moved = lifecycle.transition(
            binary,
            to=State.UPLOADABLE,
            actor=actor,
            reason=reason,
            only_from=only_from,
            guard=guard,
            set_fields={
                "last_error": last_error,
                "verified_hash": None,
                "bytes_hashed": 0,
                "hashing_started_at": None,
                "hashing_heartbeat_at": None,
                "upload_id": None,
                **NO_PARTS,
            },
            details={"error": last_error} if last_error else None,
            after_commit=lambda: content.discard_now_or_later(snapshot),
        )
        BinaryPart.objects.filter(binary=binary).delete()
    return moved


def discard_upload(
    binary: Binary, *, actor: Actor, reason: str, untouched_since: datetime | None = None
) -> int | None:
    """Throw away an uploadable binary's parts and their bytes (a client's reset of a failed
    upload, or the janitor). Not a move: the binary stays uploadable; an event records it.

    Returns how many parts were removed, or None when the binary moved on (or, with
    `untouched_since`, was touched) meanwhile.

    The rows go first, so a part write that starts meanwhile finds its part gone and is not
    taken; then the bytes, now or (the store being away) by a retrying task. A file such a
    write created meanwhile belongs to no part: the janitor's orphan search removes it.
    """
    upload_id = binary.upload_id
    with transaction.atomic():
        rows = Binary.objects.filter(pk=binary.pk, state=State.UPLOADABLE)
        if untouched_since is not None:
            rows = rows.filter(updated_at=untouched_since)
        if not rows.update(upload_id=None, last_error="", updated_at=timezone.now(), **NO_PARTS):
            return None
        count = BinaryPart.objects.filter(binary=binary).count()
        BinaryPart.objects.filter(binary=binary).delete()
        lifecycle.record_event(
            binary,
            actor=actor,
            action=AuditAction.BINARY_UPLOAD_CLEANED,
            reason=f"{reason}: {count} part(s) and their bytes removed.",
            details={"parts_removed": count},
        )
    binary.upload_id = upload_id  # not saved: only so that the deletion aborts that upload
    content.discard_now_or_later(binary)
    binary.refresh_from_db()
    return count
