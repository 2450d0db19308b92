"""Downloading a signed binary's content without ever damaging a file the user has.

Bytes go to FILE.part; FILE is written only by renaming FILE.part over it once the SHA-256
matches (and, when FILE already exists, only with --force). Beside FILE.part the CLI keeps
FILE.part.json: the binary's PRN and hash and the SHA-256 of the bytes written so far at
checkpoints. A rerun resumes only from a .part whose record names the same binary and
content, and only up to the last checkpoint its bytes still match; anything else there is
not ours, and is left alone without --force.
"""

import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from peridio_cli import ui
from peridio_cli.api import Api, Retry, backoff, error_from, network_error, redact
from peridio_cli.errors import Failed, Unavailable, UsageProblem
from peridio_cli.transfer.hashing import bare_hash
from peridio_cli.transfer.limits import CHUNK, MiB

CHECKPOINT_BYTES = 4 * MiB


def part_paths(dest: str) -> tuple[str, str]:
    return dest + ".part", dest + ".part.json"


def check_destination(dest: str, force: bool) -> None:
    """Before any request: refuse to touch an existing FILE, or a FILE.part the CLI did not
    write, unless --force."""
    if dest == "-" or force:
        return
    part, record = part_paths(dest)
    if os.path.lexists(dest):
        raise UsageProblem(
            f"{dest} already exists; it is left as it is. Pass --force to replace it once the "
            "download is complete and verified, or choose another --file."
        )
    if os.path.lexists(part) and not os.path.exists(record):
        raise UsageProblem(
            f"{part} exists but was not written by `peridio binaries download` (no {record}); "
            "it is left as it is. Move it away, or pass --force to start the download over."
        )


@dataclass
class Partial:
    """What FILE.part holds: how many bytes are good, and their running SHA-256."""

    have: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    checkpoints: dict[int, str] = field(default_factory=dict)


def _read_record(record: str) -> dict[str, Any]:
    try:
        with open(record, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(record: str, prn: str, expected: str | None, checkpoints: dict[int, str]) -> None:
    tmp = record + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump({"prn": prn, "hash": expected, "checkpoints": checkpoints}, out)
    os.replace(tmp, record)


def resume_point(dest: str, prn: str, expected: str | None, size: int) -> Partial:
    """The part of FILE.part that can be trusted: the bytes up to the last checkpoint whose
    SHA-256 they still have, if the record names this binary and content."""
    part, record = part_paths(dest)
    if not os.path.exists(part):
        return Partial()
    data = _read_record(record)
    if data.get("prn") != prn or data.get("hash") != expected:
        ui.note(f"{part} holds another binary's download; starting over.")
        return Partial()
    saved = data.get("checkpoints") or {}
    marks = sorted(int(k) for k in saved if str(k).isdigit() and 0 < int(k) <= size)
    length = os.path.getsize(part)
    marks = [m for m in marks if m <= length]
    found = Partial()
    if not marks:
        return found
    digest = hashlib.sha256()
    done = 0
    with open(part, "rb") as handle, ui.Progress("checking", marks[-1]) as bar:
        for mark in marks:
            while done < mark:
                chunk = handle.read(min(CHUNK, mark - done))
                if not chunk:
                    break
                digest.update(chunk)
                done += len(chunk)
                bar.advance(len(chunk))
            if done != mark or digest.hexdigest() != saved[str(mark)]:
                break
            found = Partial(mark, digest.copy(), {**found.checkpoints, mark: saved[str(mark)]})
    if found.have == 0:
        ui.note(f"{part} does not hold the bytes its record says; starting over.")
    return found


def download(
    api: Api,
    binary: dict[str, Any],
    dest: str,
    *,
    expires_in: int | None,
    retries: int,
    force: bool = False,
) -> dict[str, Any]:
    """Fetch a signed binary's content into dest (through dest.part, resumed when a previous
    run left one), check its SHA-256, then rename it into place. Returns a summary."""
    check_destination(dest, force)
    prn = binary["prn"]
    expected = bare_hash(binary.get("hash"))
    size = int(binary.get("size") or 0)
    if dest == "-":
        digest, have = _fetch(
            api, prn, size, sys.stdout.buffer, Partial(), expires_in=expires_in, retries=retries
        )
        _check_digest(digest.hexdigest(), expected, None)
        return _summary(prn, dest, have, digest.hexdigest(), 0, expected)
    part, record = part_paths(dest)
    start = resume_point(dest, prn, expected, size)
    if start.have:
        ui.note(f"resuming {part} at byte {start.have} of {size}.")
    with open(part, "r+b" if os.path.exists(part) else "wb") as out:
        out.truncate(start.have)
        out.seek(start.have)
        _write_record(record, prn, expected, start.checkpoints)
        digest, have = _fetch(
            api,
            prn,
            size,
            out,
            start,
            expires_in=expires_in,
            retries=retries,
            record=record,
            expected=expected,
        )
    found = digest.hexdigest()
    if expected and found != expected:
        os.remove(part)
        os.remove(record)
        _check_digest(found, expected, dest)
    if os.path.lexists(dest) and not force:
        raise UsageProblem(
            f"{dest} appeared during the download and is left as it is; the verified content "
            f"is in {part}."
        )
    os.replace(part, dest)
    os.remove(record)
    return _summary(prn, dest, have, found, start.have, expected)


def _summary(
    prn: str, dest: str, have: int, found: str, resumed: int, expected: str | None
) -> dict[str, Any]:
    return {
        "prn": prn,
        "file": dest,
        "size": have,
        "hash": f"sha256:{found}",
        "resumed_from": resumed,
        "verified": bool(expected),
    }


def _check_digest(found: str, expected: str | None, dest: str | None) -> None:
    if expected and found != expected:
        where = f"; nothing was written to {dest}" if dest else ""
        raise Failed(
            f"the downloaded content's SHA-256 is {found}, not the binary's {expected}{where}. "
            "Run the command again."
        )


def _fetch(
    api: Api,
    prn: str,
    size: int,
    out: BinaryIO,
    start: Partial,
    *,
    expires_in: int | None,
    retries: int,
    record: str | None = None,
    expected: str | None = None,
) -> tuple[Any, int]:
    """Stream the content from byte start.have into out, retrying with Range; the running
    SHA-256 and the byte count. With a record, checkpoints are saved as bytes land."""
    import httpx

    digest, have = start.digest, start.have
    checkpoints = dict(start.checkpoints)
    last_mark = have

    def checkpoint() -> None:
        nonlocal last_mark
        if record is None or have == last_mark:
            return
        out.flush()
        os.fsync(out.fileno())
        checkpoints[have] = digest.hexdigest()
        _write_record(record, prn, expected, checkpoints)
        last_mark = have

    url: str | None = None
    attempt = 0
    with ui.Progress("download", size, already=have) as bar:
        try:
            while have < size:
                if url is None:
                    answer = api.call(
                        "GET",
                        f"/binaries/{prn}/download_url",
                        params={"expires_in": expires_in},
                        what=f"getting a download URL for {prn}",
                    )
                    url = str(answer["download_url"])
                headers = {"Range": f"bytes={have}-"} if have else {}
                try:
                    with api.transfer.stream("GET", url, headers=headers) as response:
                        ui.debug(f"GET {redact(url)} {headers} -> {response.status_code}")
                        if response.status_code == 200 and have:
                            if record is None:
                                raise Failed("cannot restart a download written to stdout.")
                            ui.note("the server ignored the range; downloading from the start.")
                            have, last_mark, digest = 0, 0, hashlib.sha256()
                            checkpoints.clear()
                            out.seek(0)
                            out.truncate(0)
                            bar.set(0)
                        elif response.status_code == 206:
                            begin = _range_start(response.headers.get("content-range", ""))
                            if begin != have:
                                raise Failed(
                                    f"the server answered range {begin} for byte {have}; "
                                    "run the command again."
                                )
                        elif response.status_code in (401, 403, 404) and attempt < retries:
                            raise Retry(f"HTTP {response.status_code} (URL expired?)")
                        elif response.status_code != 200:
                            response.read()
                            raise error_from(response, f"downloading {prn}")
                        for chunk in response.iter_bytes(CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            have += len(chunk)
                            bar.advance(len(chunk))
                            if have - last_mark >= CHECKPOINT_BYTES:
                                checkpoint()
                        if have < size:
                            raise Retry("the connection ended early")
                except (httpx.TransportError, Retry) as exc:
                    checkpoint()
                    attempt += 1
                    if attempt > retries:
                        if isinstance(exc, httpx.TransportError):
                            raise network_error(exc, f"downloading {prn}", api.root) from None
                        raise Unavailable(
                            f"downloading {prn} failed: {exc}. Rerun the same command to resume."
                        ) from None
                    ui.note(f"download interrupted ({exc}); resuming at byte {have}.")
                    time.sleep(backoff(attempt - 1))
                    url = None
        finally:
            with contextlib.suppress(OSError, ValueError):
                checkpoint()
    out.flush()
    return digest, have


def _range_start(content_range: str) -> int:
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1
