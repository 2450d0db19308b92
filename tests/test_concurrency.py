"""50 concurrent clients fight over one binary through gunicorn (gthread) on PostgreSQL.

Each client (a thread with its own httpx.Client) uploads the content, marks the binary
hashable, resets it, signs it and, late in the run, destroys it, in an order of its own. The
server must answer every request with no 5xx, end in a state the lifecycle table allows, and
record exactly one BinaryEvent per move: the events form a chain (each event's from_state is
the previous event's to_state), and every move a client was told succeeded is in it once.

It runs on a private database of the local PostgreSQL server (created, migrated and dropped
here) whatever database the rest of the suite uses. Without PostgreSQL it skips, except under
CI=true, where that is a failure.
"""

import hashlib
import itertools
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from binaries.lifecycle import ALLOWED
from binaries.storage import tokens
from tests.server_helpers import Gunicorn, bootstrap, private_database, require_postgres, server_env
from tests.signing_helpers import generate, public_pem, sign

pytestmark = [pytest.mark.slow]

CLIENTS = 50
UPLOADERS = 3
ROUNDS = 12  # actions per client (an upload is up to three requests)
CONTENT = hashlib.sha256(b"peridio").digest() * 2048  # 64 KiB, the same bytes every time


@dataclass
class Outcome:
    client: int
    action: str
    status: int | str  # an HTTP status, or the transport error
    code: str = ""


class Fight:
    def __init__(self, base_url: str, api_key: str, binary_prn: str, key_prn: str, sig: str):
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.prn = binary_prn
        self.key_prn = key_prn
        self.signature = sig
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(CLIENTS)

    def record(self, client: int, action: str, response: httpx.Response | str) -> None:
        if isinstance(response, str):
            outcome = Outcome(client, action, response)
        else:
            code = ""
            if response.content and response.headers.get("content-type", "").startswith(
                "application/json"
            ):
                code = (response.json().get("error") or {}).get("code", "")
            outcome = Outcome(client, action, response.status_code, code)
        with self.lock:
            self.outcomes.append(outcome)

    def act(self, http: httpx.Client, client: int, action: str) -> None:
        path = f"/v1/binaries/{self.prn}"
        try:
            if action == "upload":
                # A resuming client: it uploads only when the part is not there yet.
                parts = http.get(f"{path}/parts")
                self.record(client, "list parts", parts)
                listed = parts.json().get("binary_parts", []) if parts.status_code == 200 else []
                if any(p["index"] == 1 and p["state"] == "valid" for p in listed):
                    return
                declared = http.put(
                    f"{path}/parts/1",
                    json={"hash": hashlib.sha256(CONTENT).hexdigest(), "size": len(CONTENT)},
                )
                self.record(client, "declare", declared)
                if declared.status_code == 201:
                    url = declared.json()["binary_part"]["presigned_upload_url"]
                    assert url.startswith(self.base_url), url
                    # Upload URLs are bearer credentials: no API key goes to them.
                    self.record(client, "upload", httpx.put(url, content=CONTENT, timeout=60))
            elif action == "hashable":
                self.record(client, action, http.patch(path, json={"state": "hashable"}))
            elif action == "reset":
                body = {"state": "uploadable", "reason": f"client {client} resets"}
                self.record(client, action, http.patch(path, json=body))
            elif action == "sign":
                body = {
                    "binary_prn": self.prn,
                    "signing_key_prn": self.key_prn,
                    "signature": self.signature,
                }
                self.record(client, action, http.post("/v1/binary_signatures", json=body))
            elif action == "destroy":
                reason = f"client {client} destroys"
                self.record(client, action, http.delete(path, params={"reason": reason}))
        except httpx.HTTPError as exc:
            self.record(client, action, f"{type(exc).__name__}: {exc}")

    def client(self, n: int) -> None:
        """Clients 0-2 upload the content (resuming: only when it is not there); the others
        mark hashable, sign and, at the end, destroy (one in five also resets), each in an
        order of its own."""
        rng = random.Random(n)
        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=60) as http:
            self.barrier.wait(timeout=60)
            for round_ in range(ROUNDS):
                if n < UPLOADERS:
                    choices = ["upload"]
                else:
                    # Early on the binary goes round uploadable > hashable > signable >
                    # uploadable; then it gets signed; at the end destroyed.
                    choices = ["hashable", "hashable"]
                    if round_ < ROUNDS // 2 and n % 5 == 0:  # a reset wipes the upload
                        choices += ["reset"]
                    if round_ >= 3:
                        choices += ["sign"]
                    if round_ >= ROUNDS - 2:
                        choices += ["destroy"]
                self.act(http, n, rng.choice(choices))
                time.sleep(rng.uniform(0, 0.05))

    def run(self) -> float:
        threads = [threading.Thread(target=self.client, args=(n,)) for n in range(CLIENTS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(thread.is_alive() for thread in threads), "a client hung"
        return time.monotonic() - started


def events_of(database_url: str, prn: str) -> tuple[str, list[dict[str, Any]], int]:
    uid = prn.rsplit(":", 1)[1]
    with psycopg.connect(database_url) as conn:
        binary_id, state = conn.execute(
            "SELECT id, state FROM binaries_binary WHERE uuid = %s", (uid,)
        ).fetchone()
        rows = conn.execute(
            "SELECT from_state, to_state, actor_label, actor_api_key_id, details "
            "FROM binaries_binaryevent WHERE binary_id = %s ORDER BY id",
            (binary_id,),
        ).fetchall()
        counted = conn.execute(
            "SELECT count(*) FROM binaries_binarysignature "
            "WHERE binary_id = %s AND revoked_at IS NULL",
            (binary_id,),
        ).fetchone()
        assert counted is not None
        live_signatures = counted[0]
    names = ("from_state", "to_state", "actor_label", "api_key", "details")
    return state, [dict(zip(names, row, strict=True)) for row in rows], live_signatures


def check_chain(events: list[dict[str, Any]]) -> list[str]:
    problems = []
    if not events or (events[0]["from_state"], events[0]["to_state"]) != ("", "uploadable"):
        problems.append(f"the first event is not the creation: {events[:1]}")
    for before, event in itertools.pairwise(events):
        move = (event["from_state"], event["to_state"])
        if event["from_state"] != before["to_state"]:
            problems.append(f"{move} follows an event that ended in {before['to_state']}")
        # from == to: an event that records something other than a move (a reset of an
        # upload that discards its parts, a re-queue); anything else must be in the table.
        same = event["from_state"] == event["to_state"]
        if not same and event["to_state"] not in ALLOWED.get(event["from_state"], frozenset()):
            problems.append(f"{move} is not a move the lifecycle table allows")
    return problems


def binary_over_http(api: httpx.Client, artifact: str, target: str, hash: str, size: int) -> str:
    """An artifact, its version 1.0.0 and a binary, made through the API; the binary's PRN."""
    made = api.post("/v1/artifacts", json={"name": artifact}).json()["artifact"]
    version = api.post(
        "/v1/artifact_versions", json={"artifact_prn": made["prn"], "version": "1.0.0"}
    ).json()["artifact_version"]
    created = api.post(
        "/v1/binaries",
        json={
            "artifact_version_prn": version["prn"],
            "target": target,
            "hash": hash,
            "size": size,
        },
    )
    assert created.status_code == 201, created.text
    return created.json()["binary"]["prn"]


@pytest.fixture
def served(tmp_path):
    """gunicorn (2 gthread workers x 12 threads) on a private PostgreSQL database."""
    server = require_postgres()
    with private_database(server, "h9_concurrency") as database_url:
        env = server_env(tmp_path / "var", database_url)
        api_key = bootstrap(env)
        gunicorn = Gunicorn(env, tmp_path / "gunicorn.log", workers=2, threads=12).start()
        try:
            yield gunicorn, api_key, database_url
        finally:
            gunicorn.stop()


def test_it_keeps_one_binary_consistent_under_50_conflicting_clients(served):
    gunicorn, api_key, database_url = served
    private = generate("ed25519")
    signature = sign(private, CONTENT).hex()
    with httpx.Client(
        base_url=gunicorn.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    ) as api:
        prn = binary_over_http(
            api, "contested", "aarch64-linux-gnu", hashlib.sha256(CONTENT).hexdigest(), len(CONTENT)
        )
        key = api.post("/v1/signing_keys", json={"name": "ci", "value": public_pem(private)})
        assert key.status_code == 201, key.text
        key_prn = key.json()["signing_key"]["prn"]

    fight = Fight(gunicorn.url, api_key, prn, key_prn, signature)
    elapsed = fight.run()

    outcomes = fight.outcomes
    print(f"\nconcurrency: {len(outcomes)} requests from {CLIENTS} clients in {elapsed:.1f} s")
    codes = Counter((o.action, o.status, o.code) for o in outcomes)
    print("  " + ", ".join(f"{a} {s} {c}: {n}" for (a, s, c), n in sorted(codes.items(), key=str)))
    failed = [o for o in outcomes if isinstance(o.status, str) or o.status >= 500]
    if failed:
        (Path(tempfile.gettempdir()) / "concurrency-gunicorn.log").write_text(gunicorn.output())
    assert not failed, (failed[:10], gunicorn.output()[-5000:])
    assert "Traceback" not in gunicorn.output(), gunicorn.output()[-5000:]

    state, events, live_signatures = events_of(database_url, prn)
    print(
        f"  final state {state}; {len(events)} events: "
        + " ".join(f"{e['from_state'] or '(new)'}>{e['to_state']}" for e in events)
    )
    assert state in ALLOWED
    assert not check_chain(events), check_chain(events)
    assert events[-1]["to_state"] == state

    # Every move a client was told succeeded is in the chain exactly once.
    moves = Counter((e["from_state"], e["to_state"], e["api_key"] is not None) for e in events[1:])
    ok = Counter(o.action for o in outcomes if o.status in (200, 201, 204))
    assert ok["hashable"] == moves[("uploadable", "hashable", True)]
    assert ok["reset"] == sum(
        n for (_, to, by_client), n in moves.items() if to == "uploadable" and by_client
    )
    assert ok["destroy"] == sum(n for (_, to, _), n in moves.items() if to == "destroyed") <= 1
    assert sum(n for (_, to, _), n in moves.items() if to == "signed") <= ok["sign"]
    # Moves the verifier made: each hashing run started from a hashable binary.
    assert moves[("hashable", "hashing", False)] <= ok["hashable"]
    if state == "signed":
        assert live_signatures >= 1
    if state == "destroyed":
        assert events[-1]["to_state"] == "destroyed"
    # Refusals are conflicts with a reason, never anything else.
    refused = Counter((o.action, o.status, o.code) for o in outcomes if o.status in range(400, 500))
    assert {status for (_, status, _) in refused} <= {409, 410, 422}, refused
    # The run did contest the binary: moves were made and others refused. (Which moves won
    # is up to the race: a reset of the still-uploadable binary may discard its parts first.)
    assert sum(ok.values()) >= 1 and sum(refused.values()) >= 1


@pytest.mark.django_db
def test_it_answers_409_when_a_part_declared_at_the_same_moment_is_gone_again(
    engineer_api, version, actor, monkeypatch
):
    """Found by the run above: two first declarations of a part race, the loser's insert hits
    the unique index, and a reset deletes the winner's row before the loser reads it back;
    Django re-raises the IntegrityError (a 500). Now a 409 that says to declare again."""
    from django.db import IntegrityError

    from binaries.models import BinaryPart
    from tests.upload_helpers import new_binary

    binary = new_binary(version, actor, CONTENT)

    def lost_race(*args: Any, **kwargs: Any) -> Any:
        raise IntegrityError('duplicate key value violates unique constraint "one_part_per_index"')

    monkeypatch.setattr(BinaryPart.objects, "update_or_create", lost_race)
    body = {"hash": hashlib.sha256(CONTENT).hexdigest(), "size": len(CONTENT)}
    response = engineer_api.put(f"/binaries/{binary.prn}/parts/1", body)
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "part_busy",
        "message": "Part 1 was declared by another request at the same moment; declare it again.",
        "field": None,
    }
    monkeypatch.undo()
    assert engineer_api.put(f"/binaries/{binary.prn}/parts/1", body).status_code == 201


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_answers_409_when_a_reset_removes_the_parts_during_completion(
    client, backend, engineer_api, version, actor, monkeypatch
):
    """Found by the run above: a reset (which deletes the parts' bytes without the
    completion lock) between assembling the object and renaming it into place made the
    rename fail with FileNotFoundError (a 500). Now a 409; the binary stays uploadable."""
    import os

    from tests.upload_helpers import new_binary, upload_all

    binary = new_binary(version, actor, CONTENT)
    upload_all(client, binary, CONTENT)
    real_ftruncate = os.ftruncate

    def reset_meanwhile(fd: int, length: int) -> None:
        real_ftruncate(fd, length)
        backend.abort(binary)  # what a concurrent reset does to the bytes

    monkeypatch.setattr(os, "ftruncate", reset_meanwhile)
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    monkeypatch.undo()
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "part_busy"
    assert "reset while it was being completed" in response.json()["error"]["message"]
    binary.refresh_from_db()
    assert binary.state == "uploadable"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_answers_superseded_when_a_reset_removes_a_part_while_its_bytes_arrive(
    backend, version, actor
):
    """Found by the run above: the part's row deleted by a reset while its bytes streamed in
    made the upload endpoint fail reading it back (a 500). Now the 409 'superseded'."""
    import io

    from binaries import uploads
    from binaries.models import BinaryPart
    from peridio_console.core.errors import Conflict
    from tests.upload_helpers import declare, new_binary

    binary = new_binary(version, actor, CONTENT)
    declared = declare(binary, 1, CONTENT)
    payload = tokens.read_part_token(declared.upload_url.rsplit("/", 1)[1])

    class ResetWhileReading(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            BinaryPart.objects.filter(binary=binary).delete()  # what a reset does meanwhile
            return super().read(size)

    with pytest.raises(Conflict) as refused:
        uploads.part_receive(
            token_payload=payload, stream=ResetWhileReading(CONTENT), length=len(CONTENT)
        )
    assert refused.value.code == "superseded"
    assert not BinaryPart.objects.filter(binary=binary).exists()


def test_it_takes_parts_declared_side_by_side_without_deadlocks(served):
    """Found in CI: the console uploads four parts at a time, and on PostgreSQL two
    declarations of different parts of one binary locked each other's rows in opposite orders
    (deadlock detected: a 503, then a retry). Now every declaration locks the binary first."""
    gunicorn, api_key, _ = served
    parts, rounds = 8, 6
    size = 5 * 1024 * 1024
    with httpx.Client(
        base_url=gunicorn.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    ) as api:
        prn = binary_over_http(api, "side-by-side", "x86_64-linux-gnu", "0" * 64, parts * size)

    barrier = threading.Barrier(parts)
    statuses: list[tuple[int, int | str]] = []
    lock = threading.Lock()

    def declarer(index: int) -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=gunicorn.url, headers=headers, timeout=60) as http:
            barrier.wait(timeout=60)
            for round_ in range(rounds):
                body = {"hash": f"{index:02x}{round_:02x}".ljust(64, "a"), "size": size}
                try:
                    answer: int | str = http.put(
                        f"/v1/binaries/{prn}/parts/{index}", json=body
                    ).status_code
                except httpx.HTTPError as exc:
                    answer = f"{type(exc).__name__}: {exc}"
                with lock:
                    statuses.append((index, answer))

    threads = [threading.Thread(target=declarer, args=(n,)) for n in range(1, parts + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    assert len(statuses) == parts * rounds
    assert {answer for _, answer in statuses} == {201}, (
        Counter(answer for _, answer in statuses),
        gunicorn.output()[-3000:],
    )
    assert "deadlock" not in gunicorn.output()
