"""Completing an upload (state hashable) and waiting for the server's verification."""

import time
from typing import Any

from peridio_cli import ui
from peridio_cli.api import COMPLETE_SECONDS, UPLOAD_RETRIES, Api, one_line
from peridio_cli.errors import ApiError, Failed, Refused, Unavailable

DEFAULT_WAIT_SECONDS = 3600


def mark_hashable(api: Api, prn: str, declare: dict[str, Any] | None = None) -> dict[str, Any]:
    """Tell the server the upload is finished (declaring hash or size first, in the same
    request, when given); harmless if it already knows, and done if an answer was lost but
    the server did it."""
    try:
        answer = api.call(
            "PATCH",
            f"/binaries/{prn}",
            json={**(declare or {}), "state": "hashable"},
            what=f"completing the upload of {prn} (state hashable)",
            retries=UPLOAD_RETRIES,
            at_least=COMPLETE_SECONDS,
        )
        return answer["binary"]
    except (ApiError, Unavailable) as exc:
        if isinstance(exc, ApiError) and exc.status != 409:
            raise
        binary = api.get_binary(prn)
        if binary["state"] in ("hashable", "hashing", "signable", "signed"):
            return binary
        raise


def wait_verified(api: Api, binary: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll until the server has verified the content (signable or signed)."""
    prn = binary["prn"]
    size = int(binary.get("size") or 0)
    started = time.monotonic()
    deadline = started + timeout
    interval = 0.05
    state = binary["state"]
    with ui.Progress("verifying", size) as bar:
        while True:
            state = binary["state"]
            if state in ("signable", "signed"):
                bar.set(size, detail=state)
                ui.debug(f"verified by the server in {time.monotonic() - started:.2f} s")
                return binary
            if state == "uploadable":
                reason = one_line(binary.get("last_error") or "") or "the content was rejected."
                raise Failed(
                    f"the server's verification of {prn} failed: {reason} The binary is "
                    "uploadable again: check the file and its declared hash, then rerun."
                )
            if state == "destroyed":
                raise Refused(f"binary {prn} was destroyed while waiting for its verification.")
            done = int(binary.get("bytes_hashed") or 0)
            bar.set(done, detail=state)
            if time.monotonic() >= deadline:
                share = f", {done * 100 // size}% hashed" if size else ""
                raise Failed(
                    f"timed out after {timeout:g} s waiting for {prn} to be verified (state "
                    f"{state}{share}). It continues on the server: check with `peridio binaries "
                    f"get --prn {prn}`, or rerun the command to wait again (nothing is sent "
                    "twice). A binary that stays hashable means no Celery worker is running."
                )
            time.sleep(interval)
            # Poll briskly (a verification is often a few seconds), slower after a minute.
            cap = 0.25 if time.monotonic() - started < 60 else 1.0
            interval = min(cap, interval * 1.5)
            binary = api.get_binary(prn)
