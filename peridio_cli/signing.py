"""Signing on this machine with `cryptography` (imported only when needed).

The platform's conventions, which the server verifies:
- Ed25519 signs the 64-character lowercase hex SHA-256 of the content;
- RSA (PKCS#1 v1.5) and ECDSA sign the content with SHA-256 — computed from the digest
  (Prehashed), identical to `openssl dgst -sha256 -sign key.pem -out firmware.sig firmware.bin`.
"""

import base64
import os
import sys
from typing import Any

from peridio_cli.errors import UsageProblem


def _read(path: str, what: str) -> bytes:
    try:
        with open(os.path.expanduser(path), "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageProblem(f"cannot read {what} {path}: {exc.strerror}.") from None


def _ask_password(path: str) -> bytes | None:
    """PERIDIO_SIGNING_KEY_PASSWORD, else a prompt when there is a terminal to ask on."""
    value = os.environ.get("PERIDIO_SIGNING_KEY_PASSWORD")
    if value:
        return value.encode()
    if not sys.stdin.isatty():
        return None
    import getpass

    try:
        return getpass.getpass(f"Password for {path}: ").encode() or None
    except EOFError:
        return None


def load_private_key(path: str) -> Any:
    """The private key of a PEM or DER file; an encrypted one is decrypted with
    PERIDIO_SIGNING_KEY_PASSWORD, or a password asked for on the terminal."""
    from cryptography.hazmat.primitives import serialization

    data = _read(path, "the private key")
    loader = (
        serialization.load_pem_private_key
        if b"-----BEGIN" in data
        else serialization.load_der_private_key
    )
    try:
        return loader(data, password=None)
    except TypeError:  # encrypted
        pass
    except ValueError as exc:
        raise UsageProblem(
            f"{path} is not a private key in PEM or DER (PKCS#8, PKCS#1 or SEC1): {exc}"
        ) from None
    password = _ask_password(path)
    if password is None:
        raise UsageProblem(
            f"the private key {path} is encrypted: set PERIDIO_SIGNING_KEY_PASSWORD, or run "
            "on a terminal to be asked for its password."
        )
    try:
        return loader(data, password=password)
    except (TypeError, ValueError):
        raise UsageProblem(
            f"cannot decrypt the private key {path}: wrong password "
            "(PERIDIO_SIGNING_KEY_PASSWORD or the one typed)."
        ) from None


def describe(key: Any) -> str:
    """ "Ed25519", "RSA 2048", "ECDSA secp256r1"... of a public or private key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__


def public_key_of_value(value: str) -> Any:
    """A registered signing key's value (PEM, or base64 of a raw Ed25519 key) as a key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    text = value.strip()
    if text.startswith("-----BEGIN"):
        return serialization.load_pem_public_key(text.encode())
    return ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(text))


def matches(private_key: Any, value: str) -> bool:
    """Whether the private key is the one whose public half a signing key holds."""
    from cryptography.hazmat.primitives import serialization

    def spki(key: Any) -> bytes:
        return bytes(
            key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    try:
        registered = public_key_of_value(value)
    except (ValueError, TypeError):
        return False
    return spki(private_key.public_key()) == spki(registered)


def sign_digest(key: Any, hex_digest: str) -> tuple[bytes, str]:
    """(signature, scheme) over a binary whose SHA-256 is hex_digest."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

    hex_digest = hex_digest.lower()
    digest = bytes.fromhex(hex_digest)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(hex_digest.encode("ascii")), "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        return signature, "rsa-pkcs1v15-sha256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))), "ecdsa-sha256"
    raise UsageProblem(
        f"cannot sign with a {type(key).__name__}: use an Ed25519, RSA or ECDSA private key."
    )


def signature_b64(key: Any, hex_digest: str) -> str:
    """Base64 of the signature of a loaded private key (load_private_key)."""
    signature, _ = sign_digest(key, hex_digest)
    return base64.b64encode(signature).decode("ascii")


def public_key_text(path: str) -> str:
    """What to register as a signing key from a file: a public key PEM as it is; for a
    private key, its public half (a private key never leaves this machine)."""
    data = _read(path, "the key file")
    text = data.decode("utf-8", errors="replace").strip()
    if "PRIVATE KEY-----" not in text:
        return text
    from cryptography.hazmat.primitives import serialization

    key = load_private_key(path)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return str(public.decode("ascii").strip())
