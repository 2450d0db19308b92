"""Management commands: create_org, create_api_key and bootstrap."""

import re
import secrets
import stat
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from peridio_console.accounts.models import ApiKey, Membership, Organization, Role
from peridio_console.accounts.services import api_key_authenticate
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

User = get_user_model()


def run(*args, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


# --- create_org ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_an_organization_with_a_new_admin_and_prints_its_password():
    output = run("create_org", "Acme Devices", "--admin", "alice")

    org = Organization.objects.get()
    assert org.name == "Acme Devices"
    assert org.slug == "acme-devices"
    user = User.objects.get(username="alice")
    membership = Membership.objects.get(user=user, organization=org)
    assert membership.role == Role.ADMIN
    assert f"Created organization Acme Devices (slug acme-devices, {org.prn})." in output
    assert "alice is its admin." in output
    match = re.search(r"New user alice's password: (\S+)$", output, re.MULTILINE)
    assert match is not None
    assert user.check_password(match.group(1))
    assert user.is_active


@pytest.mark.django_db
def test_it_creates_the_admin_with_the_given_password_and_does_not_print_it():
    output = run("create_org", "Acme", "--admin", "alice", "--password", "s3cret-enough-pw")

    user = User.objects.get(username="alice")
    assert user.check_password("s3cret-enough-pw")
    assert "s3cret-enough-pw" not in output
    assert "password" not in output
    assert Membership.objects.get(user=user).role == Role.ADMIN


@pytest.mark.django_db
def test_it_makes_an_existing_user_admin_of_a_new_organization():
    existing = UserFactory(username="bob")
    MembershipFactory(user=existing, role=Role.VIEWER)

    output = run("create_org", "Second", "--admin", "bob")

    assert User.objects.filter(username="bob").count() == 1
    assert existing.memberships.count() == 2
    org = Organization.objects.get(name="Second")
    assert Membership.objects.get(user=existing, organization=org).role == Role.ADMIN
    existing.refresh_from_db()
    assert existing.check_password("correct horse battery")
    assert "password" not in output


@pytest.mark.django_db
def test_it_sets_an_existing_user_s_password_when_given():
    existing = UserFactory(username="bob")

    run("create_org", "Second", "--admin", "bob", "--password", "a-new-password-1")

    existing.refresh_from_db()
    assert existing.check_password("a-new-password-1")


@pytest.mark.django_db
def test_it_gives_two_organizations_of_the_same_name_different_slugs():
    run("create_org", "Acme", "--admin", "alice")
    run("create_org", "Acme", "--admin", "alice")

    assert sorted(Organization.objects.values_list("slug", flat=True)) == ["acme", "acme-2"]


@pytest.mark.django_db
def test_it_refuses_an_organization_without_a_name():
    with pytest.raises(CommandError, match=r"An organization needs a name\."):
        run("create_org", "   ", "--admin", "alice")

    assert not Organization.objects.exists()
    assert not User.objects.exists()


# --- create_api_key -----------------------------------------------------------------------


@pytest.fixture
def member(db):
    return MembershipFactory(
        organization=OrganizationFactory(slug="acme"), user=UserFactory(username="ci")
    )


@pytest.mark.parametrize(
    "token",
    ["AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-AbCdEf", "AbCdEfGhIjKlMnOpQrSt_UvWxYz0123456789-AbCd"],
    ids=["without-underscore", "with-underscore"],
)
def test_it_prints_only_a_key_that_authenticates(member, monkeypatch, token):
    # secrets.token_urlsafe draws from A-Z a-z 0-9 - and _, so about half of real keys
    # contain an underscore; both kinds must authenticate.
    monkeypatch.setattr(secrets, "token_urlsafe", lambda nbytes=None: token)

    output = run("create_api_key", "--org", "acme", "--user", "ci", "--name", "pipeline")

    key_text = output.strip()
    assert output == key_text + "\n"
    assert "\n" not in key_text
    assert key_text.startswith("pdo_")
    key = ApiKey.objects.get()
    assert key.name == "pipeline"
    assert key_text not in key.secret_hash
    found = api_key_authenticate(key_text)
    assert found == key
    assert found.organization == member.organization
    assert found.user == member.user


def test_it_prints_keys_that_authenticate_every_time(member):
    for _ in range(16):
        key_text = run("create_api_key", "--org", "acme", "--user", "ci").strip()
        assert api_key_authenticate(key_text) is not None, key_text


def test_it_does_not_authenticate_a_tampered_key(member):
    key_text = run("create_api_key", "--org", "acme", "--user", "ci").strip()

    assert api_key_authenticate(key_text[:-1] + ("A" if key_text[-1] != "A" else "B")) is None
    assert api_key_authenticate("pdo_nothing_here") is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "nope", "--user", "ci"], "No organization with slug 'nope'."),
        (["--org", "acme", "--user", "nobody"], "No user named 'nobody'."),
    ],
)
def test_it_refuses_an_unknown_organization_or_user(member, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("create_api_key", *args)

    assert not ApiKey.objects.exists()


def test_it_refuses_a_user_who_is_not_a_member(member):
    UserFactory(username="stranger")

    with pytest.raises(CommandError, match="stranger is not a member of acme"):
        run("create_api_key", "--org", "acme", "--user", "stranger")

    assert not ApiKey.objects.exists()


# --- bootstrap ----------------------------------------------------------------------------


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.mark.django_db
def test_it_bootstraps_an_admin_and_an_organization_once(var_dir):
    first = run("bootstrap")
    second = run("bootstrap")

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert Organization.objects.count() == 1
    membership = Membership.objects.get(user=admin)
    assert membership.role == Role.ADMIN
    password_file = var_dir / "admin-password"
    password = password_file.read_text().strip()
    assert admin.check_password(password)
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    for output in (first, second):
        assert f"Log in as admin with password {password} (kept in {password_file})." in output
        assert "Peridio Console: http://127.0.0.1:" in output
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_it_does_not_print_a_stale_password(var_dir):
    run("bootstrap")
    admin = User.objects.get(username="admin")
    admin.set_password("changed-by-the-admin")
    admin.save()

    output = run("bootstrap")

    stale = (var_dir / "admin-password").read_text().strip()
    assert stale not in output
    assert "Log in as admin with the password you set" in output


@pytest.mark.django_db
def test_it_gives_an_existing_admin_without_an_organization_one(var_dir):
    User.objects.create_superuser(username="admin", email="", password="mine-own-password")

    output = run("bootstrap")

    admin = User.objects.get(username="admin")
    assert admin.check_password("mine-own-password")
    assert Membership.objects.get(user=admin).role == Role.ADMIN
    assert not (var_dir / "admin-password").exists()
    assert "Log in as admin with the password you set" in output
