"""The embedded broker: kombu's filesystem transport, with message files that appear whole.

kombu 5.7's `_put` creates a message file under its final name, then locks and writes it; its
`_get` moves the file away and parses it without the lock. A worker listing the folder in that
window reads an empty file, and the JSONDecodeError stops it (and loses the message). Here a
message is written under a hidden name no consumer lists, then renamed into the queue folder
(atomic on POSIX), so a listed file is always complete. A consumer reads a file, then claims it
by deleting it: exactly one consumer's unlink succeeds. A file that does not parse (written by
a stock kombu producer, or damaged) is left for a later read while it may still be being
written, then moved to `unreadable/` in the queue folder and logged; it never stops a worker.

A consumer that takes a message to acknowledge later (Celery's tasks) claims it by renaming it
into a folder of its own process, `unacked/<host>.<pid>.<random>/` in the queue folder, and
deletes it there once acknowledged, rejected or given back. The process holds a POSIX lock on
that folder's `lock` file for its whole life; the kernel drops it when the process dies, however
it dies. Consumers look at the other folders when they start and every few seconds: one whose
lock they can take belonged to a process that died, and its messages go back to the queue at
once, marked redelivered. (kombu keeps unacknowledged messages only in the consumer's memory,
and a killed Celery worker lost them until the hashing sweeper re-queued the work.)

The folders, file names and format are kombu's: stock kombu reads these messages. Settings
choose this transport for `filesystem://` (kombu's TRANSPORT_ALIASES, set in celery.py).
"""

import contextlib
import fcntl
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

#: How often a consumer looks for messages held by consumers that died (and when it starts).
GIVE_BACK_EVERY_SECONDS = 5.0

UNACKED = "unacked"
LOCK = "lock"


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


def _put_order(name: str) -> tuple[int, str]:
    """Oldest first: by the milliseconds a name starts with, as a number (kombu sorts them as
    text, where 999 follows 1000), then by name."""
    stamp = name.partition("_")[0]
    return (int(stamp) if stamp.isdigit() else 0, name)


class Holder:
    """This process's folder of the messages it took and has not acknowledged, locked for as
    long as the process lives. POSIX record locks (lockf) belong to the process: the kernel
    drops them when it dies, and the processes it forks do not inherit them."""

    def __init__(self, root: str):
        os.makedirs(root, exist_ok=True)
        name = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        building = os.path.join(root, f".{name}")  # hidden until it is locked
        os.mkdir(building)
        self.fd = os.open(os.path.join(building, LOCK), os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = os.path.join(root, name)
        os.rename(building, self.path)
        self.pid = os.getpid()


_holders: dict[str, Holder] = {}  # by unacked folder; one per process that takes messages


def holder(root: str) -> Holder:
    held = _holders.get(root)
    if held is None or held.pid != os.getpid():  # a forked child gets a folder of its own
        held = _holders[root] = Holder(root)
    return held


def give_back_from_dead(folder: str) -> int:
    """Return to the queue folder the messages held by consumers whose process died; how many."""
    root = os.path.join(folder, UNACKED)
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return 0
    mine = _holders.get(root)
    given = 0
    for name in names:
        path = os.path.join(root, name)
        if name.startswith(".") or (mine and mine.pid == os.getpid() and mine.path == path):
            continue  # being set up, or this process's own (closing its lock file drops it)
        given += _give_back(folder, path)
    return given


def _give_back(folder: str, held: str) -> int:
    try:
        fd = os.open(os.path.join(held, LOCK), os.O_RDWR)
    except FileNotFoundError:
        return 0  # given back already, its folder about to go
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # its process is alive
        given = 0
        for name in sorted(os.listdir(held)):
            if not name.endswith(".msg"):
                continue
            path = os.path.join(held, name)
            with open(path, "rb") as handle:
                raw = handle.read()
            payload = parse(raw)
            if payload is not None:
                payload.get("properties", {}).get("delivery_info", {})["redelivered"] = True
                raw = str_to_bytes(dumps(payload))
            write_whole(folder, name, raw)  # its old name: back where it was in the queue
            os.unlink(path)
            given += 1
        os.unlink(os.path.join(held, LOCK))
        os.rmdir(held)
    finally:
        os.close(fd)
    if given:
        log.warning(
            "Gave back %d message(s) taken by a consumer that died (%s).",
            given,
            os.path.basename(held),
        )
    return given


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._held: dict[str, str] = {}  # delivery tag -> its file under unacked/
        self._no_ack_queues: set[str] = set()
        self._next_give_back = 0.0

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
        if time.monotonic() >= self._next_give_back:
            self._next_give_back = time.monotonic() + GIVE_BACK_EVERY_SECONDS
            give_back_from_dead(folder)
        for name in sorted(os.listdir(folder), key=_put_order):
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
            if not self._claim(queue, path, payload):
                continue  # another consumer read it too and claimed it first
            if self.store_processed:
                os.makedirs(self.processed_folder, exist_ok=True)
                write_whole(self.processed_folder, name, raw)
            return payload
        raise Empty()

    def _claim(self, queue: str, path: str, payload: dict[str, Any]) -> bool:
        """Take the message file: delete it, or when the message is to be acknowledged, move
        it into this process's folder until then. False if another consumer took it."""
        tag = payload.get("properties", {}).get("delivery_tag")
        try:
            if queue in self._no_ack_queues or not isinstance(tag, str):
                os.unlink(path)
            else:
                held = os.path.join(holder(os.path.join(self.data_folder_in, UNACKED)).path, "")
                os.rename(path, held + os.path.basename(path))
                self._held[tag] = held + os.path.basename(path)
        except FileNotFoundError:
            return False
        return True

    def _release(self, delivery_tag: str) -> None:
        path = self._held.pop(delivery_tag, None)
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            # A prefetch slot is free: the event loop looks for the next message now, not at
            # its next poll (a short task would otherwise leave its slot idle for up to
            # polling_interval).
            self.connection.deliver_soon()

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._no_ack_queues.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_cancel(self, consumer_tag: str) -> Any:
        self._no_ack_queues.discard(self._tag_to_queue.get(consumer_tag, ""))
        return super().basic_cancel(consumer_tag)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        message = super().basic_get(queue, no_ack, **kwargs)
        if message is not None and no_ack:
            self._release(message.delivery_tag)
        return message

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        self._release(delivery_tag)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue)
        self._release(delivery_tag)

    def _restore(self, message: Any) -> None:
        super()._restore(message)  # a copy back in the queue (a reject, or a worker stopping)
        self._release(message.delivery_tag)

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

    _loop: Any = None
    _connection: Any = None

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        self._loop, self._connection = loop, connection
        loop.call_repeatedly(self.polling_interval, self.deliver_waiting, connection)

    def deliver_soon(self) -> None:
        """Deliver waiting messages on the event loop's next turn (when there is a loop)."""
        if self._loop is not None:
            self._loop.call_soon(self.deliver_waiting, self._connection)

    def deliver_waiting(self, connection: Any) -> None:
        """Deliver the messages waiting, as many as prefetch allows, without blocking."""
        with contextlib.suppress(socket.timeout):
            while True:
                self.drain_events(connection, timeout=0)
