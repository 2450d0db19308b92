"""Shared set-up for the console tests: logged-in clients, binaries in a state, real keys."""

from cryptography.hazmat.primitives.asymmetric import ed25519
from django.test import Client

from binaries import signatures
from binaries.models import Binary, SigningKey
from peridio_console.accounts.actors import Actor
from tests.factories import SigningKeyFactory, binary_in_state
from tests.signing_helpers import public_pem


def logged_in(membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


def verified_binary(state: str, version, **kwargs) -> Binary:
    """A binary moved to `state`, with a verified digest once it got that far (as hashing does)."""
    binary = binary_in_state(state, artifact_version=version, **kwargs)
    if state in ("signable", "signed", "destroyed"):
        Binary.objects.filter(pk=binary.pk).update(verified_hash=binary.hash)
        binary.refresh_from_db()
    return binary


class KeyPair:
    """A real Ed25519 key pair; signs the way the platform's clients do (the hex digest)."""

    def __init__(self) -> None:
        self.private = ed25519.Ed25519PrivateKey.generate()
        self.public_pem = public_pem(self.private)

    def sign(self, binary: Binary) -> bytes:
        return self.private.sign(binary.hash.encode())

    def register(self, organization, name: str = "release key") -> SigningKey:
        return SigningKeyFactory(organization=organization, name=name, private=self.private)


def signed_binary(version, key: SigningKey, pair: KeyPair, **kwargs) -> Binary:
    """A binary signed through the service, so it has a live signature (downloadable)."""
    binary = verified_binary("signable", version, **kwargs)
    signatures.signature_create(
        binary=binary,
        signature=pair.sign(binary).hex(),
        signing_key=key,
        actor=Actor.system("test setup"),
    )
    binary.refresh_from_db()
    return binary
