"""Concurrent attempts at one move: exactly one wins, on SQLite and on PostgreSQL alike."""

import threading

import pytest
from django.db import connection

from binaries import lifecycle
from binaries.lifecycle import TransitionRefused
from binaries.models import Binary, BinaryEvent, State
from peridio_console.accounts.actors import Actor
from tests.factories import BinaryFactory

THREADS = 20


@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_of_twenty_concurrent_moves_win():
    binary = BinaryFactory()
    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        try:
            mine = Binary.objects.get(pk=binary.pk)
            barrier.wait(timeout=30)
            try:
                lifecycle.transition(mine, to=State.HASHABLE, actor=Actor.system(f"thread {n}"))
                outcome = "moved"
            except TransitionRefused as exc:
                outcome = "refused" if exc.current == State.HASHABLE else f"refused from {exc}"
            except Exception as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            with lock:
                outcomes.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in threads)
    assert sorted(outcomes) == ["moved"] + ["refused"] * (THREADS - 1)
    binary.refresh_from_db()
    assert binary.state == State.HASHABLE
    events = list(BinaryEvent.objects.filter(binary=binary))
    assert len(events) == 1
    assert (events[0].from_state, events[0].to_state) == (State.UPLOADABLE, State.HASHABLE)
    assert events[0].actor_label.startswith("system: thread ")
