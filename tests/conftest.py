import pytest

from peridio_console.actors import Actor
from peridio_console.models import Role
from tests.factories import MembershipFactory, OrganizationFactory


@pytest.fixture
def org(db):
    return OrganizationFactory()


@pytest.fixture
def other_org(db):
    return OrganizationFactory()


@pytest.fixture
def admin_membership(org):
    return MembershipFactory(organization=org, role=Role.ADMIN)


@pytest.fixture
def engineer_membership(org):
    return MembershipFactory(organization=org, role=Role.ENGINEER)


@pytest.fixture
def viewer_membership(org):
    return MembershipFactory(organization=org, role=Role.VIEWER)


@pytest.fixture
def outsider_membership(other_org):
    return MembershipFactory(organization=other_org, role=Role.ADMIN)


@pytest.fixture
def actor(engineer_membership):
    return Actor.for_user(engineer_membership.user)
