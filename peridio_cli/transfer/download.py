"""Downloading a signed binary's content, resuming a partial file, checking its SHA-256."""

import hashlib
import os
import sys
import time
from typing import Any, BinaryIO

import httpx

from peridio_cli import ui
from peridio_cli.api import Api, Retry, backoff, error_from, network_error, redact
from peridio_cli.errors import Failed, Unavailable
from peridio_cli.transfer.hashing import bare_hash
from peridio_cli.transfer.limits import CHUNK


def download(
    api: Api, binary: dict[str, Any], dest: str, *, expires_in: int | None, retries: int
) -> dict[str, Any]:
    """Fetch a signed binary's content into dest, resuming a partial file with Range, and
    check its SHA-256 at the end. Returns a summary."""
    prn = binary["prn"]
    expected = bare_hash(binary.get("hash"))
    size = int(binary.get("size") or 0)
    to_stdout = dest == "-"
    digest = hashlib.sha256()
    have = 0
    if not to_stdout and os.path.exists(dest):
        have = os.path.getsize(dest)
        if have > size:
            ui.note(f"{dest} is larger than the binary ({have} > {size} bytes); starting over.")
            have = 0
        elif have:
            with open(dest, "rb") as existing, ui.Progress("checking", have) as bar:
                left = have
                while left:
                    chunk = existing.read(min(CHUNK, left))
                    if not chunk:
                        break
                    digest.update(chunk)
                    left -= len(chunk)
                    bar.advance(len(chunk))
            if have < size:
                ui.note(f"resuming {dest} at byte {have} of {size}.")
    resumed_from = have
    out: BinaryIO
    if to_stdout:
        out = sys.stdout.buffer
    else:
        out = open(dest, "r+b" if os.path.exists(dest) else "wb")  # noqa: SIM115
        out.truncate(have)
        out.seek(have)
    try:
        url: str | None = None
        attempt = 0
        with ui.Progress("download", size) as bar:
            bar.set(have)
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
                            ui.note("the server ignored the range; downloading from the start.")
                            if to_stdout:
                                raise Failed("cannot restart a download written to stdout.")
                            have = 0
                            digest = hashlib.sha256()
                            out.seek(0)
                            out.truncate(0)
                            bar.set(0)
                        elif response.status_code == 206:
                            start = _range_start(response.headers.get("content-range", ""))
                            if start != have:
                                raise Failed(
                                    f"the server answered range {start} for byte {have}; "
                                    "remove the partial file and run again."
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
                        if have < size:
                            raise Retry("the connection ended early")
                except (httpx.TransportError, Retry) as exc:
                    out.flush()
                    attempt += 1
                    if attempt > retries:
                        if isinstance(exc, httpx.TransportError):
                            raise network_error(exc, f"downloading {prn}", api.root) from None
                        raise Unavailable(f"downloading {prn} failed: {exc}") from None
                    ui.note(f"download interrupted ({exc}); resuming at byte {have}.")
                    time.sleep(backoff(attempt - 1))
                    url = None
    finally:
        out.flush()
        if not to_stdout:
            out.close()
    found = digest.hexdigest()
    if expected and found != expected:
        if not to_stdout:
            os.replace(dest, dest + ".corrupt")
        raise Failed(
            f"the downloaded content's SHA-256 is {found}, not the binary's {expected}; kept "
            f"it as {dest}.corrupt. Run the command again."
        )
    return {
        "prn": prn,
        "file": dest,
        "size": have,
        "hash": f"sha256:{found}",
        "resumed_from": resumed_from,
        "verified": bool(expected),
    }


def _range_start(content_range: str) -> int:
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1
