"""An organization with one object of every kind, for the fuzzing and isolation tests.

`populate` drives the real protocol (upload, eager verification, a signature through the API)
so every page and endpoint that takes a path parameter has something real to point at.
"""

from dataclasses import dataclass, field
from typing import Any

from django.test import Client

from binaries import services
from binaries.models import Artifact, ArtifactVersion, Binary, BinaryPart, BinarySignature
from binaries.models import SigningKey as SigningKeyModel
from peridio_console.accounts.models import ApiKey, Membership, Role
from tests.api_helpers import ApiClient
from tests.factories import ArtifactVersionFactory, MembershipFactory, OrganizationFactory
from tests.signing_helpers import attach, generate, public_pem, register, sign, signable_binary
from tests.upload_helpers import declare, random_bytes


@dataclass
class World:
    """One organization's objects; `secrets` are strings that must never reach an outsider."""

    membership: Membership
    api: ApiClient
    artifact: Artifact
    version: ArtifactVersion
    uploadable: Binary
    signable: Binary
    signed: Binary
    part: BinaryPart
    signing_key: SigningKeyModel
    signature: BinarySignature
    api_key: ApiKey
    admin_membership: Membership
    signed_data: bytes = b""
    secrets: list[str] = field(default_factory=list)

    @property
    def organization(self) -> Any:
        return self.membership.organization

    def prn_for(self, kind: str) -> str:
        return {
            "artifact": self.artifact.prn,
            "artifact_version": self.version.prn,
            "binary": self.signed.prn,
            "signing_key": self.signing_key.prn,
            "binary_signature": self.signature.prn,
        }[kind]


def populate(name: str, role: str = Role.ADMIN) -> World:
    """A new organization named `name` whose member (of `role`) holds an API key, with an
    artifact, a version, binaries uploadable / signable / signed, a part, a signing key and a
    signature. Needs the test database and eager verification (the suite's default)."""
    organization = OrganizationFactory(name=f"{name} Org", slug=f"{name.lower()}-org")
    low = name.lower()
    membership = MembershipFactory(
        organization=organization, role=role, user__username=f"{low}-member"
    )
    admin = MembershipFactory(
        organization=organization, role=Role.ADMIN, user__username=f"{low}-admin"
    )
    api = ApiClient.for_membership(membership)
    version = ArtifactVersionFactory(
        artifact__organization=organization,
        artifact__name=f"{name.lower()}-firmware",
        version=f"9.{len(name)}.7-{name.lower()}",
    )
    from peridio_console.accounts.actors import Actor

    actor = Actor.for_user(membership.user)
    client = Client()
    uploadable = services.binary_create(
        artifact_version=version,
        target=f"{name.lower()}-soc-v1",
        actor=actor,
        hash="ab" * 32,
        size=3,
        description=f"{name} uploadable secret",
    )
    part = declare(uploadable, 1, b"abc").part
    signable = signable_binary(client, version, actor, random_bytes(700), target="x86_64-linux-gnu")
    data = random_bytes(900)
    signed = signable_binary(client, version, actor, data, target="aarch64-linux-gnu")
    private = generate("ed25519")
    admin_api = ApiClient.for_membership(admin)
    key = register(admin_api, public_pem(private), name=f"{name} release key")
    response = attach(admin_api, signed, key["prn"], sign(private, data).hex())
    assert response.status_code == 201, response.content
    signed.refresh_from_db()
    key_row = SigningKeyModel.objects.get(organization=organization)
    signature = BinarySignature.objects.get(binary=signed)
    api_key = ApiKey.objects.filter(organization=organization).order_by("pk").first()
    assert api_key is not None
    world = World(
        membership=membership,
        api=api,
        artifact=version.artifact,
        version=version,
        uploadable=uploadable,
        signable=signable,
        signed=signed,
        part=part,
        signing_key=key_row,
        signature=signature,
        api_key=api_key,
        admin_membership=admin,
        signed_data=data,
    )
    world.secrets = [
        str(organization.name),
        str(organization.slug),
        str(organization.uuid),
        str(version.artifact.name),
        str(version.version),
        f"{name.lower()}-soc-v1",
        f"{name} uploadable secret",
        f"{name} release key",
        membership.user.username,
        admin.user.username,
        signed.hash or "",
        signable.hash or "",
    ]
    # Every PRN names the organization's UUID, so that string covers them all.
    return world
