"""Keys and signatures made by the real `openssl` command line, exactly as the guide shows:

    openssl dgst -sha256 -sign private_key.pem -out firmware.sig firmware.bin
    peridio binary-signatures create ... --signature $(base64 firmware.sig)

and, for Ed25519 (which `openssl dgst` cannot do), the platform's convention of signing the
64-character lowercase hex digest: `openssl pkeyutl -sign -rawin -inkey key.pem -in digest.hex`.
"""

import subprocess

import pytest

from binaries.models import BinarySignature, State
from tests.api_helpers import error_of
from tests.signing_helpers import (
    ALGORITHMS,
    attach,
    openssl_keypair,
    openssl_sign,
    register,
    require_tool,
    row_counts,
    run,
    sh,
    shell_base64,
    signable_binary,
)
from tests.upload_helpers import random_bytes, sha256

pytestmark = pytest.mark.django_db

DGST_ALGORITHMS = [name for name in ALGORITHMS if name != "ed25519"]


@pytest.fixture
def workdir(tmp_path):
    require_tool("openssl")
    require_tool("base64")
    path = tmp_path / "signing"
    path.mkdir()
    return path


@pytest.fixture
def firmware(workdir):
    data = random_bytes(200_000 + 17)
    (workdir / "firmware.bin").write_bytes(data)
    return data


@pytest.fixture
def binary(client, version, actor, firmware):
    return signable_binary(client, version, actor, firmware)


def _signed(engineer_api, binary, key, signature: str, scheme: str) -> dict:
    response = attach(engineer_api, binary, key["prn"], signature)
    assert response.status_code == 201, response.content
    created = response.json()["binary_signature"]
    assert created["scheme"] == scheme
    binary.refresh_from_db()
    assert binary.state == State.SIGNED
    shown = engineer_api.get(f"/binaries/{binary.prn}").json()["binary"]
    assert shown["state"] == "signed"
    assert shown["signature_status"] == "valid"
    assert [s["prn"] for s in shown["signatures"]] == [created["prn"]]
    return created


@pytest.mark.parametrize("algorithm", DGST_ALGORITHMS)
def test_it_verifies_the_guides_openssl_dgst_signature(engineer_api, workdir, binary, algorithm):
    public = openssl_keypair(workdir, algorithm)
    key = register(engineer_api, public, name=f"openssl {algorithm}")
    assert key["algorithm"] == ALGORITHMS[algorithm][0]

    signature = openssl_sign(workdir)

    assert "\n" in signature  # `base64` wraps at 76 characters: the line breaks arrive too
    scheme = "rsa-pkcs1v15-sha256" if algorithm.startswith("rsa") else "ecdsa-sha256"
    created = _signed(engineer_api, binary, key, signature, scheme)
    assert bytes.fromhex(created["signature"]) == (workdir / "firmware.sig").read_bytes()


@pytest.mark.parametrize("algorithm", ["rsa-2048", "rsa-3072"])
@pytest.mark.parametrize(
    "saltlen", [None, "rsa_pss_saltlen:digest", "rsa_pss_saltlen:max", "rsa_pss_saltlen:0"]
)
def test_it_verifies_openssl_rsa_pss_signatures(engineer_api, workdir, binary, algorithm, saltlen):
    key = register(engineer_api, openssl_keypair(workdir, algorithm))
    options = ["rsa_padding_mode:pss", *([saltlen] if saltlen else [])]

    signature = openssl_sign(workdir, "private_key.pem", *options)

    _signed(engineer_api, binary, key, signature, "rsa-pss-sha256")


def test_it_verifies_openssl_ed25519_over_the_hex_digest(engineer_api, workdir, binary, firmware):
    key = register(engineer_api, openssl_keypair(workdir, "ed25519", name="key.pem"))
    # The 64-character lowercase hex digest, without a newline.
    sh("sha256sum firmware.bin | cut -d' ' -f1 | tr -d '\\n' > digest.hex", workdir)
    assert (workdir / "digest.hex").read_text() == sha256(firmware)

    run(
        [
            "openssl",
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            "key.pem",
            "-in",
            "digest.hex",
            "-out",
            "firmware.sig",
        ],
        workdir,
    )

    _signed(engineer_api, binary, key, shell_base64(workdir, "firmware.sig"), "ed25519-hex-digest")


def test_it_verifies_openssl_ed25519_over_the_raw_digest(engineer_api, workdir, binary):
    key = register(engineer_api, openssl_keypair(workdir, "ed25519", name="key.pem"))
    run(["openssl", "dgst", "-sha256", "-binary", "-out", "digest.bin", "firmware.bin"], workdir)

    run(
        [
            "openssl",
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            "key.pem",
            "-in",
            "digest.bin",
            "-out",
            "firmware.sig",
        ],
        workdir,
    )

    _signed(engineer_api, binary, key, shell_base64(workdir, "firmware.sig"), "ed25519-raw-digest")


def test_it_takes_the_signature_as_hex_from_xxd(engineer_api, workdir, binary):
    require_tool("xxd")
    key = register(engineer_api, openssl_keypair(workdir, "rsa-3072"))
    openssl_sign(workdir)

    hex_lines = run(["xxd", "-p", "firmware.sig"], workdir).stdout

    assert hex_lines.count("\n") > 1  # xxd -p breaks lines at 60 characters
    _signed(engineer_api, binary, key, hex_lines, "rsa-pkcs1v15-sha256")


def test_it_takes_a_signature_given_on_the_guides_command_line(engineer_api, workdir, binary):
    """The guide's `--signature $(base64 firmware.sig)`, unquoted: the shell word-splits the
    wrapped base64 at its line breaks; joined back with spaces it still verifies."""
    key = register(engineer_api, openssl_keypair(workdir, "rsa-3072"))
    openssl_sign(workdir)

    words = sh('printf "%s " $(base64 firmware.sig)', workdir).stdout

    assert words.count(" ") > 2
    _signed(engineer_api, binary, key, words, "rsa-pkcs1v15-sha256")


def test_it_agrees_with_openssl_on_what_was_signed(engineer_api, workdir, binary):
    """`openssl dgst -verify` accepts the signature the server accepted: the server checked it
    against the verified digest without re-reading the content, yet over the same bytes."""
    public = openssl_keypair(workdir, "ecdsa-p256")
    (workdir / "public.pem").write_text(public)
    key = register(engineer_api, public)
    signature = openssl_sign(workdir)

    _signed(engineer_api, binary, key, signature, "ecdsa-sha256")

    verified = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            "public.pem",
            "-signature",
            "firmware.sig",
            "firmware.bin",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.stdout.strip() == "Verified OK"


# --- What openssl makes that is refused ------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256", "rsa-2048"])
def test_it_refuses_openssl_signatures_by_the_wrong_key(engineer_api, workdir, binary, algorithm):
    key = register(engineer_api, openssl_keypair(workdir, algorithm, name="registered.pem"))
    openssl_keypair(workdir, algorithm, name="private_key.pem")  # another key, never registered
    if algorithm == "ed25519":
        (workdir / "digest.hex").write_text(binary.verified_hash)
        run(
            [
                "openssl",
                "pkeyutl",
                "-sign",
                "-rawin",
                "-inkey",
                "private_key.pem",
                "-in",
                "digest.hex",
                "-out",
                "firmware.sig",
            ],
            workdir,
        )
        signature = shell_base64(workdir, "firmware.sig")
    else:
        signature = openssl_sign(workdir)
    before = row_counts()

    response = attach(engineer_api, binary, key["prn"], signature)

    assert response.status_code == 400
    assert "does not verify with signing key" in error_of(response)["message"]
    assert row_counts() == before
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE


def test_it_refuses_an_openssl_signature_of_another_file(engineer_api, workdir, binary, firmware):
    key = register(engineer_api, openssl_keypair(workdir, "rsa-2048"))
    (workdir / "firmware.bin").write_bytes(firmware[:-1] + bytes([firmware[-1] ^ 1]))
    signature = openssl_sign(workdir)

    response = attach(engineer_api, binary, key["prn"], signature)

    assert response.status_code == 400
    assert "Sign this exact file" in error_of(response)["message"]
    assert not BinarySignature.objects.exists()


def test_it_refuses_an_ed25519_signature_of_the_digest_with_a_newline(
    engineer_api, workdir, binary
):
    """`sha256sum | cut -d' ' -f1 > digest.hex` keeps the newline: 65 bytes were signed."""
    key = register(engineer_api, openssl_keypair(workdir, "ed25519", name="key.pem"))
    sh("sha256sum firmware.bin | cut -d' ' -f1 > digest.hex", workdir)
    run(
        [
            "openssl",
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            "key.pem",
            "-in",
            "digest.hex",
            "-out",
            "firmware.sig",
        ],
        workdir,
    )

    response = attach(engineer_api, binary, key["prn"], shell_base64(workdir, "firmware.sig"))

    assert response.status_code == 400
    assert "ed25519-hex-digest" in error_of(response)["message"]


def test_it_refuses_keys_openssl_makes_that_are_not_usable(engineer_api, workdir):
    rsa1024 = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.pem"
    sh(rsa1024, workdir)
    sh("openssl ecparam -name secp256k1 -genkey -noout -out k1.pem", workdir)
    sh(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout cert-key.pem -out cert.pem -subj /CN=firmware -days 1",
        workdir,
    )
    refusals = {
        "rsa1024.pem (public)": (
            run(["openssl", "pkey", "-in", "rsa1024.pem", "-pubout"], workdir).stdout,
            "RSA keys must be at least 2048 bits; this one is 1024.",
        ),
        "k1.pem (public)": (
            run(["openssl", "pkey", "-in", "k1.pem", "-pubout"], workdir).stdout,
            "ECDSA keys must be on P-256 or P-384; this one is on secp256k1.",
        ),
        "cert.pem": ((workdir / "cert.pem").read_text(), "That is a certificate"),
        "cert-key.pem": (
            (workdir / "cert-key.pem").read_text(),
            "That is a PRIVATE key. It was not stored. Treat it as exposed",
        ),
        "k1.pem": ((workdir / "k1.pem").read_text(), "It was not stored"),
    }
    before = row_counts()

    for name, (value, message) in refusals.items():
        response = engineer_api.post("/signing_keys", {"name": name, "value": value})
        assert response.status_code == 400, name
        assert message in error_of(response)["message"], name
    assert row_counts() == before

    # What the refusals suggest works: the certificate's key, and the private key's public half.
    from_cert = run(["openssl", "x509", "-in", "cert.pem", "-pubkey", "-noout"], workdir).stdout
    assert register(engineer_api, from_cert, name="from cert")["algorithm"] == "ecdsa-p256"
    (workdir / "private.pem").write_text((workdir / "cert-key.pem").read_text())
    suggested = run(["openssl", "pkey", "-in", "private.pem", "-pubout"], workdir).stdout
    assert suggested == from_cert
