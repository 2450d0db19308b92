import factory
from django.contrib.auth import get_user_model

from binaries.models import Artifact, ArtifactVersion, Binary
from peridio_console.accounts.models import Membership, Organization, Role


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.ENGINEER


class ArtifactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Artifact

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"firmware-{n}")


class ArtifactVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ArtifactVersion

    artifact = factory.SubFactory(ArtifactFactory)
    organization = factory.SelfAttribute("artifact.organization")
    version = factory.Sequence(lambda n: f"1.0.{n}")


class BinaryFactory(factory.django.DjangoModelFactory):
    """A binary row as created by the service; use lifecycle.transition to move it."""

    class Meta:
        model = Binary

    artifact_version = factory.SubFactory(ArtifactVersionFactory)
    organization = factory.SelfAttribute("artifact_version.organization")
    target = factory.Sequence(lambda n: f"target-{n}")
    hash = "a" * 64
    size = 1024


# The path a binary takes from uploadable to each state, every step through the lifecycle.
PATH_TO_STATE: dict[str, list[str]] = {
    "uploadable": [],
    "hashable": ["hashable"],
    "hashing": ["hashable", "hashing"],
    "signable": ["hashable", "hashing", "signable"],
    "signed": ["hashable", "hashing", "signable", "signed"],
    "destroyed": ["hashable", "hashing", "signable", "destroyed"],
}


def binary_in_state(state: str, **kwargs) -> Binary:
    """A binary moved to `state` by lifecycle.transition, the only writer of Binary.state."""
    from binaries import lifecycle
    from peridio_console.accounts.actors import Actor

    binary = BinaryFactory(**kwargs)
    for step in PATH_TO_STATE[state]:
        lifecycle.transition(binary, to=step, actor=Actor.system("test setup"))
    return binary
