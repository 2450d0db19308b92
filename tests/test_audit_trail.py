"""The audit trail misses nothing: every change writes exactly one event with its action,
actor, source, client address and user agent, and the before/after of what changed; events
are never changed or deleted (the model, and on PostgreSQL a trigger)."""

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from binaries import lifecycle, uploads
from binaries.models import Artifact, ArtifactVersion, BinaryEvent, State
from peridio_console.accounts import audit
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditAction, AuditEvent, EventSource
from peridio_console.accounts.services import organization_create
from peridio_console.core.append_only import AppendOnlyError
from tests.factories import BinaryFactory

pytestmark = pytest.mark.django_db

CLI_AGENT = "peridio-cli/0.9.0 (peridio-console)"


def events() -> list:
    """Every event so far, of both kinds, oldest first."""
    both = list(AuditEvent.objects.all()) + list(BinaryEvent.objects.all())
    return sorted(both, key=lambda e: (e.at, e.pk))


def new_events(before: list) -> list:
    seen = {(type(e), e.pk) for e in before}
    return [e for e in events() if (type(e), e.pk) not in seen]


# --- Each change from each source: one event, the right action, actor, source, before/after


def test_it_records_an_artifact_and_its_version_created_changed_and_deleted_through_the_api(
    engineer_api,
):
    user = engineer_api.membership.user
    before = events()
    created = engineer_api.post("/artifacts", {"name": "fw", "description": "first"}).json()
    prn = created["artifact"]["prn"]
    [made] = new_events(before)
    assert (made.action, made.object_prn, made.source) == ("artifact.created", prn, "api")
    assert made.actor_user == user and made.actor_api_key is not None
    assert made.ip == "127.0.0.1"
    assert made.details["changes"] == {
        "name": [None, "fw"],
        "description": [None, "first"],
        "custom_metadata": [None, {}],
    }

    before = events()
    engineer_api.patch(f"/artifacts/{prn}", {"description": "second", "name": "fw"})
    [changed] = new_events(before)
    assert changed.action == "artifact.updated"
    assert changed.details == {"changes": {"description": ["first", "second"]}}

    before = events()
    response = engineer_api.post("/artifact_versions", {"artifact_prn": prn, "version": "1.0"})
    version_prn = response.json()["artifact_version"]["prn"]
    [version_made] = new_events(before)
    assert version_made.action == "artifact_version.created"
    assert version_made.object_prn == version_prn
    assert version_made.details["changes"]["version"] == [None, "1.0"]

    before = events()
    engineer_api.patch(f"/artifact_versions/{version_prn}", {"description": "notes"})
    [version_changed] = new_events(before)
    assert version_changed.action == "artifact_version.updated"
    assert version_changed.details == {"changes": {"description": ["", "notes"]}}

    before = events()
    assert engineer_api.delete(f"/artifacts/{prn}").status_code == 204
    deleted = new_events(before)
    assert [(e.action, e.object_prn) for e in deleted] == [
        ("artifact_version.deleted", version_prn),
        ("artifact.deleted", prn),
    ]
    assert deleted[1].details["changes"]["name"] == ["fw", None]
    assert not Artifact.objects.exists() and not ArtifactVersion.objects.exists()


def test_it_records_nothing_for_an_edit_that_changes_nothing_or_is_refused(engineer_api):
    prn = engineer_api.post("/artifacts", {"name": "fw"}).json()["artifact"]["prn"]
    before = events()

    assert engineer_api.patch(f"/artifacts/{prn}", {"name": "fw"}).status_code == 200
    assert engineer_api.patch(f"/artifacts/{prn}", {"name": ""}).status_code == 400

    assert new_events(before) == []


def test_it_names_the_cli_as_the_source_when_the_peridio_cli_calls(engineer_api):
    before = events()

    response = engineer_api.post("/artifacts", {"name": "fw"}, HTTP_USER_AGENT=CLI_AGENT)

    assert response.status_code == 201
    [made] = new_events(before)
    assert (made.source, made.user_agent) == ("cli", CLI_AGENT)


def test_it_records_a_binary_edit_with_before_and_after(engineer_api, version):
    binary = BinaryFactory(artifact_version=version, description="old")
    before = events()

    response = engineer_api.client.patch(
        f"/v1/binaries/{binary.prn}",
        '{"description": "new", "custom_metadata": {"a": 1}}',
        content_type="application/json",
        HTTP_USER_AGENT="curl/8.5.0",
    )

    assert response.status_code == 200, response.content
    [edit] = new_events(before)
    assert isinstance(edit, BinaryEvent)
    assert (edit.action, edit.source, edit.user_agent) == ("binary.updated", "api", "curl/8.5.0")
    assert edit.from_state == edit.to_state == State.UPLOADABLE
    assert edit.organization_id == binary.organization_id
    assert edit.details == {
        "changes": {"description": ["old", "new"], "custom_metadata": [{}, {"a": 1}]}
    }


def test_it_records_a_move_with_its_state_before_and_after(engineer_api, version):
    binary = BinaryFactory(artifact_version=version, state=State.SIGNABLE)
    before = events()

    response = engineer_api.delete(f"/binaries/{binary.prn}", {"reason": "CVE-1"})

    assert response.status_code == 204
    [destroyed] = new_events(before)
    assert destroyed.action == "binary.destroyed"
    assert destroyed.reason == "CVE-1"
    assert destroyed.details["changes"] == {"state": ["signable", "destroyed"]}
    assert (destroyed.source, destroyed.ip) == ("api", "127.0.0.1")


def test_it_records_console_changes_with_the_console_as_source(engineer):
    before = events()

    response = engineer.post(
        reverse("console:artifact_create"), {"name": "from-console"}, HTTP_USER_AGENT="Firefox"
    )

    assert response.status_code == 302
    [made] = new_events(before)
    assert (made.action, made.source, made.user_agent) == ("artifact.created", "console", "Firefox")
    assert made.ip == "127.0.0.1" and made.actor_api_key is None


def test_it_records_a_task_as_the_source_of_what_the_system_does(version):
    binary = BinaryFactory(artifact_version=version)
    before = events()

    uploads.discard_upload(binary, actor=Actor.system("janitor"), reason="abandoned")

    [cleaned] = new_events(before)
    assert (cleaned.action, cleaned.source) == ("binary.upload_cleaned", "task")
    assert cleaned.actor_label == "system: janitor" and cleaned.ip is None


def test_it_records_what_staff_do_in_the_admin_as_the_admin(staff_user, org, version):
    """The admin records its edits through these helpers with Actor.via("admin", agent)."""
    staff = Actor.for_user(staff_user).via("admin", "Mozilla/5.0")
    binary = BinaryFactory(artifact_version=version, state=State.SIGNABLE)

    lifecycle.transition(binary, to=State.DESTROYED, actor=staff, reason="support ticket 12")
    audit.record(
        organization=org,
        actor=staff,
        action=AuditAction.ARTIFACT_UPDATED,
        object_prn=version.artifact.prn,
        details={"changes": audit.changes({"name": "a"}, {"name": "b"})},
    )

    moved = BinaryEvent.objects.get(action="binary.destroyed")
    edited = AuditEvent.objects.get(action="artifact.updated")
    for event in (moved, edited):
        assert (event.source, event.user_agent, event.actor_user) == (
            "admin",
            "Mozilla/5.0",
            staff_user,
        )
    assert edited.details == {"changes": {"name": ["a", "b"]}}


def test_it_records_the_creation_of_an_organization():
    org, _, _ = organization_create(name="Acme", admin_username="founder")

    [created] = AuditEvent.objects.filter(organization=org)
    assert created.action == "organization.created"
    assert created.object_prn == org.prn
    assert created.source == "task"
    assert created.details == {
        "changes": {"name": [None, "Acme"], "slug": [None, org.slug]},
        "admin": "founder",
    }


def test_it_refuses_an_action_that_is_not_in_the_list(org):
    with pytest.raises(ValueError):
        audit.record(organization=org, actor=Actor.system("x"), action="binary.guessed")
    assert not AuditEvent.objects.exists()


def test_the_consoles_action_and_source_filters_are_the_enums():
    from binaries.console.forms import AuditFilterForm

    form = AuditFilterForm()
    assert [value for value, _ in form.fields["action"].choices][1:] == AuditAction.values
    assert [value for value, _ in form.fields["source"].choices][1:] == EventSource.values


# --- Append-only --------------------------------------------------------------------------


@pytest.fixture
def both_kinds(org, version, actor):
    binary = BinaryFactory(artifact_version=version)
    lifecycle.record_creation(binary, actor=actor)
    audit.record(organization=org, actor=actor, action=AuditAction.API_KEY_CREATED)
    return BinaryEvent.objects.get(), AuditEvent.objects.get()


def test_it_refuses_to_change_or_delete_an_event_through_the_orm(both_kinds):
    for event in both_kinds:
        model = type(event)
        event.actor_label = "someone else"
        with pytest.raises(AppendOnlyError, match="append-only: they cannot be updated"):
            event.save()
        with pytest.raises(AppendOnlyError, match="cannot be deleted"):
            event.delete()
        with pytest.raises(AppendOnlyError):
            model.objects.filter(pk=event.pk).update(actor_label="x")
        with pytest.raises(AppendOnlyError):
            model.objects.filter(pk=event.pk).delete()
        with pytest.raises(AppendOnlyError):
            model.objects.bulk_update([event], ["actor_label"])
        assert model.objects.get(pk=event.pk).actor_label != "someone else"


def test_a_deleted_user_leaves_their_events_with_their_name(both_kinds, actor):
    get_user_model().objects.filter(pk=actor.user.pk).delete()

    for event in both_kinds:
        event = type(event).objects.get(pk=event.pk)
        assert event.actor_user is None
        assert event.actor_label == actor.label


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_the_database_refuses_to_change_or_delete_an_event_on_postgresql(both_kinds):
    binary_event, audit_event = both_kinds
    for table, pk in (
        ("binaries_binaryevent", binary_event.pk),
        ("peridio_console_auditevent", audit_event.pk),
    ):
        for sql in (
            f"UPDATE {table} SET actor_label = 'x' WHERE id = %s",  # noqa: S608
            f"UPDATE {table} SET actor_user_id = NULL, actor_label = 'x' WHERE id = %s",  # noqa: S608
            f"DELETE FROM {table} WHERE id = %s",  # noqa: S608
        ):
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(sql, [pk])
        with transaction.atomic(), connection.cursor() as cursor:  # what SET_NULL does
            cursor.execute(f"UPDATE {table} SET actor_user_id = NULL WHERE id = %s", [pk])  # noqa: S608
    assert BinaryEvent.objects.get().actor_user is None
