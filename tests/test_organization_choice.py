"""The organization a user works in after logging in: the one they last chose, never the
first by name (an organization that took them in must not take over their next log-in)."""

import re

from django.test import Client
from django.urls import reverse

from peridio_console.accounts.models import Membership
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory


def working_in(client: Client) -> str:
    match = re.search(r"<h1>([^<]+)</h1>", client.get(reverse("dashboard")).content.decode())
    assert match is not None
    return match[1]


def test_it_opens_the_organization_last_used_not_the_first_by_name(db):
    user = UserFactory(username="grace")
    home = MembershipFactory(user=user, organization=OrganizationFactory(name="Home"))
    MembershipFactory(user=user, organization=OrganizationFactory(name="Zulu"))
    # Joined last, first by name: it must not take over her next log-in.
    MembershipFactory(user=user, organization=OrganizationFactory(name="Aaa attacker"))
    first = Client()
    first.post("/login/", {"username": "grace", "password": "correct horse battery"})
    assert working_in(first) == home.organization.name

    zulu = Membership.objects.get(user=user, organization__name="Zulu")
    first.post(reverse("switch_organization"), {"organization": zulu.organization.slug})
    assert working_in(first) == "Zulu"

    second = Client()
    second.post("/login/", {"username": "grace", "password": "correct horse battery"})
    assert working_in(second) == "Zulu"
