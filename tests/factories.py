import secrets

import factory
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.contrib.auth import get_user_model

from binaries.models import (
    Artifact,
    ArtifactVersion,
    Binary,
    BinaryPart,
    BinarySignature,
    SignatureScheme,
    SigningKey,
)
from binaries.signing import parse_public_key
from peridio_console.accounts.models import ApiKey, Membership, Organization, Role, hash_secret
from tests.signing_helpers import public_pem


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


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """An API key of `user` in `organization` (pass a member: the API refuses anyone else).
    The key itself is `.secret`, as accounts.services.api_key_create returns it."""

    class Meta:
        model = ApiKey

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    secret = factory.LazyFunction(lambda: ApiKey.new_secret()[1])  # pdo_<prefix>_<random>
    prefix = factory.LazyAttribute(lambda o: o.secret.split("_")[1])
    secret_hash = factory.LazyAttribute(lambda o: hash_secret(o.secret))

    @classmethod
    def _create(cls, model_class, *args, secret: str, **kwargs):
        key = super()._create(model_class, *args, **kwargs)
        key.secret = secret  # never stored: only its hash is
        return key


class SigningKeyFactory(factory.django.DjangoModelFactory):
    """A registered public key, stored as signing_key_create stores it (algorithm, PEM and keyid
    from binaries.signing), without its audit entry. `private` is the private half (a new
    Ed25519 key unless given; any key of cryptography's that the platform accepts)."""

    class Meta:
        model = SigningKey

    class Params:
        private = factory.LazyFunction(ed25519.Ed25519PrivateKey.generate)
        parsed = factory.LazyAttribute(lambda o: parse_public_key(public_pem(o.private)))

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"release key {n}")
    algorithm = factory.LazyAttribute(lambda o: o.parsed.algorithm)
    public_key_pem = factory.LazyAttribute(lambda o: o.parsed.pem)
    keyid = factory.LazyAttribute(lambda o: o.parsed.keyid)


class BinarySignatureFactory(factory.django.DjangoModelFactory):
    """A signature row: by default a new Ed25519 key of the binary's organization signing the
    binary's hex digest (ed25519-hex-digest), which verifies. Rows only; the binary's state is
    not moved (signatures.signature_create does that)."""

    class Meta:
        model = BinarySignature

    class Params:
        private = factory.LazyFunction(ed25519.Ed25519PrivateKey.generate)

    binary = factory.SubFactory(BinaryFactory)
    signing_key = factory.SubFactory(
        SigningKeyFactory,
        organization=factory.SelfAttribute("..binary.organization"),
        private=factory.SelfAttribute("..private"),
    )
    scheme = SignatureScheme.ED25519_HEX_DIGEST
    signature = factory.LazyAttribute(lambda o: o.private.sign(o.binary.hash.encode()))


class BinaryPartFactory(factory.django.DjangoModelFactory):
    """A declared part row (the next index of its binary), its bytes not stored."""

    class Meta:
        model = BinaryPart

    binary = factory.SubFactory(BinaryFactory)
    index = factory.LazyAttribute(lambda o: o.binary.parts.count() + 1)
    hash = "b" * 64
    size = 10
    token = factory.LazyFunction(lambda: secrets.token_hex(16))


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
