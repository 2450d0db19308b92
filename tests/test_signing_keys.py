"""Signing keys in the API: registering public keys of each algorithm, refusing anything else
(without writing a row), duplicates, scoping, and revocation (admins only)."""

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ed448, x25519
from cryptography.x509.oid import NameOID

from binaries.models import SigningKey
from peridio_console.accounts.models import AuditEvent
from tests.api_helpers import error_of
from tests.signing_helpers import (
    ALGORITHMS,
    cached_key,
    generate,
    keyid_of,
    private_pem,
    public_pem,
    register,
    row_counts,
)

pytestmark = pytest.mark.django_db


def _certificate(private) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "firmware signing")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _raw_public(private) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _seed(private) -> bytes:
    return private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def _private_der(private) -> bytes:
    return private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# A private seed (any 32 bytes are one) that, unlike about half of all seeds, does not decode
# to a point of the curve: it cannot be a public key.
NOT_A_POINT = b"\x02" * 32


# --- Registering ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_it_registers_a_public_key_of_each_algorithm(engineer_api, org, algorithm):
    private = cached_key(algorithm)
    pem = public_pem(private)

    response = engineer_api.post("/signing_keys", {"name": f"{algorithm} key", "value": pem})

    assert response.status_code == 201, response.content
    key = response.json()["signing_key"]
    assert key["name"] == f"{algorithm} key"
    assert key["algorithm"] == ALGORITHMS[algorithm][0]
    assert key["value"] == pem
    assert key["keyid"] == keyid_of(private)
    assert key["revoked_at"] is None
    assert key["prn"].startswith(f"prn:1:{org.uuid}:signing_key:")
    assert key["organization_prn"] == org.prn
    stored = SigningKey.objects.get()
    assert (stored.organization, stored.keyid) == (org, keyid_of(private))

    shown = engineer_api.get(f"/signing_keys/{key['prn']}")
    assert shown.status_code == 200
    assert shown.json() == {"signing_key": key}
    listed = engineer_api.get("/signing_keys")
    assert listed.json()["signing_keys"] == [key]

    event = AuditEvent.objects.get(action="signing_key.created")
    assert event.object_prn == key["prn"]
    assert event.details == {
        "name": key["name"],
        "algorithm": key["algorithm"],
        "keyid": key["keyid"],
    }


def test_it_registers_a_raw_ed25519_key_given_as_base64(engineer_api):
    private = generate("ed25519")

    key = register(engineer_api, base64.b64encode(_raw_public(private)).decode())

    assert key["algorithm"] == "ed25519"
    assert key["keyid"] == keyid_of(private)
    assert key["value"] == public_pem(private)  # stored and shown as PEM


def test_it_accepts_a_pkcs1_rsa_public_key_and_surrounding_whitespace(engineer_api):
    private = cached_key("rsa-2048")
    pkcs1 = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        .decode()
    )
    assert "BEGIN RSA PUBLIC KEY" in pkcs1

    key = register(engineer_api, "\n  " + pkcs1 + "\n\n")

    assert key["algorithm"] == "rsa"
    assert key["keyid"] == keyid_of(private)


def test_it_refuses_a_key_already_registered_in_the_organization(engineer_api):
    private = generate("ed25519")
    first = register(engineer_api, public_pem(private), name="first")
    before = row_counts()

    again = engineer_api.post("/signing_keys", {"name": "again", "value": public_pem(private)})
    raw = base64.b64encode(_raw_public(private)).decode()
    same_key_raw = engineer_api.post("/signing_keys", {"name": "raw", "value": raw})

    for response in (again, same_key_raw):
        assert response.status_code == 409
        error = error_of(response)
        assert error["code"] == "already_exists"
        assert error["field"] == "value"
        assert "'first'" in error["message"] and first["prn"] in error["message"]
    assert row_counts() == before


def test_it_lets_another_organization_register_the_same_key(engineer_api, outsider_api):
    private = generate("ecdsa-p256")
    mine = register(engineer_api, public_pem(private))

    theirs = register(outsider_api, public_pem(private))

    assert theirs["keyid"] == mine["keyid"]
    assert theirs["prn"] != mine["prn"]
    assert SigningKey.objects.count() == 2


def _refusals() -> list:
    ed = cached_key("ed25519")
    rsa2048 = cached_key("rsa-2048")
    p256 = cached_key("ecdsa-p256")
    pem_body = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAnotakey\n-----END PUBLIC KEY-----\n"
    private_message = "PRIVATE key. It was not stored. Treat it as exposed"
    return [
        pytest.param(private_pem(ed), private_message, id="pkcs8-private-key"),
        pytest.param(
            private_pem(rsa2048, serialization.PrivateFormat.TraditionalOpenSSL),
            private_message,
            id="rsa-private-key",
        ),
        pytest.param(
            private_pem(p256, serialization.PrivateFormat.TraditionalOpenSSL),
            private_message,
            id="ec-private-key",
        ),
        pytest.param(
            private_pem(ed, serialization.PrivateFormat.OpenSSH),
            private_message,
            id="openssh-private-key",
        ),
        pytest.param(
            public_pem(generate("rsa-1024")),
            "RSA keys must be at least 2048 bits; this one is 1024.",
            id="rsa-1024",
        ),
        pytest.param(
            public_pem(generate("ecdsa-secp256k1")),
            "ECDSA keys must be on P-256 or P-384; this one is on secp256k1.",
            id="secp256k1",
        ),
        pytest.param(
            _certificate(p256),
            "That is a certificate, not a public key; extract its key with "
            "`openssl x509 -in cert.pem -pubkey -noout`.",
            id="certificate",
        ),
        pytest.param(
            public_pem(ed448.Ed448PrivateKey.generate()),
            "Ed448 keys are not supported; use Ed25519, ECDSA P-256/P-384 or RSA",
            id="ed448",
        ),
        pytest.param(
            public_pem(x25519.X25519PrivateKey.generate()),
            "X25519 keys are not supported",
            id="x25519",
        ),
        pytest.param(
            public_pem(dsa.generate_private_key(key_size=2048)),
            "DSA keys are not supported",
            id="dsa",
        ),
        pytest.param(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9vcHMgbm90IGEga2V5 me@laptop",
            "value must be a public key in PEM (-----BEGIN PUBLIC KEY-----), or the base64 of "
            "a raw 32-byte Ed25519 key",
            id="openssh-public-key",
        ),
        pytest.param(
            "not a key at all",
            "got 16 characters of something else",
            id="garbage",
        ),
        pytest.param(
            base64.b64encode(b"\x00" * 31).decode(),
            "raw 32-byte Ed25519 key",
            id="raw-31-bytes",
        ),
        pytest.param(
            base64.b64encode(_seed(ed) + _raw_public(ed)).decode(),
            "That looks like a PRIVATE key (64 bytes: an Ed25519 seed and its public key)",
            id="raw-64-byte-private-key",
        ),
        pytest.param(
            base64.b64encode(_private_der(ed)).decode(),
            "That is a PRIVATE key (base64 of DER)",
            id="pkcs8-der-private-key",
        ),
        pytest.param(
            base64.b64encode(NOT_A_POINT).decode(),
            "value is 32 bytes but not an Ed25519 public key (not a point on the curve)",
            id="raw-32-byte-seed-off-the-curve",
        ),
        pytest.param(pem_body, "value is not a readable PEM public key", id="broken-pem"),
        pytest.param("   ", "value must be a public key in PEM", id="blank"),
    ]


@pytest.mark.parametrize(("value", "message"), _refusals())
def test_it_refuses_anything_but_a_supported_public_key(engineer_api, value, message):
    before = row_counts()

    response = engineer_api.post("/signing_keys", {"name": "oops", "value": value})

    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["field"] == "value"
    assert message in error["message"]
    assert row_counts() == before  # no key, no audit event
    if "private" in error["message"].lower():
        assert "openssl pkey -in private.pem -pubout" in error["message"]
        body = response.content.decode()
        secret = value.strip().splitlines()[1] if "-----" in value else value
        assert secret not in body  # the private key is never echoed back


def test_it_refuses_viewers_registering_keys(viewer_api):
    response = viewer_api.post(
        "/signing_keys", {"name": "k", "value": public_pem(generate("ed25519"))}
    )

    assert response.status_code == 403
    assert SigningKey.objects.count() == 0


# --- Scoping ----------------------------------------------------------------------------


def test_it_hides_keys_of_another_organization(engineer_api, outsider_api):
    key = register(engineer_api, public_pem(generate("ed25519")))

    assert outsider_api.get(f"/signing_keys/{key['prn']}").status_code == 404
    assert outsider_api.delete(f"/signing_keys/{key['prn']}").status_code == 404
    assert outsider_api.get("/signing_keys").json()["signing_keys"] == []
    assert SigningKey.objects.get().revoked_at is None


# --- Revocation -------------------------------------------------------------------------


def test_it_lets_only_admins_revoke(engineer_api, viewer_api, admin_api):
    key = register(engineer_api, public_pem(generate("ed25519")))
    path = f"/signing_keys/{key['prn']}"

    for api in (viewer_api, engineer_api):
        response = api.delete(path)
        assert response.status_code == 403
        assert error_of(response)["code"] == "forbidden"
        assert "Revoking signing keys needs the admin role" in error_of(response)["message"]
    assert SigningKey.objects.get().revoked_at is None
    assert not AuditEvent.objects.filter(action="signing_key.revoked").exists()

    response = admin_api.delete(path)

    assert response.status_code == 204
    assert response.content == b""
    shown = engineer_api.get(path).json()["signing_key"]
    assert shown["revoked_at"] is not None  # kept for history
    assert engineer_api.get("/signing_keys").json()["signing_keys"] == [shown]
    event = AuditEvent.objects.get(action="signing_key.revoked")
    assert event.object_prn == key["prn"]
    assert event.actor_label.startswith(admin_api.membership.user.username)
    assert event.details == {"name": key["name"], "keyid": key["keyid"], "signatures_revoked": 0}


def test_it_revokes_once(engineer_api, admin_api):
    key = register(engineer_api, public_pem(generate("ed25519")))
    assert admin_api.delete(f"/signing_keys/{key['prn']}").status_code == 204
    revoked_at = SigningKey.objects.get().revoked_at

    again = admin_api.delete(f"/signing_keys/{key['prn']}")

    assert again.status_code == 204
    assert SigningKey.objects.get().revoked_at == revoked_at
    assert AuditEvent.objects.filter(action="signing_key.revoked").count() == 1


def test_it_refuses_a_revoked_key_registered_again(engineer_api, admin_api):
    private = generate("ed25519")
    key = register(engineer_api, public_pem(private))
    admin_api.delete(f"/signing_keys/{key['prn']}")

    response = engineer_api.post("/signing_keys", {"name": "back", "value": public_pem(private)})

    assert response.status_code == 409
    assert key["prn"] in error_of(response)["message"]
    assert SigningKey.objects.count() == 1


def test_it_explains_malformed_and_unknown_key_prns(engineer_api, org):
    malformed = engineer_api.get("/signing_keys/not-a-prn")
    unknown = engineer_api.get(
        f"/signing_keys/prn:1:{org.uuid}:signing_key:00000000-0000-4000-8000-000000000000"
    )

    assert malformed.status_code == 400
    assert unknown.status_code == 404
    assert "No signing key" in error_of(unknown)["message"]
