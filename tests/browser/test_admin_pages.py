"""The Django admin in a real browser, as support staff use it: find a binary by its hash,
read its record and timeline, and destroy it through the confirmation that asks why."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from binaries.models import Binary, State
from tests.browser.conftest import PASSWORD, screenshot
from tests.console_helpers import verified_binary
from tests.factories import ArtifactVersionFactory, BinarySignatureFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_lets_support_staff_find_read_and_destroy_a_binary(page: Page):
    get_user_model().objects.create_superuser(username="support", password=PASSWORD)
    version = ArtifactVersionFactory(artifact__name="gateway-firmware", version="2.4.1")
    binary = verified_binary(
        State.SIGNABLE,
        version,
        target="arm-linux-gnueabihf",
        hash="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        size=48 * 1024 * 1024,
        description="nightly",
    )
    BinarySignatureFactory(binary=binary, signing_key__name="release 2026")
    other = verified_binary(State.SIGNABLE, version, target="aarch64-linux-gnu")

    page.goto("/admin/login/")
    page.get_by_label("Username").fill("support")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.set_viewport_size({"width": 1600, "height": 900})  # a support desk's screen
    page.goto("/admin/binaries/binary/")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    page.locator("#searchbar").fill(f"sha256:{binary.hash}")
    page.get_by_role("button", name="Search").click()

    row = page.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("gateway-firmware / 2.4.1")
    expect(row).to_contain_text("48.0\xa0MB")
    expect(row).not_to_contain_text(other.prn)
    screenshot(page, "admin-binaries")

    row.get_by_role("link", name=binary.prn).click()
    expect(page.locator("body")).to_contain_text(f"sha256:{binary.hash}")
    expect(page.locator("body")).to_contain_text("release 2026")
    expect(page.get_by_label("Description")).to_have_value("nightly")
    expect(page.get_by_label("Target")).to_have_count(0)  # shown, never a field
    expect(page.locator("table").filter(has_text="binary.signable")).to_have_count(1)
    screenshot(page, "admin-binary")

    page.get_by_role("link", name="Destroy…").click()
    expect(page.locator("h1")).to_have_text("Destroy binaries: are you sure?")
    expect(page.get_by_label("Reason")).to_have_attribute("required", "")
    page.get_by_label("Reason").fill("Customer asked, ticket 4711")
    screenshot(page, "admin-destroy-confirmation")
    page.get_by_role("button", name="Destroy binaries").click()

    expect(page.locator(".messagelist")).to_contain_text("Destroyed 1 binary.")
    assert Binary.objects.get(pk=binary.pk).state == State.DESTROYED


def test_it_lets_support_staff_remove_a_member_and_shows_it_in_the_trail(page: Page):
    from peridio_console.accounts.models import AuditEvent, Membership, Role
    from tests.factories import ApiKeyFactory, MembershipFactory, OrganizationFactory

    get_user_model().objects.create_superuser(username="support", password=PASSWORD)
    org = OrganizationFactory(name="Acme Devices")
    MembershipFactory(organization=org, role=Role.ADMIN, user__username="alice")
    leaving = MembershipFactory(organization=org, role=Role.ENGINEER, user__username="bob")
    ApiKeyFactory(organization=org, user=leaving.user, name="ci")

    page.goto("/admin/login/")
    page.get_by_label("Username").fill("support")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.set_viewport_size({"width": 1600, "height": 900})
    page.goto(f"/admin/peridio_console/membership/{leaving.pk}/change/")
    expect(page.get_by_label("Role")).to_have_value("engineer")  # editable, through the service
    page.get_by_role("link", name="Remove from the organization…").click()
    expect(page.locator("h1")).to_have_text("Remove members: are you sure?")
    expect(page.locator("body")).to_contain_text("bob from Acme Devices (engineer)")
    page.get_by_label("Reason").fill("Left the company, ticket 4712")
    screenshot(page, "admin-remove-member-confirmation")
    page.get_by_role("button", name="Remove members").click()

    expect(page.locator(".messagelist")).to_contain_text(
        "Removed 1 member; their API keys there are revoked."
    )
    assert not Membership.objects.filter(pk=leaving.pk).exists()
    page.goto("/admin/peridio_console/auditevent/")
    row = page.locator("#result_list tbody tr").filter(has_text="Membership Removed")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("support")
    expect(row).to_contain_text("Admin")  # the source
    expect(page.get_by_role("link", name="Add audit event")).to_have_count(0)  # read-only
    screenshot(page, "admin-audit-events")
    event = AuditEvent.objects.get(action="membership.removed")
    assert event.details["reason"] == "Left the company, ticket 4712"
