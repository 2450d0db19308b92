"""The Django admin: support staff can see everything; state moves only through the lifecycle."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse

from binaries.models import Binary, BinaryEvent, State
from tests.factories import ApiKeyFactory, MembershipFactory, UserFactory, binary_in_state

REGISTERED = sorted(
    f"{model._meta.app_label}.{model._meta.model_name}" for model in admin.site._registry
)


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def objects(org, staff_user):
    """One row of each model the foundation registers, with a history behind the binary."""
    membership = MembershipFactory(organization=org)
    key = ApiKeyFactory(organization=org, user=membership.user, name="ci")
    binary = binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)
    version = binary.artifact_version
    return {
        "peridio_console.organization": org,
        "peridio_console.membership": membership,
        "peridio_console.apikey": key,
        "auth.user": membership.user,
        "auth.group": Group.objects.create(name="support"),
        "binaries.artifact": version.artifact,
        "binaries.artifactversion": version,
        "binaries.binary": binary,
        "binaries.binaryevent": binary.events.first(),
    }


def _url(label: str, view: str, *args) -> str:
    app_label, model_name = label.split(".")
    return reverse(f"admin:{app_label}_{model_name}_{view}", args=args)


def test_it_registers_the_foundation_models():
    assert {
        "peridio_console.organization",
        "peridio_console.membership",
        "peridio_console.apikey",
        "binaries.artifact",
        "binaries.artifactversion",
        "binaries.binary",
        "binaries.binaryevent",
    } <= set(REGISTERED)


def test_it_shows_the_admin_index_to_staff(staff_client):
    response = staff_client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert b"Binaries" in response.content


@pytest.mark.parametrize("label", REGISTERED)
def test_it_shows_each_changelist_to_staff(staff_client, objects, label):
    response = staff_client.get(_url(label, "changelist"))

    assert response.status_code == 200


@pytest.mark.parametrize("label", REGISTERED)
def test_it_searches_each_changelist(staff_client, objects, label):
    response = staff_client.get(_url(label, "changelist"), {"q": "firmware"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "label",
    [
        "peridio_console.organization",
        "peridio_console.membership",
        "peridio_console.apikey",
        "auth.user",
        "auth.group",
        "binaries.artifact",
        "binaries.artifactversion",
        "binaries.binary",
        "binaries.binaryevent",
    ],
)
def test_it_shows_each_change_page_to_staff(staff_client, objects, label):
    obj = objects[label]

    response = staff_client.get(_url(label, "change", obj.pk))

    assert response.status_code == 200
    assert str(obj).encode() in response.content


def test_it_shows_a_binary_s_prn_and_history(staff_client, objects):
    binary = objects["binaries.binary"]

    response = staff_client.get(_url("binaries.binary", "change", binary.pk))

    content = response.content.decode()
    assert binary.prn in content
    events = list(binary.events.all())
    assert len(events) == 4
    for event in events:
        assert str(event) in content


@pytest.mark.parametrize("path", ["admin:index", "admin:binaries_binary_changelist"])
def test_it_sends_a_non_staff_member_to_the_admin_login(client, admin_membership, path):
    client.force_login(admin_membership.user)
    url = reverse(path)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


@pytest.mark.parametrize("label", REGISTERED)
def test_it_sends_anonymous_visitors_to_the_admin_login(client, db, label):
    url = _url(label, "changelist")

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


# --- Binary actions: through the lifecycle, recorded with the staff user ------------------


def _act(client, action: str, *binaries: Binary):
    return client.post(
        _url("binaries.binary", "changelist"),
        {"action": action, "_selected_action": [b.pk for b in binaries], "index": "0"},
        follow=True,
    )


def test_it_destroys_a_binary_through_the_lifecycle(staff_client, staff_user, org):
    binary = binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)

    response = _act(staff_client, "destroy", binary)

    assert response.status_code == 200
    assert b"Moved 1 binary to destroyed." in response.content
    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    event = binary.events.order_by("-id").first()
    assert event is not None
    assert (event.from_state, event.to_state) == (State.SIGNED, State.DESTROYED)
    assert event.actor_user == staff_user
    assert event.actor_label == "support (staff)"
    assert event.reason == "destroyed by support staff"


@pytest.mark.parametrize("state", [State.HASHABLE, State.HASHING, State.SIGNABLE])
def test_it_resets_a_binary_to_uploadable_through_the_lifecycle(
    staff_client, staff_user, org, state
):
    binary = binary_in_state(state, artifact_version__artifact__organization=org)

    response = _act(staff_client, "reset_to_uploadable", binary)

    assert b"Moved 1 binary to uploadable." in response.content
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    event = binary.events.order_by("-id").first()
    assert event is not None
    assert (event.from_state, event.to_state) == (state, State.UPLOADABLE)
    assert event.actor_user == staff_user
    assert event.reason == "reset by support staff"


def test_it_reports_each_binary_an_action_could_not_move(staff_client, org):
    signed = binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)
    fresh = binary_in_state(State.HASHING, artifact_version__artifact__organization=org)

    response = _act(staff_client, "destroy", signed, fresh)

    content = response.content.decode()
    assert "Moved 1 binary to destroyed." in content
    assert ": The binary is hashing and cannot move to destroyed; " in content
    fresh.refresh_from_db()
    assert fresh.state == State.HASHING
    assert not fresh.events.filter(to_state=State.DESTROYED).exists()
    signed.refresh_from_db()
    assert signed.state == State.DESTROYED


def test_it_names_the_binary_it_could_not_move_by_its_exact_prn(staff_client, org):
    fresh = binary_in_state(State.HASHING, artifact_version__artifact__organization=org)

    response = _act(staff_client, "destroy", fresh)

    # The admin's message list capitalizes the first letter: a message that starts with the
    # PRN shows "Prn:1:…", which is not a PRN a support engineer can paste anywhere.
    assert f"{fresh.prn}: The binary is hashing" in response.content.decode()


def test_it_does_not_offer_state_as_an_editable_field(staff_user, objects):
    model_admin = admin.site._registry[Binary]
    request = RequestFactory().get("/")
    request.user = staff_user

    form = model_admin.get_form(request, objects["binaries.binary"])

    assert "state" not in form.base_fields
    assert "state" in model_admin.get_readonly_fields(request, objects["binaries.binary"])


def test_it_never_deletes_a_binary(staff_client, objects):
    binary = objects["binaries.binary"]

    response = staff_client.post(_url("binaries.binary", "delete", binary.pk), {"post": "yes"})

    assert response.status_code == 403
    assert Binary.objects.filter(pk=binary.pk).exists()


# --- BinaryEvent: the audit trail is read-only --------------------------------------------


def test_it_cannot_add_an_event(staff_client, objects):
    before = BinaryEvent.objects.count()

    assert staff_client.get(_url("binaries.binaryevent", "add")).status_code == 403
    response = staff_client.post(
        _url("binaries.binaryevent", "add"),
        {"binary": objects["binaries.binary"].pk, "actor_label": "forged", "to_state": "signed"},
    )

    assert response.status_code == 403
    assert BinaryEvent.objects.count() == before


def test_it_cannot_change_an_event(staff_client, objects):
    event = objects["binaries.binaryevent"]

    page = staff_client.get(_url("binaries.binaryevent", "change", event.pk))
    response = staff_client.post(
        _url("binaries.binaryevent", "change", event.pk),
        {"actor_label": "forged", "to_state": "signed", "reason": "forged"},
    )

    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.actor_label == "system: test setup"


def test_it_cannot_delete_an_event(staff_client, objects):
    event = objects["binaries.binaryevent"]

    response = staff_client.post(_url("binaries.binaryevent", "delete", event.pk), {"post": "yes"})
    bulk = staff_client.post(
        _url("binaries.binaryevent", "changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )

    assert response.status_code == 403
    assert bulk.status_code in (200, 302)
    assert BinaryEvent.objects.filter(pk=event.pk).exists()


def test_it_refuses_add_change_and_delete_permissions_on_events(staff_user):
    model_admin = admin.site._registry[BinaryEvent]
    request = RequestFactory().get("/")
    request.user = staff_user

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.has_view_permission(request)
    assert "delete_selected" not in model_admin.get_actions(request)


def test_it_does_not_let_staff_add_an_api_key(staff_client, db):
    assert staff_client.get(_url("peridio_console.apikey", "add")).status_code == 403


def test_it_lets_staff_revoke_an_api_key_without_showing_its_secret(staff_client, org):
    user = UserFactory()
    MembershipFactory(organization=org, user=user)
    key = ApiKeyFactory(organization=org, user=user)
    secret = key.secret

    response = staff_client.get(_url("peridio_console.apikey", "change", key.pk))

    assert response.status_code == 200
    assert secret.encode() not in response.content
    assert key.secret_hash.encode() not in response.content
