from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import Role
from tests.console_helpers import logged_in
from tests.factories import MembershipFactory, OrganizationFactory

# Fixture modules shared by the whole suite (fixtures are found by name, never imported).
pytest_plugins = ["tests.storage_fixtures"]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    """pytest-xdist: each worker process gets a VAR_DIR of its own (its SQLite test database,
    cache, static and broker folders) and, on Redis, a database of its own (gw0 the URL's, gw1
    the next, ...). Settings read both at import, before any conftest, so they go into the
    worker's environment. PostgreSQL test databases already get a _gw<n> suffix from
    pytest-django; servers and brokers a test starts use free ports and folders of their own."""
    from django.conf import settings

    broker = urlsplit(settings.CELERY_BROKER_URL)
    for index, spec in enumerate(specs):
        spec.env["VAR_DIR"] = str(Path(settings.VAR_DIR) / "xdist" / spec.id)
        if broker.scheme in ("redis", "rediss"):
            database = int(broker.path.lstrip("/") or 0) + index
            spec.env["CELERY_BROKER_URL"] = urlunsplit(broker._replace(path=f"/{database}"))


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


@pytest.fixture
def staff_user(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser(
        username="support", email="support@example.com", password="correct horse battery"
    )


@pytest.fixture
def version(org):
    from tests.factories import ArtifactVersionFactory

    return ArtifactVersionFactory(artifact__organization=org)


# --- JSON API clients, one API key each (tests/api_helpers.py) ---


@pytest.fixture
def engineer_api(engineer_membership):
    from tests.api_helpers import ApiClient

    return ApiClient.for_membership(engineer_membership)


@pytest.fixture
def admin_api(admin_membership):
    from tests.api_helpers import ApiClient

    return ApiClient.for_membership(admin_membership)


@pytest.fixture
def viewer_api(viewer_membership):
    from tests.api_helpers import ApiClient

    return ApiClient.for_membership(viewer_membership)


@pytest.fixture
def outsider_api(outsider_membership):
    """An admin of another organization: everything of `org` must be 'not found' to them."""
    from tests.api_helpers import ApiClient

    return ApiClient.for_membership(outsider_membership)


# --- Console clients, logged in as one member each (tests/console_helpers.py) ---


def _console_client(member: str):
    """The fixture `admin` for `admin_membership`, and so on: a client logged in as them."""

    @pytest.fixture(name=member.removesuffix("_membership"))
    def console_client(request):
        return logged_in(request.getfixturevalue(member))

    return console_client


admin = _console_client("admin_membership")
engineer = _console_client("engineer_membership")
viewer = _console_client("viewer_membership")
outsider = _console_client("outsider_membership")


@pytest.fixture
def eager_retries(settings):
    """Eager tasks retry only when their errors are not propagated (a Retry is an exception):
    what a worker does with a retry, minus the countdown."""
    settings.CELERY_TASK_EAGER_PROPAGATES = False


@pytest.fixture(autouse=True)
def binaries_root(settings, tmp_path):
    """Every test keeps binaries on the filesystem backend in a folder of its own, never in the
    real var/ (the `backend` fixture switches to S3 on top of this). The live server runs in
    this process and sees the same settings; a subprocess needs the folder passed to it."""
    settings.STORAGE_BACKEND = "filesystem"
    settings.BINARIES_ROOT = tmp_path / "binaries"
    return settings.BINARIES_ROOT


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # UserFactory sets a password; the production hasher costs ~0.3 s per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Login throttling counts live in the cache; no test inherits another's failures."""
    from django.core.cache import cache

    cache.clear()
    yield
