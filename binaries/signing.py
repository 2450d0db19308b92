"""Signing keys and signature checks.

A key is a public key in PEM (Ed25519, ECDSA P-256/P-384, RSA >= 2048 bits) or, for Ed25519,
the base64 of its raw 32 bytes. Any 32 bytes are also a private seed, so a raw value is taken
only when it is a point of the curve (about half of all seeds are not); a value recognisably
private (a PRIVATE KEY PEM or its DER, a 64-byte seed and public key) is refused, never stored
or shown. A signature arrives as hex or base64 and is checked against the binary's *verified*
digest, never by re-reading the content:
- Ed25519 over the 64-character lowercase hex digest (the platform's convention) or over the
  raw 32-byte digest;
- RSA (PKCS#1 v1.5 or PSS) and ECDSA over the content with SHA-256 (prehashed), which is what
  `openssl dgst -sha256 -sign key.pem -out firmware.sig firmware.bin` produces.
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from binaries.models import KeyAlgorithm, SignatureScheme, SigningKey
from peridio_console.core.errors import InvalidInput

PRIVATE_MARKERS = ("PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY")
HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
B64_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
B64URL_RE = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
MAX_SIGNATURE_TEXT = 4096


@dataclass(frozen=True)
class ParsedKey:
    algorithm: str
    pem: str
    keyid: str


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(message, field="value")


EXPOSED = (
    "It was not stored. Treat it as exposed: make a new key pair, and register only the "
    "public key (openssl pkey -in private.pem -pubout)."
)


def _private(what: str) -> InvalidInput:
    return _refuse(f"{what}. {EXPOSED}")


def _is_private_der(raw: bytes) -> bool:
    try:
        serialization.load_der_private_key(raw, password=None)
    except TypeError:  # encrypted: still a private key
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


# Ed25519's field and curve constant (RFC 8032).
P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P


def _is_ed25519_point(raw: bytes) -> bool:
    """Whether 32 bytes decode to a point of Ed25519 (RFC 8032, 5.1.3); cryptography takes
    any 32 bytes as a public key, and a value that is no point can verify nothing."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= P:
        return False
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P not in (u, -u % P):
        return False
    return x != 0 or raw[31] >> 7 == 0


def _raw_ed25519(text: str) -> ed25519.Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 64:
        raise _private(
            "That looks like a PRIVATE key (64 bytes: an Ed25519 seed and its public key), "
            "and a private key must never be pasted here"
        )
    if raw and _is_private_der(raw):
        raise _private("That is a PRIVATE key (base64 of DER)")
    if len(raw) != 32:
        raise _refuse(
            "value must be a public key in PEM (-----BEGIN PUBLIC KEY-----), or the base64 "
            f"of a raw 32-byte Ed25519 key; got {len(text)} characters of something else."
        )
    if not _is_ed25519_point(raw):
        raise _private(
            "value is 32 bytes but not an Ed25519 public key (not a point on the curve), so it "
            "may be the private seed, which must never be pasted here"
        )
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def parse_public_key(value: object) -> ParsedKey:
    """A public key from PEM or raw Ed25519 base64; anything else (a private key above all)
    is refused with a reason."""
    if not isinstance(value, str) or not value.strip():
        raise _refuse("value must be a public key in PEM, or the base64 of a raw Ed25519 key.")
    text = value.strip()
    if any(f"BEGIN {marker}" in text for marker in PRIVATE_MARKERS) or ("PRIVATE KEY-----" in text):
        raise _private("That is a PRIVATE key")
    if "BEGIN CERTIFICATE" in text:
        raise _refuse(
            "That is a certificate, not a public key; extract its key with "
            "`openssl x509 -in cert.pem -pubkey -noout`."
        )
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise _refuse(f"value is not a readable PEM public key ({exc}).") from None
    else:
        key = _raw_ed25519(text)
    algorithm = _algorithm(key)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return ParsedKey(algorithm=algorithm, pem=pem, keyid=hashlib.sha256(der).hexdigest())


def _algorithm(key: object) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return KeyAlgorithm.ECDSA_P256
        if isinstance(key.curve, ec.SECP384R1):
            return KeyAlgorithm.ECDSA_P384
        raise _refuse(f"ECDSA keys must be on P-256 or P-384; this one is on {key.curve.name}.")
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise _refuse(f"RSA keys must be at least 2048 bits; this one is {key.key_size}.")
        return KeyAlgorithm.RSA
    raise _refuse(
        f"{type(key).__name__.replace('PublicKey', '')} keys are not supported; use Ed25519, "
        "ECDSA P-256/P-384 or RSA (2048 bits or more)."
    )


def decode_signature(value: object) -> list[bytes]:
    """The candidate byte strings a signature text may mean (hex and/or base64)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("signature must be hex or base64 text.", field="signature")
    text = "".join(value.split())  # `$(base64 firmware.sig)` may arrive with line breaks
    if len(text) > MAX_SIGNATURE_TEXT:
        raise InvalidInput(
            f"signature is {len(text)} characters; no supported signature is longer than "
            f"{MAX_SIGNATURE_TEXT}.",
            field="signature",
        )
    candidates: list[bytes] = []
    if HEX_RE.match(text) and len(text) % 2 == 0:
        candidates.append(bytes.fromhex(text))
    padded = text + "=" * (-len(text) % 4)
    for alphabet, decode in ((B64_RE, base64.b64decode), (B64URL_RE, base64.urlsafe_b64decode)):
        if not alphabet.match(padded):
            continue
        try:
            decoded = decode(padded)
        except (binascii.Error, ValueError):
            continue
        if decoded and decoded not in candidates:
            candidates.append(decoded)
    if not candidates:
        raise InvalidInput(
            "signature must be hex (e.g. from `xxd -p`) or base64 "
            "(e.g. from `base64 firmware.sig`); it is neither.",
            field="signature",
        )
    return candidates


def _schemes(algorithm: str) -> tuple[str, ...]:
    if algorithm == KeyAlgorithm.ED25519:
        return (SignatureScheme.ED25519_HEX_DIGEST, SignatureScheme.ED25519_RAW_DIGEST)
    if algorithm == KeyAlgorithm.RSA:
        return (SignatureScheme.RSA_PKCS1V15_SHA256, SignatureScheme.RSA_PSS_SHA256)
    return (SignatureScheme.ECDSA_SHA256,)


def _verifies(key: object, scheme: str, signature: bytes, digest_hex: str) -> bool:
    digest = bytes.fromhex(digest_hex)
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if scheme == SignatureScheme.ED25519_HEX_DIGEST:
            key.verify(signature, digest_hex.encode())  # type: ignore[attr-defined]
        elif scheme == SignatureScheme.ED25519_RAW_DIGEST:
            key.verify(signature, digest)  # type: ignore[attr-defined]
        elif scheme == SignatureScheme.RSA_PKCS1V15_SHA256:
            key.verify(signature, digest, padding.PKCS1v15(), prehashed)  # type: ignore[attr-defined]
        elif scheme == SignatureScheme.RSA_PSS_SHA256:
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            key.verify(signature, digest, pss, prehashed)  # type: ignore[attr-defined]
        elif scheme == SignatureScheme.ECDSA_SHA256:
            return any(
                _ecdsa_verifies(key, der, digest, prehashed) for der in _ecdsa_der(key, signature)
            )
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _ecdsa_verifies(key: object, der: bytes, digest: bytes, prehashed: utils.Prehashed) -> bool:
    try:
        key.verify(der, digest, ec.ECDSA(prehashed))  # type: ignore[attr-defined]
    except (InvalidSignature, ValueError):
        return False
    return True


def _ecdsa_der(key: object, signature: bytes) -> list[bytes]:
    """openssl writes DER; some tools write raw r||s. Accept both: a signature of exactly
    twice the curve's size is read both ways (raw r||s may begin with 0x30, DER's first byte,
    one time in 256)."""
    size = (key.curve.key_size + 7) // 8  # type: ignore[attr-defined]
    if len(signature) != 2 * size:
        return [signature]
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    return [utils.encode_dss_signature(r, s), signature]


def verify(signing_key: SigningKey, signature_text: str, digest_hex: str) -> tuple[str, bytes]:
    """The scheme that verified and the signature bytes, or InvalidInput saying what was tried."""
    candidates = decode_signature(signature_text)
    key = serialization.load_pem_public_key(signing_key.public_key_pem.encode())
    schemes = _schemes(signing_key.algorithm)
    for signature in candidates:
        for scheme in schemes:
            if _verifies(key, scheme, signature, digest_hex):
                return scheme, signature
    lengths = sorted({len(c) for c in candidates})
    expected = _expected_lengths(key)
    hint = ""
    if expected and not expected.intersection(lengths):
        sizes = " or ".join(str(n) for n in sorted(expected))
        hint = f" A signature by this key is {sizes} bytes: was it cut short or mangled?"
    raise InvalidInput(
        f"The signature does not verify with signing key {signing_key.name!r} "
        f"({signing_key.keyid[:16]}…, {signing_key.algorithm}): checked {', '.join(schemes)} "
        f"over sha256:{digest_hex}, the verified content, with a "
        f"{'/'.join(str(n) for n in lengths)}-byte signature.{hint} "
        + _how_to_sign(key, digest_hex),
        field="signature",
    )


def _how_to_sign(key: object, digest_hex: str) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return (
            "An Ed25519 key signs the 64-character hex digest, not the file: sign the text "
            f"{digest_hex} with the matching private key (openssl pkeyutl -sign -rawin)."
        )
    return "Sign this exact file with the matching private key."


def _expected_lengths(key: object) -> set[int]:
    """The lengths a signature by this key can have (empty when it varies, as DER does)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {64}
    if isinstance(key, rsa.RSAPublicKey):
        return {(key.key_size + 7) // 8}
    return set()
