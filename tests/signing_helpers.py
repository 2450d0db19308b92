"""Real keys and signatures for the signing, download and audit tests.

Keys and signatures are made two ways: with `cryptography`, and with the `openssl` command line
exactly as the guide shows. Binaries get to `signable` through the real upload protocol (the
verification task runs eagerly once the move to hashable commits).
"""

import base64
import functools
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from django.db import DEFAULT_DB_ALIAS
from django.test import TestCase

from binaries import moves
from binaries.models import Binary, BinarySignature, SigningKey, State
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditEvent
from tests.upload_helpers import new_binary, upload_all

# name -> (what the API calls the algorithm, how openssl makes such a key)
ALGORITHMS: dict[str, tuple[str, list[str]]] = {
    "ed25519": ("ed25519", ["-algorithm", "ed25519"]),
    "ecdsa-p256": ("ecdsa-p256", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
    "ecdsa-p384": ("ecdsa-p384", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
    "rsa-2048": ("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
    "rsa-3072": ("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"]),
}

PrivateKey = Any  # one of cryptography's private key classes


def on_commit():
    """Run what waits for the commit (verification, content deletion) when the block ends,
    inside the test's transaction."""
    return TestCase.captureOnCommitCallbacks(using=DEFAULT_DB_ALIAS, execute=True)


# --- Keys with cryptography ---------------------------------------------------------------


def generate(algorithm: str) -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm == "ecdsa-secp256k1":
        return ec.generate_private_key(ec.SECP256K1())
    if algorithm.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    raise ValueError(algorithm)


@functools.cache
def cached_key(algorithm: str, n: int = 0) -> PrivateKey:
    """One key per (algorithm, n) for the whole run: RSA keys are slow to make."""
    return generate(algorithm)


def public_pem(private: PrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(private: PrivateKey, fmt: Any = serialization.PrivateFormat.PKCS8) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    ).decode()


def keyid_of(private: PrivateKey) -> str:
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def sign(private: PrivateKey, data: bytes, scheme: str | None = None) -> bytes:
    """A signature of `data` in the scheme the server names it by (default: the usual one)."""
    digest = hashlib.sha256(data)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        if scheme == "ed25519-raw-digest":
            return private.sign(digest.digest())
        return private.sign(digest.hexdigest().encode())
    if isinstance(private, ec.EllipticCurvePrivateKey):
        der = private.sign(data, ec.ECDSA(hashes.SHA256()))
        if scheme == "ecdsa-raw-rs":  # r || s, as some HSMs and JOSE libraries write it
            r, s = utils.decode_dss_signature(der)
            size = (private.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return der
    if scheme == "rsa-pss-sha256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
        return private.sign(data, pss, hashes.SHA256())
    return private.sign(data, padding.PKCS1v15(), hashes.SHA256())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wrapped_b64(data: bytes, width: int = 76) -> str:
    """What `base64 firmware.sig` prints: lines of 76 characters."""
    text = b64(data)
    return "\n".join(text[i : i + width] for i in range(0, len(text), width)) + "\n"


# --- Keys and signatures with the openssl command line --------------------------------------


def require_tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"These tests need the `{name}` command (apt-get install -y {name})."
    return found


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, (
        f"{args!r} failed ({completed.returncode}): {completed.stderr}"
    )
    return completed


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """A line of shell, as a user types it."""
    return run(["bash", "-c", script], cwd)


def openssl_keypair(workdir: Path, algorithm: str, name: str = "private_key.pem") -> str:
    """`openssl genpkey` a private key into workdir/name; the public key's PEM
    (`openssl pkey -in private_key.pem -pubout`)."""
    require_tool("openssl")
    run(["openssl", "genpkey", *ALGORITHMS[algorithm][1], "-out", name], workdir)
    return run(["openssl", "pkey", "-in", name, "-pubout"], workdir).stdout


def openssl_sign(workdir: Path, key: str = "private_key.pem", *sigopts: str) -> str:
    """The guide's two commands: `openssl dgst -sha256 -sign private_key.pem -out firmware.sig
    firmware.bin`, then the signature as the shell hands over `$(base64 firmware.sig)`."""
    options = [item for opt in sigopts for item in ("-sigopt", opt)]
    run(
        [
            "openssl",
            "dgst",
            "-sha256",
            *options,
            "-sign",
            key,
            "-out",
            "firmware.sig",
            "firmware.bin",
        ],
        workdir,
    )
    return shell_base64(workdir, "firmware.sig")


def shell_base64(workdir: Path, name: str) -> str:
    # "$(...)" keeps the line breaks of base64's output and drops the trailing one.
    return sh(f'printf %s "$(base64 {name})"', workdir).stdout


# --- Binaries and the API -------------------------------------------------------------------


def signable_binary(
    client, version, actor: Actor, data: bytes, target: str = "arm-linux-gnueabihf"
) -> Binary:
    """Created, uploaded, marked hashable and verified, as a client drives it."""
    binary = new_binary(version, actor, data, target=target)
    upload_all(client, binary, data)
    with on_commit():
        moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    return binary


def register(api, value: str, name: str = "release key") -> dict[str, Any]:
    response = api.post("/signing_keys", {"name": name, "value": value})
    assert response.status_code == 201, response.content
    return response.json()["signing_key"]


def attach(api, binary: Binary, signing_key_prn: str, signature: str):
    return api.post(
        "/binary_signatures",
        {"binary_prn": binary.prn, "signing_key_prn": signing_key_prn, "signature": signature},
    )


def signed_binary(client, api, version, actor: Actor, data: bytes, **kwargs: Any) -> Binary:
    """Uploaded, verified and signed through the API with a fresh Ed25519 key."""
    binary = signable_binary(client, version, actor, data, **kwargs)
    private = generate("ed25519")
    key = register(api, public_pem(private), name=f"key for {binary.target}")
    response = attach(api, binary, key["prn"], sign(private, data).hex())
    assert response.status_code == 201, response.content
    binary.refresh_from_db()
    assert binary.state == State.SIGNED
    return binary


def row_counts() -> dict[str, int]:
    return {
        "signing_keys": SigningKey.objects.count(),
        "binary_signatures": BinarySignature.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }
