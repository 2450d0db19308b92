"""The console's signing keys, API keys and members pages."""

from django.urls import reverse

from binaries.models import SigningKey
from peridio_console.accounts.models import ApiKey, AuditEvent, Membership, Role
from peridio_console.accounts.services import api_key_authenticate
from tests.console_helpers import KeyPair, logged_in
from tests.factories import ApiKeyFactory, MembershipFactory, SigningKeyFactory, UserFactory


def test_it_sends_anonymous_users_to_login(client, db):
    for name in ("signing_key_list", "api_key_list", "member_list"):
        response = client.get(reverse(f"console:{name}"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


# --- Signing keys ---------------------------------------------------------------------------


def test_it_registers_a_signing_key(engineer, org):
    pair = KeyPair()
    response = engineer.post(
        reverse("console:signing_key_create"),
        {"name": "release <2024>", "value": pair.public_pem},
        follow=True,
    )
    key = SigningKey.objects.get(organization=org)
    assert key.algorithm == "ed25519"
    html = response.content.decode()
    assert "release &lt;2024&gt;" in html
    assert key.keyid in html
    assert AuditEvent.objects.filter(action="signing_key.created", object_prn=key.prn).exists()


def test_it_explains_a_bad_signing_key(engineer, org):
    url = reverse("console:signing_key_create")
    response = engineer.post(url, {"name": "k", "value": "not a key"})
    assert response.status_code == 200
    assert b'id="id_value_error"' in response.content
    assert b"value must be a public key in PEM" in response.content
    private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----"
    response = engineer.post(url, {"name": "k", "value": private})
    assert b"That is a PRIVATE key. It was not stored." in response.content
    assert not SigningKey.objects.filter(organization=org).exists()


def test_it_says_a_raw_32_byte_value_must_be_the_public_key(engineer, org):
    page = engineer.get(reverse("console:signing_key_list")).content.decode()
    assert "A raw 32-byte value must be the public key, never the private seed" in page


def test_it_lets_only_admins_revoke_signing_keys(admin, engineer, viewer, org):
    key = SigningKeyFactory(organization=org)
    url = reverse("console:signing_key_revoke", args=[key.uuid])
    assert b"Revoke signing key" not in engineer.get(reverse("console:signing_key_list")).content
    assert engineer.post(url).status_code == 403
    assert viewer.post(url).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None

    page = admin.get(reverse("console:signing_key_list")).content.decode()
    assert f'action="{url}"' in page
    response = admin.post(url, follow=True)
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert b"revoked; its signatures no longer count" in response.content
    assert AuditEvent.objects.filter(action="signing_key.revoked", object_prn=key.prn).exists()


def test_it_hides_signing_keys_of_other_organizations(outsider, org):
    key = SigningKeyFactory(organization=org, name="secret-project-key")
    assert b"secret-project-key" not in outsider.get(reverse("console:signing_key_list")).content
    assert outsider.post(reverse("console:signing_key_revoke", args=[key.uuid])).status_code == 404


def test_it_refuses_viewers_a_signing_key(viewer, org):
    page = viewer.get(reverse("console:signing_key_list"))
    assert page.status_code == 200
    assert b"Add signing key" not in page.content
    response = viewer.post(
        reverse("console:signing_key_create"), {"name": "k", "value": KeyPair().public_pem}
    )
    assert response.status_code == 403
    assert not SigningKey.objects.exists()


# --- API keys -------------------------------------------------------------------------------


def test_it_shows_a_new_api_key_once(engineer, engineer_membership, org):
    response = engineer.post(reverse("console:api_key_create"), {"name": "ci-nightly"})
    key = ApiKey.objects.get(organization=org, user=engineer_membership.user)
    html = response.content.decode()
    secret = html.split('id="new-api-key" type="text" readonly value="')[1].split('"')[0]
    assert response["Cache-Control"] == "no-store"
    assert secret.startswith(f"pdo_{key.prefix}_")
    event = AuditEvent.objects.get(action="api_key.created")
    assert event.details["prefix"] == key.prefix
    assert event.actor_user == engineer_membership.user

    listing = engineer.get(reverse("console:api_key_list")).content.decode()
    assert secret not in listing
    assert f"pdo_{key.prefix}_…" in listing
    assert "ci-nightly" in listing
    assert ">never<" in listing  # last used

    assert api_key_authenticate(secret) == key
    listing = engineer.get(reverse("console:api_key_list")).content.decode()
    assert ">never<" not in listing


def test_it_revokes_your_own_api_key(engineer, engineer_membership, org):
    key = ApiKeyFactory(organization=org, user=engineer_membership.user, name="laptop")
    secret = key.secret
    response = engineer.post(reverse("console:api_key_revoke", args=[key.pk]), follow=True)
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_key_authenticate(secret) is None
    assert b"revoked" in response.content
    assert AuditEvent.objects.get(action="api_key.revoked").details["prefix"] == key.prefix


def test_it_lets_admins_manage_every_key_and_others_only_theirs(
    admin, engineer, engineer_membership, admin_membership, org
):
    theirs = ApiKeyFactory(organization=org, user=admin_membership.user, name="admin-key")
    mine = ApiKeyFactory(organization=org, user=engineer_membership.user, name="eng-key")
    listing = engineer.get(reverse("console:api_key_list")).content.decode()
    assert "eng-key" in listing
    assert "admin-key" not in listing
    assert engineer.post(reverse("console:api_key_revoke", args=[theirs.pk])).status_code == 404

    listing = admin.get(reverse("console:api_key_list")).content.decode()
    assert "eng-key" in listing and "admin-key" in listing
    admin.post(reverse("console:api_key_revoke", args=[mine.pk]))
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None
    assert theirs.revoked_at is None


def test_it_hides_api_keys_of_other_organizations(outsider, admin_membership, org):
    key = ApiKeyFactory(organization=org, user=admin_membership.user, name="org-key")
    assert b"org-key" not in outsider.get(reverse("console:api_key_list")).content
    assert outsider.post(reverse("console:api_key_revoke", args=[key.pk])).status_code == 404


# --- Members --------------------------------------------------------------------------------


def test_it_lists_members_for_admins_only(admin, engineer, viewer, admin_membership):
    response = admin.get(reverse("console:member_list"))
    assert response.status_code == 200
    assert admin_membership.user.username.encode() in response.content
    assert b">Members</a>" in admin.get(reverse("dashboard")).content
    for client in (engineer, viewer):
        assert client.get(reverse("console:member_list")).status_code == 403
        assert client.post(reverse("console:member_invite"), {"invitee": "x"}).status_code == 403


def test_it_invites_a_member(admin, admin_membership, org):
    user = UserFactory(username="dana")
    response = admin.post(
        reverse("console:member_invite"), {"invitee": "dana", "role": "viewer"}, follow=True
    )
    assert not Membership.objects.filter(user=user, organization=org).exists()  # until accepted
    assert b"If that account exists, they will see the invitation" in response.content
    event = AuditEvent.objects.get(action="membership.invited")
    assert event.details == {"invitee": "dana", "role": "viewer"}
    assert event.actor_user == admin_membership.user


def test_it_explains_why_a_member_cannot_be_invited(admin, engineer_membership):
    response = admin.post(reverse("console:member_invite"), {"invitee": " ", "role": "viewer"})
    assert b'id="id_invitee_error"' in response.content
    response = admin.post(
        reverse("console:member_invite"),
        {"invitee": engineer_membership.user.username, "role": "viewer"},
    )
    assert b"is already a member of" in response.content
    assert not AuditEvent.objects.filter(action="membership.invited").exists()


def test_it_changes_a_role(admin, engineer_membership):
    url = reverse("console:member_change_role", args=[engineer_membership.pk])
    admin.post(url, {"role": "admin"})
    engineer_membership.refresh_from_db()
    assert engineer_membership.role == Role.ADMIN
    event = AuditEvent.objects.get(action="membership.changed")
    assert event.details["changes"] == {"role": ["engineer", "admin"]}


def test_it_keeps_an_admin(admin, admin_membership):
    url = reverse("console:member_change_role", args=[admin_membership.pk])
    response = admin.post(url, {"role": "viewer"}, follow=True)
    admin_membership.refresh_from_db()
    assert admin_membership.role == Role.ADMIN
    assert b"is the last admin of" in response.content
    response = admin.post(reverse("console:member_remove", args=[admin_membership.pk]), follow=True)
    assert Membership.objects.filter(pk=admin_membership.pk).exists()
    assert b"is the last admin of" in response.content


def test_it_removes_a_member_and_their_keys(admin, engineer_membership, org):
    key = ApiKeyFactory(organization=org, user=engineer_membership.user)
    secret = key.secret
    admin.post(reverse("console:member_remove", args=[engineer_membership.pk]))
    assert not Membership.objects.filter(pk=engineer_membership.pk).exists()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_key_authenticate(secret) is None
    event = AuditEvent.objects.get(action="membership.removed")
    assert event.details["user"] == engineer_membership.user.username
    assert event.details["api_keys_revoked"] == 1


def test_it_hides_members_of_other_organizations(outsider, engineer_membership):
    for name in ("member_change_role", "member_remove"):
        url = reverse(f"console:{name}", args=[engineer_membership.pk])
        assert outsider.post(url, {"role": "viewer"}).status_code == 404
    assert Membership.objects.get(pk=engineer_membership.pk).role == Role.ENGINEER


def test_it_shows_the_organizations_of_a_member_of_two(db, org, other_org):
    user = UserFactory()
    MembershipFactory(user=user, organization=org, role=Role.VIEWER)
    MembershipFactory(user=user, organization=other_org, role=Role.ADMIN)
    client = logged_in(Membership.objects.get(user=user, organization=org))
    client.post(reverse("switch_organization"), {"organization": org.slug})
    assert client.get(reverse("console:member_list")).status_code == 403
    client.post(reverse("switch_organization"), {"organization": other_org.slug})
    assert client.get(reverse("console:member_list")).status_code == 200


def test_it_lets_viewers_create_their_own_read_only_keys(viewer, viewer_membership, org):
    response = viewer.post(reverse("console:api_key_create"), {"name": "reports"})
    assert response.status_code == 200
    assert b'id="new-api-key"' in response.content
    key = ApiKey.objects.get(organization=org)
    assert key.user == viewer_membership.user  # it acts with the viewer's role
