"""The Django admin: support staff can see everything; state moves only through the lifecycle."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse

from binaries import signatures
from binaries.models import Binary, BinaryEvent, BinarySignature, SigningKey, State
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import ApiKey, AuditEvent, Membership, Role
from peridio_console.accounts.services import api_key_authenticate
from tests.factories import (
    ApiKeyFactory,
    ArtifactFactory,
    BinarySignatureFactory,
    MembershipFactory,
    SigningKeyFactory,
    UserFactory,
    binary_in_state,
)

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
    signature = BinarySignatureFactory(binary=binary)
    signatures.signing_key_revoke(key=SigningKeyFactory(organization=org), actor=Actor.system("x"))
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
        "binaries.signingkey": signature.signing_key,
        "binaries.binarysignature": signature,
        "peridio_console.auditevent": AuditEvent.objects.get(action="signing_key.revoked"),
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
        "binaries.signingkey",
        "binaries.binarysignature",
        "peridio_console.auditevent",
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
        "binaries.signingkey",
        "binaries.binarysignature",
        "peridio_console.auditevent",
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
    assert (event.actor_user, event.actor_label) == (staff_user, "support")
    assert (event.action, event.source, event.ip) == ("binary.destroyed", "admin", "127.0.0.1")
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
    assert (event.actor_user, event.source) == (staff_user, "admin")
    assert event.reason == "stuck upload"


def test_it_destroys_a_binary_from_its_own_page(staff_client, staff_user, org):
    binary = binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)
    button = reverse("admin:binaries_binary_action", args=[binary.pk, "destroy"])

    page = staff_client.get(_url("binaries.binary", "change", binary.pk)).content.decode()
    confirmation = staff_client.get(button).content.decode()
    response = _act(staff_client, "binaries.binary", "destroy", binary, reason="from its page")

    assert f'href="{button}"' in page
    assert "Destroy binaries: are you sure?" in confirmation
    assert f'action="{_url("binaries.binary", "changelist")}"' in confirmation
    assert 'name="action" value="destroy"' in confirmation
    assert b"Destroyed 1 binary." in response.content
    binary.refresh_from_db()
    assert binary.state == State.DESTROYED


@pytest.mark.parametrize("action", ["delete_selected", "no_such_action"])
def test_it_offers_no_other_action_on_a_binary_s_page(staff_client, objects, action):
    binary = objects["binaries.binary"]

    response = staff_client.get(reverse("admin:binaries_binary_action", args=[binary.pk, action]))

    assert response.status_code == 404


def test_it_reports_each_binary_an_action_could_not_move(staff_client, org):
    signed = binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)
    fresh = binary_in_state(State.HASHING, artifact_version__artifact__organization=org)

    response = _act(staff_client, "binaries.binary", "destroy", signed, fresh, reason="cleanup")

    content = response.content.decode()
    assert "Destroyed 1 binary." in content
    assert ": The binary is hashing and cannot move to destroyed; " in content
    fresh.refresh_from_db()
    assert fresh.state == State.HASHING
    assert not fresh.events.filter(to_state=State.DESTROYED).exists()
    signed.refresh_from_db()
    assert signed.state == State.DESTROYED


def test_it_names_the_binary_it_could_not_move_by_its_exact_prn(staff_client, org):
    fresh = binary_in_state(State.HASHING, artifact_version__artifact__organization=org)

    response = _act(staff_client, "binaries.binary", "destroy", fresh, reason="cleanup")

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


# --- The audit trail is read-only: binary events and audit events alike --------------------

EVENTS = {"binaries.binaryevent": BinaryEvent, "peridio_console.auditevent": AuditEvent}
FORGED = {"actor_label": "forged", "to_state": "signed", "reason": "forged", "action": "forged"}


@pytest.mark.parametrize("label", EVENTS)
def test_it_cannot_add_an_event(staff_client, objects, label):
    before = EVENTS[label].objects.count()

    assert staff_client.get(_url(label, "add")).status_code == 403
    response = staff_client.post(
        _url(label, "add"),
        {**FORGED, "binary": objects["binaries.binary"].pk, "organization": objects[label].pk},
    )

    assert response.status_code == 403
    assert EVENTS[label].objects.count() == before


@pytest.mark.parametrize("label", EVENTS)
def test_it_cannot_change_an_event(staff_client, objects, label):
    event = objects[label]
    label_before = event.actor_label

    page = staff_client.get(_url(label, "change", event.pk))
    response = staff_client.post(_url(label, "change", event.pk), {**FORGED, "_save": "Save"})

    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.actor_label == label_before != "forged"


@pytest.mark.parametrize("label", EVENTS)
def test_it_cannot_delete_an_event(staff_client, objects, label):
    event = objects[label]

    response = staff_client.post(_url(label, "delete", event.pk), {"post": "yes"})
    bulk = staff_client.post(
        _url(label, "changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )

    assert response.status_code == 403
    assert bulk.status_code in (200, 302)
    assert EVENTS[label].objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize("model", [*EVENTS.values(), SigningKey, BinarySignature])
def test_it_refuses_add_change_and_delete_permissions_on_read_only_models(staff_user, model):
    model_admin = admin.site._registry[model]
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


# --- Locked fields: what the lifecycle, the verification or a revocation owns ---------------

BINARY_LOCKED = {
    "hash": "b" * 64,
    "size": "1",
    "target": "evil-target",
    "state": State.UPLOADABLE,
    "verified_hash": "c" * 64,
    "last_error": "forged",
    "integrity_failed_at": "2020-01-01 00:00:00",
    "content_deleted_at": "2020-01-01 00:00:00",
    "artifact_version": "1",
    "organization": "1",
}


def _binary_form(staff_user, binary):
    request = RequestFactory().get("/")
    request.user = staff_user
    return admin.site._registry[Binary].get_form(request, binary)


def test_it_offers_only_description_and_custom_metadata_of_a_binary(staff_user, objects):
    form = _binary_form(staff_user, objects["binaries.binary"])

    assert sorted(form.base_fields) == ["custom_metadata", "description"]


@pytest.mark.parametrize("field", BINARY_LOCKED)
def test_it_ignores_a_crafted_post_of_a_locked_binary_field(staff_client, objects, field):
    binary = objects["binaries.binary"]
    Binary.objects.filter(pk=binary.pk).update(verified_hash="a" * 64)
    before = Binary.objects.values().get(pk=binary.pk)

    response = staff_client.post(
        _url("binaries.binary", "change", binary.pk),
        {"description": "", "custom_metadata": "{}", field: BINARY_LOCKED[field], "_save": "Save"},
    )

    assert response.status_code == 302
    assert Binary.objects.values().get(pk=binary.pk) == before
    assert not BinaryEvent.objects.filter(action="binary.updated").exists()


@pytest.mark.parametrize(
    ("label", "editable", "locked"),
    [
        ("binaries.artifact", {"name": None, "custom_metadata": "{}"}, "organization"),
        ("binaries.artifactversion", {"description": "", "custom_metadata": "{}"}, "artifact"),
        ("binaries.artifactversion", {"description": "", "custom_metadata": "{}"}, "version"),
        ("peridio_console.membership", {"role": "engineer"}, "organization"),
        ("peridio_console.membership", {"role": "engineer"}, "user"),
        ("peridio_console.apikey", {"name": None}, "user"),
        ("peridio_console.organization", {"name": None}, "slug"),
    ],
)
def test_it_ignores_a_crafted_post_of_other_locked_fields(
    staff_client, objects, other_org, label, editable, locked
):
    obj = objects[label]
    elsewhere = {
        "organization": other_org.pk,
        "artifact": ArtifactFactory(organization=other_org).pk,
        "version": "9.9.9",
        "user": UserFactory().pk,
        "slug": "hijacked",
    }[locked]
    data = {field: getattr(obj, field) if v is None else v for field, v in editable.items()}
    before = type(obj).objects.values(locked).get(pk=obj.pk)

    response = staff_client.post(
        _url(label, "change", obj.pk),
        {
            **data,
            locked: elsewhere,
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    assert type(obj).objects.values(locked).get(pk=obj.pk) == before


def test_it_refuses_to_add_a_binary(staff_client, objects):
    version = objects["binaries.artifactversion"]
    count = Binary.objects.count()

    page = staff_client.get(_url("binaries.binary", "add"))
    response = staff_client.post(
        _url("binaries.binary", "add"),
        {"artifact_version": version.pk, "target": "new-target", "hash": "d" * 64, "size": "5"},
    )
    changelist = staff_client.get(_url("binaries.binary", "changelist"))

    assert page.status_code == 403
    assert response.status_code == 403
    assert Binary.objects.count() == count
    assert _url("binaries.binary", "add").encode() not in changelist.content


@pytest.mark.parametrize("label", ["binaries.signingkey", "binaries.binarysignature"])
def test_it_ignores_a_crafted_post_to_a_key_or_signature(staff_client, objects, label):
    obj = objects[label]
    before = type(obj).objects.values().get(pk=obj.pk)

    response = staff_client.post(
        _url(label, "change", obj.pk),
        {"name": "forged", "revoked_at": "", "scheme": "rsa-pss-sha256", "_save": "Save"},
    )

    assert response.status_code == 403
    assert type(obj).objects.values().get(pk=obj.pk) == before


# --- API keys: revocation is one-way ---------------------------------------------------------


@pytest.fixture
def revoked_key(org, staff_user):
    membership = MembershipFactory(organization=org)
    key = ApiKeyFactory(organization=org, user=membership.user, name="ci")
    assert api_key_authenticate(key.secret) is not None
    from peridio_console.accounts.services import api_key_revoke

    api_key_revoke(key=key, actor=Actor.for_user(staff_user))
    return key


def test_it_refuses_to_un_revoke_an_api_key(staff_client, revoked_key):
    revoked_at = ApiKey.objects.get(pk=revoked_key.pk).revoked_at

    response = staff_client.post(
        _url("peridio_console.apikey", "change", revoked_key.pk),
        {"name": "ci", "revoked_at_0": "", "revoked_at_1": "", "revoked_at": "", "_save": "Save"},
    )

    assert response.status_code == 302
    assert ApiKey.objects.get(pk=revoked_key.pk).revoked_at == revoked_at is not None
    assert api_key_authenticate(revoked_key.secret) is None


def test_it_offers_only_the_name_of_an_api_key(staff_user, revoked_key):
    request = RequestFactory().get("/")
    request.user = staff_user

    form = admin.site._registry[ApiKey].get_form(request, revoked_key)

    assert list(form.base_fields) == ["name"]


def test_it_revokes_an_api_key_with_a_reason_as_the_staff_user(staff_client, staff_user, org):
    membership = MembershipFactory(organization=org)
    key = ApiKeyFactory(organization=org, user=membership.user, name="ci")

    page = _act(staff_client, "peridio_console.apikey", "revoke", key)
    response = _act(staff_client, "peridio_console.apikey", "revoke", key, reason="leaked in CI")

    assert "Revoke API keys: are you sure?" in page.content.decode()
    assert b"Revoked 1 API key." in response.content
    assert api_key_authenticate(key.secret) is None
    event = AuditEvent.objects.get(action="api_key.revoked")
    assert (event.actor_user, event.source, event.ip) == (staff_user, "admin", "127.0.0.1")
    assert event.details == {
        "prefix": key.prefix,
        "name": "ci",
        "user": membership.user.username,
        "reason": "leaked in CI",
    }


def test_it_says_a_revoked_api_key_was_revoked_already(staff_client, revoked_key):
    response = _act(staff_client, "peridio_console.apikey", "revoke", revoked_key, reason="again")

    assert "it was revoked at " in response.content.decode()
    assert "a revocation is final." in response.content.decode()
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1


def test_it_revokes_a_signing_key_and_its_signatures_as_the_staff_user(
    staff_client, staff_user, org
):
    signature = BinarySignatureFactory(
        binary=binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)
    )
    key = signature.signing_key

    page = _act(staff_client, "binaries.signingkey", "revoke", key)
    response = _act(staff_client, "binaries.signingkey", "revoke", key, reason="key compromised")

    assert "Revoke signing keys: are you sure?" in page.content.decode()
    assert b"Revoked 1 signing key; their signatures no longer count." in response.content
    key.refresh_from_db()
    signature.refresh_from_db()
    assert key.revoked_at is not None
    assert signature.revoked_at == key.revoked_at
    event = AuditEvent.objects.get(action="signing_key.revoked", object_prn=key.prn)
    assert (event.actor_user, event.source) == (staff_user, "admin")
    assert event.details["reason"] == "key compromised"
    assert event.details["signatures_revoked"] == 1


def test_it_revokes_nothing_without_a_reason(staff_client, org):
    key = SigningKeyFactory(organization=org)

    response = _act(staff_client, "binaries.signingkey", "revoke", key, reason="")

    assert "Say why: the reason is kept in the audit trail." in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None
    assert not AuditEvent.objects.exists()


# --- Edits: through the services, each audited with before and after ------------------------


BROWSER = "Mozilla/5.0 (X11; Linux x86_64) support desk"


def _change(client, label: str, obj, **data):
    return client.post(
        _url(label, "change", obj.pk),
        {**data, "_save": "Save"},
        follow=True,
        HTTP_USER_AGENT=BROWSER,
    )


def test_it_audits_an_edit_of_a_binary_with_before_and_after(staff_client, staff_user, objects):
    binary = objects["binaries.binary"]

    response = _change(
        staff_client,
        "binaries.binary",
        binary,
        description="nightly",
        custom_metadata='{"build": 42}',
    )

    assert response.status_code == 200
    binary.refresh_from_db()
    assert (binary.description, binary.custom_metadata) == ("nightly", {"build": 42})
    event = BinaryEvent.objects.get(action="binary.updated")
    assert event.binary == binary
    assert (event.actor_user, event.source, event.ip) == (staff_user, "admin", "127.0.0.1")
    assert event.user_agent == BROWSER
    assert event.details == {
        "changes": {"description": ["", "nightly"], "custom_metadata": [{}, {"build": 42}]}
    }
    page = staff_client.get(_url("binaries.binary", "change", binary.pk)).content.decode()
    assert "<td>binary.updated</td>" in page


def test_it_records_nothing_when_nothing_changed(staff_client, objects):
    binary = objects["binaries.binary"]

    _change(staff_client, "binaries.binary", binary, description="", custom_metadata="{}")

    assert not BinaryEvent.objects.filter(action="binary.updated").exists()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"custom_metadata": "[1, 2]"}, "custom_metadata must be a JSON object; got list."),
        ({"description": "x" * 257}, "at most 256 characters"),
    ],
)
def test_it_refuses_what_the_api_refuses_on_its_field(staff_client, objects, data, error):
    binary = objects["binaries.binary"]

    response = _change(
        staff_client,
        "binaries.binary",
        binary,
        **{"description": "", "custom_metadata": "{}", **data},
    )

    assert response.status_code == 200
    assert error in response.content.decode()
    binary.refresh_from_db()
    assert (binary.description, binary.custom_metadata) == ("", {})
    assert not BinaryEvent.objects.filter(action="binary.updated").exists()


def test_it_audits_a_renamed_artifact(staff_client, staff_user, objects):
    artifact = objects["binaries.artifact"]
    old = artifact.name

    _change(
        staff_client,
        "binaries.artifact",
        artifact,
        name="renamed",
        description="",
        custom_metadata="{}",
    )

    artifact.refresh_from_db()
    assert artifact.name == "renamed"
    event = AuditEvent.objects.get(action="artifact.updated")
    assert (event.object_prn, event.actor_user) == (artifact.prn, staff_user)
    assert (event.source, event.user_agent) == ("admin", BROWSER)
    assert event.details == {"changes": {"name": [old, "renamed"]}}


def test_it_refuses_an_artifact_name_taken_in_its_organization(staff_client, objects, org):
    artifact = objects["binaries.artifact"]
    other = ArtifactFactory(organization=org, name="taken")

    response = _change(
        staff_client,
        "binaries.artifact",
        artifact,
        name="taken",
        description="",
        custom_metadata="{}",
    )

    content = response.content.decode()
    assert "An artifact named &#x27;taken&#x27; already exists in this organization." in content
    assert "was changed successfully" not in content
    artifact.refresh_from_db()
    assert artifact.name != other.name
    assert not AuditEvent.objects.filter(action="artifact.updated").exists()


def test_it_audits_an_edit_of_a_version(staff_client, objects):
    version = objects["binaries.artifactversion"]

    _change(
        staff_client, "binaries.artifactversion", version, description="rc", custom_metadata="{}"
    )

    event = AuditEvent.objects.get(action="artifact_version.updated")
    assert event.object_prn == version.prn
    assert event.details == {"changes": {"description": ["", "rc"]}}


def test_it_audits_a_renamed_api_key(staff_client, staff_user, objects):
    key = objects["peridio_console.apikey"]

    _change(staff_client, "peridio_console.apikey", key, name="deploy")

    key.refresh_from_db()
    assert key.name == "deploy"
    event = AuditEvent.objects.get(action="api_key.updated")
    assert (event.actor_user, event.source, event.user_agent) == (staff_user, "admin", BROWSER)
    assert event.details == {
        "prefix": key.prefix,
        "user": key.user.username,
        "changes": {"name": ["ci", "deploy"]},
    }


def test_it_audits_a_renamed_organization(staff_client, org):
    old = org.name

    _change(
        staff_client,
        "peridio_console.organization",
        org,
        name="Acme Devices",
        **{"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"},
    )

    org.refresh_from_db()
    assert org.name == "Acme Devices"
    event = AuditEvent.objects.get(action="organization.updated")
    assert (event.organization, event.object_prn) == (org, org.prn)
    assert event.details == {"changes": {"name": [old, "Acme Devices"]}}


def test_it_changes_a_role_through_the_members_service(staff_client, staff_user, org):
    MembershipFactory(organization=org, role=Role.ADMIN)
    membership = MembershipFactory(organization=org, role=Role.ENGINEER)

    _change(staff_client, "peridio_console.membership", membership, role=Role.VIEWER)

    membership.refresh_from_db()
    assert membership.role == Role.VIEWER
    event = AuditEvent.objects.get(action="membership.changed")
    assert event.actor_user == staff_user
    assert (event.source, event.user_agent) == ("admin", BROWSER)
    assert event.details == {
        "user": membership.user.username,
        "changes": {"role": ["engineer", "viewer"]},
    }


def test_it_keeps_the_last_admin_of_an_organization(staff_client, admin_membership):
    response = _change(
        staff_client, "peridio_console.membership", admin_membership, role=Role.VIEWER
    )

    assert "is the last admin of" in response.content.decode()
    admin_membership.refresh_from_db()
    assert admin_membership.role == Role.ADMIN
    assert not AuditEvent.objects.exists()


def test_it_neither_adds_nor_deletes_memberships(staff_client, admin_membership):
    user = UserFactory()
    add = staff_client.post(
        _url("peridio_console.membership", "add"),
        {"user": user.pk, "organization": admin_membership.organization.pk, "role": "admin"},
    )
    delete = staff_client.post(
        _url("peridio_console.membership", "delete", admin_membership.pk), {"post": "yes"}
    )
    inline = staff_client.post(
        _url("peridio_console.organization", "change", admin_membership.organization.pk),
        {
            "name": admin_membership.organization.name,
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-0-user": user.pk,
            "memberships-0-role": "admin",
            "_save": "Save",
        },
    )

    assert (add.status_code, delete.status_code) == (403, 403)
    assert inline.status_code in (200, 302)
    assert list(Membership.objects.values_list("pk", flat=True)) == [admin_membership.pk]


# --- Support staff find binaries -------------------------------------------------------------


@pytest.fixture
def two_binaries(org):
    wanted = binary_in_state(
        State.SIGNABLE,
        artifact_version__artifact__organization=org,
        artifact_version__version="2024.06-rc1",
        target="riscv64-linux-gnu",
        hash="c0ffee" + "1" * 58,
        size=3 * 1024 * 1024,
    )
    other = binary_in_state(
        State.SIGNABLE, artifact_version__artifact__organization=org, target="aarch64-linux-gnu"
    )
    return wanted, other


def _search(client, term: str):
    response = client.get(_url("binaries.binary", "changelist"), {"q": term})
    assert response.status_code == 200
    return response


def _found(client, term: str) -> list[Binary]:
    """The binaries the changelist shows for `term` (the page also shows the term itself)."""
    return list(_search(client, term).context["cl"].result_list)


@pytest.mark.parametrize(
    "form",
    ["prn", "uuid", "sha256", "hex", "hex prefix", "target", "version", "version and target"],
)
def test_it_finds_a_binary_by_each_form_support_staff_paste(staff_client, two_binaries, form):
    wanted, _ = two_binaries
    term = {
        "prn": wanted.prn,
        "uuid": str(wanted.uuid),
        "sha256": f"sha256:{wanted.hash}",
        "hex": wanted.hash.upper(),
        "hex prefix": "c0ffee11",
        "target": "riscv64",
        "version": "2024.06-rc1",
        "version and target": "2024.06-rc1 riscv64-linux-gnu",
    }[form]

    assert _found(staff_client, term) == [wanted]


def test_it_finds_the_binaries_of_a_version_by_its_prn(staff_client, two_binaries):
    wanted, _ = two_binaries

    assert _found(staff_client, wanted.artifact_version.prn) == [wanted]


def test_it_finds_nothing_for_a_prn_of_another_organization(staff_client, two_binaries, other_org):
    wanted, _ = two_binaries
    elsewhere = wanted.prn.replace(str(wanted.organization.uuid), str(other_org.uuid))

    assert _found(staff_client, elsewhere) == []


@pytest.mark.parametrize(
    ("term", "error"),
    [
        ("prn:1:not-a-uuid:binary:x", "is not a PRN: the organization must be a UUID"),
        ("sha256:xyz", "is not a hash: after sha256: come at least 6 of its hex digits."),
    ],
)
def test_it_says_what_a_malformed_search_should_be(staff_client, two_binaries, term, error):
    response = _search(staff_client, term)

    assert error in response.content.decode().replace("&#x27;", "'")
    assert list(response.context["cl"].result_list) == []


def test_it_lists_prn_artifact_version_target_state_size_and_created(staff_client, two_binaries):
    wanted, _ = two_binaries

    content = _search(staff_client, wanted.prn).content.decode()

    version = wanted.artifact_version
    for header in ("PRN", "Artifact / version", "Target", "State", "Size", "Created at"):
        assert f">{header}</a>" in content
    assert f"{version.artifact.name} / 2024.06-rc1" in content
    assert '<span title="3145728 bytes">3.0\xa0MB</span>' in content
    assert "signable" in content


def test_it_filters_binaries_by_state(staff_client, two_binaries, org):
    signed = binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)

    response = staff_client.get(_url("binaries.binary", "changelist"), {"state__exact": "signed"})

    assert list(response.context["cl"].result_list) == [signed]


def test_it_filters_binaries_by_organization(staff_client, two_binaries, other_org):
    elsewhere = binary_in_state(State.SIGNED, artifact_version__artifact__organization=other_org)

    response = staff_client.get(
        _url("binaries.binary", "changelist"), {"organization__id__exact": other_org.pk}
    )

    assert list(response.context["cl"].result_list) == [elsewhere]


# --- Staff with fewer permissions ----------------------------------------------------------


@pytest.fixture
def viewing_staff(client, db):
    """A staff user who may only view binaries and signing keys."""
    from django.contrib.auth.models import Permission

    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_binary", "view_signingkey"])
    )
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("label", "action"),
    [("binaries.binary", "destroy"), ("binaries.signingkey", "revoke")],
)
def test_it_offers_no_staff_action_to_staff_who_may_only_view(viewing_staff, org, label, action):
    binary = binary_in_state(State.SIGNED, artifact_version__artifact__organization=org)
    key = SigningKeyFactory(organization=org)
    obj = binary if label == "binaries.binary" else key

    page = viewing_staff.get(_url(label, "changelist"))
    response = _act(viewing_staff, label, action, obj, reason="not allowed")
    button = viewing_staff.get(
        reverse(f"admin:{label.replace('.', '_')}_action", args=[obj.pk, action])
    )

    assert page.status_code == 200
    assert f'value="{action}"'.encode() not in page.content
    assert response.status_code == 200
    assert button.status_code == 404
    binary.refresh_from_db()
    key.refresh_from_db()
    assert (binary.state, key.revoked_at) == (State.SIGNED, None)
    assert not AuditEvent.objects.exists()


# --- Members leave, and users change, on the record ---------------------------------------


def test_it_removes_a_member_with_a_reason_and_revokes_their_keys(staff_client, staff_user, org):
    MembershipFactory(organization=org, role=Role.ADMIN)  # the organization keeps an admin
    leaving = MembershipFactory(organization=org, role=Role.ENGINEER)
    key = ApiKeyFactory(organization=org, user=leaving.user, name="ci")

    page = _act(staff_client, "peridio_console.membership", "remove", leaving)
    response = _act(
        staff_client, "peridio_console.membership", "remove", leaving, reason="left the company"
    )

    assert "Remove members: are you sure?" in page.content.decode()
    assert b"Removed 1 member; their API keys there are revoked." in response.content
    assert not Membership.objects.filter(pk=leaving.pk).exists()
    assert api_key_authenticate(key.secret) is None
    event = AuditEvent.objects.get(action="membership.removed")
    assert (event.actor_user, event.source) == (staff_user, "admin")
    assert event.details == {
        "user": leaving.user.username,
        "role": "engineer",
        "api_keys_revoked": 1,
        "reason": "left the company",
    }


def test_it_refuses_to_remove_an_organization_s_last_admin(staff_client, org):
    last = MembershipFactory(organization=org, role=Role.ADMIN)

    response = _act(staff_client, "peridio_console.membership", "remove", last, reason="why not")

    assert "is the last admin of" in response.content.decode()
    assert Membership.objects.filter(pk=last.pk).exists()
    assert not AuditEvent.objects.filter(action="membership.removed").exists()


def test_it_removes_a_member_from_their_own_page(staff_client, org):
    MembershipFactory(organization=org, role=Role.ADMIN)
    leaving = MembershipFactory(organization=org, role=Role.VIEWER)
    page = staff_client.get(_url("peridio_console.membership", "change", leaving.pk))
    button = reverse("admin:peridio_console_membership_action", args=[leaving.pk, "remove"])

    assert button in page.content.decode()
    assert "Remove members: are you sure?" in staff_client.get(button).content.decode()


def _user_form(user, **changes):
    """The admin's change form of `user` as posted, with `changes`."""
    data = {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "_save": "Save",
        **changes,
    }
    return {key: value for key, value in data.items() if value != ""}


def test_it_records_a_user_s_edit_in_each_of_their_organizations(
    staff_client, staff_user, org, other_org
):
    user = MembershipFactory(organization=org).user
    MembershipFactory(organization=other_org, user=user)
    Group.objects.create(name="support")
    old_email = user.email

    response = staff_client.post(
        _url("auth.user", "change", user.pk),
        _user_form(user, email="new@example.com", is_active="", groups=[Group.objects.get().pk]),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert (user.email, user.is_active) == ("new@example.com", False)
    events = AuditEvent.objects.filter(action="user.updated").order_by("id")
    assert {e.organization for e in events} == {org, other_org}
    fields: dict[int, dict] = {e.organization_id: {} for e in events}
    for event in events:
        assert (event.actor_user, event.source) == (staff_user, "admin")
        assert event.details["user"] == user.username
        fields[event.organization_id].update(event.details["changes"])
    assert fields[org.pk] == {
        "email": [old_email, "new@example.com"],
        "is_active": [True, False],
        "groups": [[], ["support"]],
    }
    assert fields[org.pk] == fields[other_org.pk]


def test_it_records_a_password_change_without_the_password(staff_client, org):
    user = MembershipFactory(organization=org).user
    new = "another horse battery staple"

    response = staff_client.post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"password1": new, "password2": new, "usable_password": "true"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="user.updated")
    assert event.details == {
        "user": user.username,
        "changes": {"password": ["(hidden)", "(changed)"]},
    }
    assert new not in str(event.details)


def test_it_records_nothing_for_a_user_saved_unchanged(staff_client, org):
    user = MembershipFactory(organization=org).user

    response = staff_client.post(_url("auth.user", "change", user.pk), _user_form(user))

    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action="user.updated").exists()


def test_it_never_deletes_a_user(staff_client, org):
    user = MembershipFactory(organization=org).user

    response = staff_client.post(_url("auth.user", "delete", user.pk), {"post": "yes"})

    assert response.status_code == 403
    assert Membership.objects.filter(user=user).exists()
