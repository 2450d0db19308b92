"""Signing on this machine with `cryptography` (imported only when needed).

The platform's conventions, which the server verifies:
- Ed25519 signs the 64-character lowercase hex SHA-256 of the content;
- RSA (PKCS#1 v1.5) and ECDSA sign the content with SHA-256 — computed from the digest
  (Prehashed), identical to `openssl dgst -sha256 -sign key.pem -out firmware.sig firmware.bin`.
"""

import base64
import os
from typing import Any

from peridio_cli.errors import UsageProblem


def _read(path: str, what: str) -> bytes:
    try:
        with open(os.path.expanduser(path), "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageProblem(f"cannot read {what} {path}: {exc.strerror}.") from None


def _password() -> bytes | None:
    value = os.environ.get("PERIDIO_SIGNING_KEY_PASSWORD")
    return value.encode() if value else None


def load_private_key(path: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    data = _read(path, "the private key")
    loaders = (
        [serialization.load_pem_private_key]
        if b"-----BEGIN" in data
        else [serialization.load_der_private_key]
    )
    for loader in loaders:
        try:
            return loader(data, password=_password())
        except TypeError as exc:  # encrypted without a password, or the reverse
            raise UsageProblem(
                f"the private key {path} is encrypted: set PERIDIO_SIGNING_KEY_PASSWORD ({exc})."
            ) from None
        except ValueError as exc:
            raise UsageProblem(
                f"{path} is not a private key in PEM or DER (PKCS#8, PKCS#1 or SEC1): {exc}"
            ) from None
    raise UsageProblem(f"{path} is not a private key.")  # pragma: no cover


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


def signature_b64(key_path: str, hex_digest: str) -> str:
    signature, _ = sign_digest(load_private_key(key_path), hex_digest)
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
