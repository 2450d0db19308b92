"""The embedded broker: kombu's filesystem transport, with message files that appear whole.

kombu 5.7's `_put` creates a message file under its final name, then locks and writes it; its
`_get` moves the file away and parses it without the lock. A worker listing the folder in that
window reads an empty file, and the JSONDecodeError stops it (and loses the message). Here a
message is written under a hidden name no consumer lists, then renamed into the queue folder
(atomic on POSIX), so a listed file is always complete. A consumer reads a file, then claims it
by deleting it: exactly one consumer's unlink succeeds. A file that does not parse (written by
a stock kombu producer, or damaged) is left for a later read while it may still be being
written, then moved to `unreadable/` in the queue folder and logged; it never stops a worker.

The folders, file names and format are kombu's: stock kombu reads these messages. Settings
choose this transport for `filesystem://` (kombu's TRANSPORT_ALIASES, set in celery.py).
"""

import contextlib
import logging
import os
import socket
import time
import uuid
from queue import Empty
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)

#: A message file that does not parse may be a stock producer's, still being written; after
#: this long without parsing it is moved aside.
UNREADABLE_AFTER_SECONDS = 60.0


def write_whole(folder: str, name: str, data: bytes, *, replace: bool = True) -> None:
    """Write folder/name so that no reader ever sees part of it. With replace=False an
    existing file is kept (and data dropped)."""
    temp = os.path.join(folder, f".{uuid.uuid4().hex}.tmp")  # hidden: no listing takes it
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if replace:
            os.replace(temp, os.path.join(folder, name))
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temp, os.path.join(folder, name))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def parse(raw: bytes) -> dict[str, Any] | None:
    """A message's payload, or None when the file is empty, cut short or not a message."""
    try:
        payload = loads(bytes_to_str(raw))
    except (ValueError, TypeError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return payload if isinstance(payload, dict) else None


class Channel(filesystem.Channel):
    # kombu's two base classes name the payload differently (payload, message).
    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]
        # kombu's name: ordered by time, then unique; `_get` picks the queue by its suffix.
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        try:
            write_whole(self.data_folder_out, name, str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to {self.data_folder_out!r}") from exc

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        folder = self.data_folder_in
        for name in sorted(os.listdir(folder)):
            if name.startswith(".") or name.partition(".")[2] != f"{queue}.msg":
                continue
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as handle:
                    raw = handle.read()
            except FileNotFoundError:
                continue  # another consumer took it
            except OSError as exc:
                raise ChannelError(f"Cannot read file {path!r} from queue.") from exc
            payload = parse(raw)
            if payload is None:
                self._set_aside_if_stale(path)
                continue
            try:
                os.unlink(path)  # the claim
            except FileNotFoundError:
                continue  # another consumer read it too and claimed it first
            if self.store_processed:
                os.makedirs(self.processed_folder, exist_ok=True)
                write_whole(self.processed_folder, name, raw)
            return payload
        raise Empty()

    def _set_aside_if_stale(self, path: str) -> None:
        try:
            if time.time() - os.stat(path).st_mtime < UNREADABLE_AFTER_SECONDS:
                return  # may still be being written: read it again later
            os.makedirs(self.unreadable_folder, exist_ok=True)
            aside = os.path.join(self.unreadable_folder, os.path.basename(path))
            os.rename(path, aside)
        except FileNotFoundError:
            return  # completed and taken meanwhile, or moved aside by another consumer
        log.error(
            "The broker message file %s could not be parsed for %d s; moved it to %s",
            path,
            UNREADABLE_AFTER_SECONDS,
            aside,
        )

    @property
    def unreadable_folder(self) -> str:
        return os.path.join(self.data_folder_in, "unreadable")

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        # kombu creates a missing exchange table with open("wb") before locking it, so a
        # publisher reading the table meanwhile finds it empty. Create it whole; kombu then
        # updates it in place under its lock.
        file = self._exchange_file(exchange)
        if not file.exists():
            self.control_folder.mkdir(parents=True, exist_ok=True)
            write_whole(str(self.control_folder), file.name, b"[]", replace=False)
        super()._queue_bind(exchange, routing_key, pattern, queue)


class Transport(filesystem.Transport):
    """Asynchronous, so a Celery worker runs its event loop over it and gives each prefork pool
    process a pipe of its own. Over a blocking transport the pool's processes share one pipe
    and its lock: one killed while it holds the lock stops the whole pool, for good."""

    Channel = Channel
    implements = filesystem.Transport.implements.extend(asynchronous=True)

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        loop.call_repeatedly(self.polling_interval, self.deliver_waiting, connection)

    def deliver_waiting(self, connection: Any) -> None:
        """Deliver the messages waiting, as many as prefetch allows, without blocking."""
        with contextlib.suppress(socket.timeout):
            while True:
                self.drain_events(connection, timeout=0)
