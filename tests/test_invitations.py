"""Membership by consent: an admin invites, the invited user accepts or declines; the invite
form never tells whether an account exists; a user works in the organization they last used."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from peridio_console.accounts.models import AuditEvent, Invitation, Membership, Role
from tests.console_helpers import logged_in
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.test_organization_choice import working_in

SENT = "If that account exists, they will see the invitation when they log in."


@pytest.fixture
def admin(admin_membership):
    return logged_in(admin_membership)


@pytest.fixture
def dana(db):
    return UserFactory(username="dana", email="Dana@Example.com")


def invite(client: Client, invitee: str, role: str = "viewer", **kwargs):
    return client.post(
        reverse("console:member_invite"), {"invitee": invitee, "role": role}, **kwargs
    )


def pending(user) -> Invitation:
    return Invitation.objects.get(status=Invitation.Status.PENDING, address=user.username)


def test_it_invites_and_adds_the_member_only_when_they_accept(admin, admin_membership, org, dana):
    response = invite(admin, "dana", follow=True)

    assert SENT.encode() in response.content
    assert not Membership.objects.filter(user=dana, organization=org).exists()
    invited = AuditEvent.objects.get(action="membership.invited")
    assert invited.actor_user == admin_membership.user
    assert invited.details == {"invitee": "dana", "role": "viewer"}

    client = Client()
    client.force_login(dana)
    home = client.get(reverse("dashboard")).content.decode()
    assert reverse("console:invitation_list") in home
    page = client.get(reverse("console:invitation_list")).content.decode()
    assert f'aria-label="Accept the invitation to {org.name}"' in page
    assert f'aria-label="Decline the invitation to {org.name}"' in page
    assert "<td>viewer</td>" in page
    invitation = pending(dana)
    response = client.post(
        reverse("console:invitation_accept"), {"invitation": invitation.pk}, follow=True
    )

    assert f"You joined {org.name} as viewer." in response.content.decode()
    assert Membership.objects.get(user=dana, organization=org).role == Role.VIEWER
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED
    assert invitation.user == dana
    added = AuditEvent.objects.get(action="membership.added")
    assert added.organization == org
    assert added.actor_user == dana
    assert added.details == {
        "user": "dana",
        "role": "viewer",
        "invitee": "dana",
        "invited_by": admin_membership.user.username,
    }
    again = client.post(reverse("console:invitation_accept"), {"invitation": invitation.pk})
    assert again.status_code == 404


def test_it_lets_the_invited_user_decline(admin, org, dana):
    invite(admin, "dana")
    client = Client()
    client.force_login(dana)
    invitation = pending(dana)

    response = client.post(
        reverse("console:invitation_decline"), {"invitation": invitation.pk}, follow=True
    )

    assert f"You declined the invitation to {org.name}." in response.content.decode()
    assert not Membership.objects.filter(user=dana, organization=org).exists()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.DECLINED
    event = AuditEvent.objects.get(action="membership.invitation_declined")
    assert event.actor_user == dana and event.organization == org
    assert (
        reverse("console:invitation_list") not in client.get(reverse("dashboard")).content.decode()
    )


def test_it_lets_an_admin_cancel_an_invitation(admin, org, dana):
    invite(admin, "dana")
    invitation = pending(dana)
    members = admin.get(reverse("console:member_list")).content.decode()
    assert 'aria-label="Cancel the invitation for dana"' in members

    response = admin.post(
        reverse("console:invitation_cancel"),
        {"invitation": invitation.pk, "confirm": "yes"},
        follow=True,
    )

    assert "The invitation for dana was cancelled." in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.CANCELLED
    assert AuditEvent.objects.filter(action="membership.invitation_cancelled").count() == 1
    client = Client()
    client.force_login(dana)
    accept = client.post(reverse("console:invitation_accept"), {"invitation": invitation.pk})
    assert accept.status_code == 404
    assert not Membership.objects.filter(user=dana, organization=org).exists()


def test_it_finds_the_invitation_by_email_whatever_its_case(admin, org, dana):
    invite(admin, "dana@example.COM", role="engineer")
    client = Client()
    client.force_login(dana)
    invitation = Invitation.objects.get(status=Invitation.Status.PENDING)

    client.post(reverse("console:invitation_accept"), {"invitation": invitation.pk})

    assert Membership.objects.get(user=dana, organization=org).role == Role.ENGINEER


def test_it_no_longer_adds_a_member_directly(admin, org, dana):
    assert admin.post("/members/new", {"username": "dana", "role": "admin"}).status_code == 404
    invite(admin, "dana", role="admin")
    assert not Membership.objects.filter(user=dana, organization=org).exists()
    assert not AuditEvent.objects.filter(action="membership.added").exists()


def _page(response, name: str) -> str:
    """The page with the name asked for replaced, and without what differs on every response
    (the CSRF token, the time to the microsecond, the invitation's number)."""
    text = response.content.decode().replace(name, "X")
    varying = r'value="[^"]{64}"|"X-CSRFToken": "[^"]+"|datetime="[^"]+"|"invitation" value="\d+"'
    return re.sub(varying, "", text)


@pytest.mark.parametrize(
    ("existing", "unknown"),
    [("dana", "nobody"), ("dana@example.com", "nobody@example.com")],
)
def test_it_answers_the_same_for_an_existing_and_an_unknown_account(admin, dana, existing, unknown):
    pages = []
    for name in (existing, unknown):
        Invitation.objects.all().delete()  # each page lists only its own invitation
        response = invite(admin, name, follow=True)
        assert response.redirect_chain == [(reverse("console:member_list"), 302)]
        pages.append(_page(response, name))

    assert pages[0] == pages[1]
    assert SENT in pages[0]
    events = AuditEvent.objects.filter(action="membership.invited").order_by("id")
    assert [e.details for e in events] == [
        {"invitee": existing, "role": "viewer"},
        {"invitee": unknown, "role": "viewer"},
    ]


def test_it_refuses_a_second_invitation_alike_for_an_existing_and_an_unknown_account(admin, dana):
    # The refusal is about the admin's own pending invitation, never about the account.
    pages = []
    for name in ("dana", "nobody"):
        Invitation.objects.all().delete()
        invite(admin, name, follow=True)
        response = invite(admin, name)
        assert response.status_code == 200
        pages.append(_page(response, name))

    assert pages[0] == pages[1]
    assert "X already has a pending invitation to" in pages[0]


def test_it_keeps_invitations_to_their_users_and_organizations(
    admin, org, dana, outsider_membership
):
    invite(admin, "dana")
    invitation = pending(dana)
    stranger = logged_in(outsider_membership)  # an admin of another organization
    for name in ("invitation_accept", "invitation_decline", "invitation_cancel"):
        response = stranger.post(reverse(f"console:{name}"), {"invitation": invitation.pk})
        assert response.status_code == 404, name
    accept = reverse("console:invitation_accept")
    for nothing in ("", "abc", "-1", "9" * 30):  # a button naming no invitation
        assert stranger.post(accept, {"invitation": nothing}).status_code == 404
    assert reverse("console:invitation_list") not in stranger.get("/").content.decode()
    assert "dana" not in stranger.get(reverse("console:invitation_list")).content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.PENDING


def test_it_lets_only_admins_invite(org, engineer_membership, viewer_membership):
    for membership in (engineer_membership, viewer_membership):
        assert invite(logged_in(membership), "dana").status_code == 403
    assert not Invitation.objects.exists()


# --- The organization a user works in -----------------------------------------------------


def test_it_opens_the_organization_just_joined(admin, org, db):
    user = UserFactory(username="heidi")
    MembershipFactory(user=user, organization=OrganizationFactory(name="Aaa first by name"))
    invite(admin, "heidi")
    client = Client()
    client.post("/login/", {"username": "heidi", "password": "correct horse battery"})
    client.post(reverse("console:invitation_accept"), {"invitation": pending(user).pk})
    assert working_in(client) == org.name

    later = Client()
    later.post("/login/", {"username": "heidi", "password": "correct horse battery"})
    assert working_in(later) == org.name
