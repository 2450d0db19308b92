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


def test_it_shows_a_binary_s_prn_and_timeline(staff_client, objects):
    binary = objects["binaries.binary"]

    response = staff_client.get(_url("binaries.binary", "change", binary.pk))

    content = response.content.decode()
    assert binary.prn in content
    assert content.count("system: test setup") == 4  # the four moves
    for action in ("binary.hashable", "binary.hashing", "binary.signable", "binary.signed"):
        assert f"<td>{action}</td>" in content
    assert "signable → signed" in content


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


# --- Staff actions: a confirmation page asking why, then the service, audited ------------


def _act(client, label: str, action: str, *objs, reason: str | None = None):
    """Choose `action` for `objs` on the changelist; with a reason, confirm it too."""
    data = {"action": action, "_selected_action": [o.pk for o in objs]}
    if reason is None:
        data["index"] = "0"
    else:
        data.update(confirm="yes", reason=reason)
    return client.post(_url(label, "changelist"), data, follow=True)


def test_it_asks_for_a_reason_before_destroying(staff_client, org):
    binary = binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)

    page = _act(staff_client, "binaries.binary", "destroy", binary)
    blank = _act(staff_client, "binaries.binary", "destroy", binary, reason="   ")

    content = page.content.decode()
    assert "Destroy binaries: are you sure?" in content
    assert binary.prn in content
    assert 'name="reason"' in content
    assert "Say why: the reason is kept in the audit trail." in blank.content.decode()
    binary.refresh_from_db()
    assert binary.state == State.SIGNED
    assert binary.events.count() == 4


def test_it_destroys_a_binary_through_the_lifecycle(staff_client, staff_user, org):
    binary = binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)

    response = _act(
        staff_client, "binaries.binary", "destroy", binary, reason="customer asked, ticket 42"
    )

    assert response.status_code == 200
    assert b"Destroyed 1 binary." in response.content
    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    event = binary.events.order_by("-id").first()
    assert event is not None
    assert (event.from_state, event.to_state) == (State.SIGNED, State.DESTROYED)
    assert event.actor_user == staff_user
    assert event.actor_label == "support"
    assert event.reason == "customer asked, ticket 42"


@pytest.mark.parametrize("state", [State.HASHABLE, State.HASHING, State.SIGNABLE])
def test_it_resets_a_binary_to_uploadable_through_the_lifecycle(
    staff_client, staff_user, org, state
):
    binary = binary_in_state(state, artifact_version__artifact__organization=org)

    response = _act(
        staff_client, "binaries.binary", "reset_to_uploadable", binary, reason="stuck upload"
    )

    assert b"Reset 1 binary to uploadable." in response.content
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    event = binary.events.order_by("-id").first()
    assert event is not None
    assert (event.from_state, event.to_state) == (state, State.UPLOADABLE)
    assert event.actor_user == staff_user
    assert event.reason == "stuck upload"


def test_it_reports_each_binary_an_action_could_not_move(staff_client, org):
    signed = binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)
    fresh = binary_in_state(State.UPLOADABLE, artifact_version__artifact__organization=org)

    response = _act(staff_client, "binaries.binary", "destroy", signed, fresh, reason="cleanup")

    content = response.content.decode()
    assert "Destroyed 1 binary." in content
    assert ": The binary is uploadable and cannot move to destroyed; " in content
    fresh.refresh_from_db()
    assert fresh.state == State.UPLOADABLE
    assert fresh.events.count() == 0
    signed.refresh_from_db()
    assert signed.state == State.DESTROYED


def test_it_names_the_binary_it_could_not_move_by_its_exact_prn(staff_client, org):
    fresh = binary_in_state(State.UPLOADABLE, artifact_version__artifact__organization=org)

    response = _act(staff_client, "binaries.binary", "destroy", fresh, reason="cleanup")

    # The admin's message list capitalizes the first letter: a message that starts with the
    # PRN shows "Prn:1:…", which is not a PRN a support engineer can paste anywhere.
    assert f"{fresh.prn}: The binary is uploadable" in response.content.decode()


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
