"""The embedded broker (peridio_console/broker.py): a consumer never reads half a message."""

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from queue import Empty

import kombu
import pytest
from kombu.utils.json import dumps

from peridio_console import broker
from tests.server_helpers import ROOT, manage, server_env

QUEUE = "celery"
PAYLOAD = {
    "body": "eyJoZWxsbyI6ICJ3b3JsZCJ9",
    "content-encoding": "utf-8",
    "content-type": "application/json",
    "headers": {},
    "properties": {
        "body_encoding": "base64",
        "delivery_info": {"exchange": "", "routing_key": QUEUE},
        "delivery_tag": "c0ffee",
    },
}


@pytest.fixture
def connection(tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    options = {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
    }
    with kombu.Connection(
        "filesystem://", transport="peridio_console.broker:Transport", transport_options=options
    ) as conn:
        yield conn


@pytest.fixture
def channel(connection):
    return connection.default_channel


@pytest.fixture
def queue_dir(tmp_path):
    return tmp_path / "queue"


def stock_message_name(age: float = 0.0) -> str:
    """The name kombu's own `_put` gives a message (`age` seconds ago), before it writes a
    byte into it."""
    return f"{round((time.monotonic() - age) * 1000)}_{uuid.uuid4()}.{QUEUE}.msg"


def files_in(folder: Path) -> list[str]:
    """The files in a folder (a queue's: its messages and anything being written)."""
    return sorted(path.name for path in folder.iterdir() if path.is_file())


def test_it_delivers_in_the_order_put_across_a_power_of_ten(channel, monkeypatch):
    # Names sort as text: an unpadded 999 would come after 1000.
    for n, now in enumerate((0.999, 1.0)):
        monkeypatch.setattr(broker.time, "monotonic", lambda now=now: now)
        channel._put(QUEUE, {**PAYLOAD, "n": n})

    assert [channel._get(QUEUE)["n"] for _ in range(2)] == [0, 1]


@pytest.mark.parametrize("written", [0.0, 0.5], ids=["empty", "half-written"])
def test_it_leaves_a_message_being_written_and_reads_it_once_whole(channel, queue_dir, written):
    data = dumps(PAYLOAD).encode()
    path = queue_dir / stock_message_name()
    path.write_bytes(data[: int(len(data) * written)])  # a stock producer between open and write

    with pytest.raises(Empty):
        channel._get(QUEUE)

    assert path.exists()  # neither lost nor moved
    path.write_bytes(data)
    assert channel._get(QUEUE) == PAYLOAD
    assert not path.exists()
    with pytest.raises(Empty):
        channel._get(QUEUE)


def test_it_shows_a_put_message_to_consumers_only_once_it_is_whole(channel, queue_dir, monkeypatch):
    replace = os.replace
    seen_before_rename = []

    def rename_into_queue(source, target):
        seen_before_rename.append((Path(source).stat().st_size, sorted(os.listdir(queue_dir))))
        with pytest.raises(Empty):
            channel._get(QUEUE)  # the whole message is on disk, under a name no one takes
        replace(source, target)

    monkeypatch.setattr(os, "replace", rename_into_queue)
    channel._put(QUEUE, PAYLOAD)

    ((size, listing),) = seen_before_rename
    assert size == len(dumps(PAYLOAD).encode())
    assert len(listing) == 1 and listing[0].startswith(".")
    assert channel._get(QUEUE) == PAYLOAD
    assert files_in(queue_dir) == []  # neither the message nor a temporary file


def test_it_moves_aside_a_file_that_stays_unreadable_and_goes_on(channel, queue_dir, caplog):
    age = broker.UNREADABLE_AFTER_SECONDS + 1
    broken = queue_dir / stock_message_name(age)  # listed before the next message
    broken.write_bytes(b'{"body": ')
    old = time.time() - age
    os.utime(broken, (old, old))
    channel._put(QUEUE, PAYLOAD)

    with caplog.at_level(logging.ERROR, logger="peridio_console.broker"):
        assert channel._get(QUEUE) == PAYLOAD

    aside = queue_dir / "unreadable" / broken.name
    assert aside.read_bytes() == b'{"body": '
    assert not broken.exists()
    assert caplog.messages == [
        f"The broker message file {broken} could not be parsed for 60 s; moved it to {aside}"
    ]
    with pytest.raises(Empty):
        channel._get(QUEUE)


def test_it_delivers_each_message_once_to_consumers_racing_a_producer(connection, channel):
    count = 400
    received: list[dict] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def consume() -> None:
        mine = connection.clone()
        try:
            own = mine.channel()
            while not (done.is_set() and own._size(QUEUE) == 0):
                try:
                    received.append(own._get(QUEUE))
                except Empty:
                    time.sleep(0.001)
        except BaseException as exc:
            failures.append(exc)
        finally:
            mine.release()

    consumers = [threading.Thread(target=consume) for _ in range(3)]
    for thread in consumers:
        thread.start()
    for n in range(count):
        channel._put(QUEUE, {**PAYLOAD, "n": n})
    done.set()
    for thread in consumers:
        thread.join(timeout=30)

    assert failures == []
    assert sorted(message["n"] for message in received) == list(range(count))


def test_it_carries_messages_through_kombu(connection):
    with connection.SimpleQueue("whole") as queue:
        queue.put({"binary_id": 7})
        message = queue.get(timeout=5)
        message.ack()

    assert message.payload == {"binary_id": 7}


@pytest.mark.slow
def test_it_is_the_transport_of_the_default_broker(tmp_path):
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}")  # CELERY_BROKER_URL unset
    code = (
        "from peridio_console.celery import app; print(type(app.connection_for_write().transport))"
    )

    output = manage(env, "shell", "--verbosity", "0", "--command", code)

    assert output.strip() == "<class 'peridio_console.broker.Transport'>"


def test_it_never_shows_a_publisher_an_empty_exchange_table(connection, channel, tmp_path):
    table = tmp_path / "control" / "tasks.exchange"
    stop = time.monotonic() + 1.0
    failures: list[BaseException] = []

    def publish_lookups() -> None:
        mine = connection.clone()
        try:
            own = mine.channel()
            while time.monotonic() < stop:
                own.get_table("tasks")
        except BaseException as exc:
            failures.append(exc)
        finally:
            mine.release()

    reader = threading.Thread(target=publish_lookups)
    reader.start()
    while time.monotonic() < stop:
        table.unlink(missing_ok=True)  # each bind creates the table anew, as at a first start
        channel._queue_bind("tasks", "tasks", "", "tasks")
    reader.join(timeout=30)

    assert failures == []
    assert [tuple(row) for row in channel.get_table("tasks")] == [("tasks", "", "tasks")]


class Loop:
    """What a Celery worker's event loop offers a transport: timers."""

    def __init__(self):
        self.repeated: list[tuple] = []
        self.soon: list[tuple] = []

    def call_repeatedly(self, delay, callback, *args):
        self.repeated.append((delay, callback, args))

    def call_soon(self, callback, *args):
        self.soon.append((callback, args))


def test_it_delivers_waiting_messages_from_the_worker_s_event_loop(connection):
    # Asynchronous: Celery's prefork pool then gives each process a pipe of its own.
    assert connection.transport.implements.asynchronous is True
    queue = kombu.Queue("loop")
    received = []

    def on_message(body, message):
        received.append(body)
        message.ack()

    with connection.Consumer(queue, callbacks=[on_message]):
        producer = connection.Producer()
        for n in range(3):
            producer.publish({"n": n}, routing_key="loop", declare=[queue])
        loop = Loop()
        connection.transport.register_with_event_loop(connection.connection, loop)
        ((delay, poll, args),) = loop.repeated
        poll(*args)
        poll(*args)  # nothing left: returns at once

    assert delay == connection.transport.polling_interval
    assert sorted(body["n"] for body in received) == [0, 1, 2]  # in the same ms: any order


def test_an_acknowledgement_looks_for_the_next_message_at_once(connection):
    # A slot freed by a short task is filled on the loop's next turn, not at the next poll.
    queue = kombu.Queue("soon")
    received = []
    loop = Loop()
    with connection.Consumer(queue, callbacks=[lambda body, message: received.append(message)]):
        connection.Producer().publish({"n": 1}, routing_key="soon", declare=[queue])
        connection.transport.register_with_event_loop(connection.connection, loop)
        ((_, poll, args),) = loop.repeated
        poll(*args)
        assert len(received) == 1 and loop.soon == []
        received[0].ack()
        ((callback, soon_args),) = loop.soon
        assert callback == connection.transport.deliver_waiting
        connection.Producer().publish({"n": 2}, routing_key="soon", declare=[queue])
        callback(*soon_args)
    assert [message.payload["n"] for message in received] == [1, 2]


# --- Messages taken and not yet acknowledged ---------------------------------------------

HOLD_ONE = """
import sys, time, kombu
options = {{"data_folder_in": {queue!r}, "data_folder_out": {queue!r},
            "control_folder": {control!r}, "store_processed": False}}
with kombu.Connection("filesystem://", transport="peridio_console.broker:Transport",
                      transport_options=options) as conn:
    with conn.SimpleQueue({name!r}) as queue:
        print("connected", flush=True)
        message = queue.get(timeout=10)  # taken, never acknowledged
        print(message.payload["n"], flush=True)
        time.sleep(120)
"""


def held_files(queue_dir: Path) -> list[str]:
    """The message files consumers hold (taken, not yet acknowledged), in every holder."""
    return sorted(path.name for path in (queue_dir / "unacked").glob("*/*.msg"))


@pytest.fixture
def holding(tmp_path, queue_dir):
    """Start a process that takes one message of a queue and keeps it unacknowledged."""
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        code = HOLD_ONE.format(queue=str(queue_dir), control=str(tmp_path / "control"), name=name)
        proc = subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "connected\n"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_it_gives_back_at_once_what_a_killed_consumer_held_and_not_before(
    connection, queue_dir, holding, caplog
):
    with connection.SimpleQueue("held") as queue:
        queue.put({"n": 1})
        holder = holding("held")
        assert holder.stdout is not None and holder.stdout.readline() == "1\n"
        assert len(held_files(queue_dir)) == 1

        with pytest.raises(Empty):  # its process is alive: the message is its own
            queue.get(timeout=broker.GIVE_BACK_EVERY_SECONDS + 1.5)

        holder.kill()
        holder.wait(timeout=10)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="peridio_console.broker"):
            message = queue.get(timeout=broker.GIVE_BACK_EVERY_SECONDS + 1.5)
        waited = time.monotonic() - started
        message.ack()

    assert message.payload == {"n": 1}
    assert message.delivery_info["redelivered"] is True
    assert waited <= broker.GIVE_BACK_EVERY_SECONDS + 1, waited  # not the sweeper's minutes
    assert [m for m in caplog.messages if m.startswith("Gave back 1 message(s)")]
    assert held_files(queue_dir) == []
    assert [p.name for p in (queue_dir / "unacked").iterdir()] == [
        Path(broker.holder(str(queue_dir / "unacked")).path).name
    ]  # the dead holder's folder is gone; this process's own remains


def test_a_new_consumer_takes_back_a_dead_one_s_messages_when_it_starts(connection, holding):
    with connection.SimpleQueue("restart") as queue:  # this one only publishes
        queue.put({"n": 2})
    holder = holding("restart")
    assert holder.stdout is not None and holder.stdout.readline() == "2\n"
    holder.kill()
    holder.wait(timeout=10)

    fresh = holding("restart")  # as the worker that serve starts in its place
    started = time.monotonic()
    assert fresh.stdout is not None and fresh.stdout.readline() == "2\n"
    # At its first look at the queue, not after GIVE_BACK_EVERY_SECONDS.
    assert time.monotonic() - started < broker.GIVE_BACK_EVERY_SECONDS - 1


def test_it_forgets_a_message_once_acknowledged_rejected_or_taken_without_ack(
    connection, queue_dir
):
    with connection.SimpleQueue("done") as simple:
        queue = simple.queue
        for n in range(3):
            simple.put({"n": n})
        first = simple.get(timeout=5)
        assert len(held_files(queue_dir)) == 1
        first.ack()
        assert held_files(queue_dir) == []

        second = simple.get(timeout=5)
        second.reject(requeue=True)  # back in the queue, no longer held
        assert held_files(queue_dir) == []
        assert len(files_in(queue_dir)) == 2

    received = []
    with connection.Consumer(queue, no_ack=True, callbacks=[lambda body, m: received.append(body)]):
        connection.drain_events(timeout=5)
        connection.drain_events(timeout=5)

    left = {0, 1, 2} - {first.payload["n"]}  # in one millisecond: any order
    assert sorted(body["n"] for body in received) == sorted(left)
    assert held_files(queue_dir) == []
    assert files_in(queue_dir) == []


def test_a_stopping_consumer_puts_back_what_it_held(connection, queue_dir):
    mine = connection.clone()
    with mine.SimpleQueue("stop") as queue:
        queue.put({"n": 3})
        queue.get(timeout=5)  # not acknowledged
        assert len(held_files(queue_dir)) == 1
    mine.release()  # as a worker's warm shutdown closes its channel

    assert held_files(queue_dir) == []
    with connection.SimpleQueue("stop") as queue:
        assert queue.get(timeout=5).payload == {"n": 3}
