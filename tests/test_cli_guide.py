"""Every `peridio` example of the binaries guide, run VERBATIM by bash against a live server
(gunicorn) with a real Celery worker verifying the uploads.

Each snippet below is checked to appear, character for character, in spec/binaries-guide.txt.
Only what the guide leaves to the reader is set around it: the shell variables it uses
($VERSION_PRN, $FILE_HASH, $BINARY_PRN, $KEY_PRN...), the files it names (firmware.bin,
private_key.pem, a Makefile for `make TARGET=$TARGET`), and two documented adaptations:
- the split loop uses $NUMBER without ever setting it: one line, `NUMBER=$((NUMBER+1))`, is
  added at the top of its body;
- the CI/CD example is a GitHub Actions `run:` block: its `${{ ... }}` expressions are
  substituted as Actions does before bash runs it.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import (
    MiB,
    Stack,
    create_args,
    guide_text,
    random_file,
    running_stack,
    sha256_file,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

VIA_CLI_CREATE = """# Create binary
peridio binaries create \\
--artifact-version-prn $VERSION_PRN \\
--target "arm-linux-gnueabihf" \\
--hash $FILE_HASH \\
--size $FILE_SIZE
"""
VIA_CLI_UPLOAD = """# Upload content
peridio binaries upload \\
--binary-prn $BINARY_PRN \\
--file firmware.bin
"""
DIRECT_UPLOAD = """For files under 100MB:
peridio binaries upload \\
--binary-prn $BINARY_PRN \\
--file firmware.bin
"""
SPLIT_LOOP = """# Split file into parts
split -b 10M firmware.bin part_
# Upload each part
for part in part_*; do
peridio binary-parts create \\
--binary-prn $BINARY_PRN \\
--part-number $NUMBER \\
--file $part
done
"""
NUMBER_LINE = "NUMBER=$((NUMBER+1))\n"
COMPLETE_UPLOAD = """peridio binaries update \\
--prn $BINARY_PRN \\
--state hashable
"""
PROVIDE_HASH = """HASH=$(sha256sum firmware.bin | cut -d' ' -f1)
SIZE=$(stat -f%z firmware.bin) # macOS
SIZE=$(stat -c%s firmware.bin) # Linux
peridio binaries create \\
--hash "sha256:$HASH" \\
--size $SIZE
"""
SIGNATURE = """# Generate signature
openssl dgst -sha256 -sign private_key.pem \\
-out firmware.sig firmware.bin
# Attach to binary
peridio binary-signatures create \\
--binary-prn $BINARY_PRN \\
--signing-key-prn $KEY_PRN \\
--signature $(base64 firmware.sig)
"""
LISTING = """# List all binaries for a version
peridio binaries list \\
--artifact-version-prn $VERSION_PRN
# Filter by target
peridio binaries list \\
--artifact-version-prn $VERSION_PRN \\
--target "arm-linux-gnueabihf"
"""
GET = "peridio binaries get --prn $BINARY_PRN\n"
RESET = """peridio binaries update \\
--prn $BINARY_PRN \\
--state uploadable
"""
DESTROY = "peridio binaries destroy --prn $BINARY_PRN\n"
MULTI_ARCH = """# Build for multiple targets
TARGETS="x86_64-linux-gnu aarch64-linux-gnu arm-linux-gnueabihf"
for TARGET in $TARGETS; do
# Build
make TARGET=$TARGET
# Create binary
peridio binaries create \\
--artifact-version-prn $VERSION_PRN \\
--target $TARGET \\
--hash $(sha256sum output-$TARGET.bin | cut -d' ' -f1)
# Upload
peridio binaries upload \\
--binary-prn $BINARY_PRN \\
--file output-$TARGET.bin
done
"""
CI_RUN = """HASH=$(sha256sum ${{ env.OUTPUT_FILE }} | cut -d' ' -f1)
SIZE=$(stat -c%s ${{ env.OUTPUT_FILE }})
BINARY_PRN=$(peridio binaries create \\
--artifact-version-prn ${{ env.VERSION_PRN }} \\
--target ${{ matrix.target }} \\
--hash "sha256:$HASH" \\
--size $SIZE \\
--output prn)
peridio binaries upload \\
--binary-prn $BINARY_PRN \\
--file ${{ env.OUTPUT_FILE }}
"""
GUIDE_TARGETS = ("x86_64-linux-gnu", "aarch64-linux-gnu", "arm-linux-gnueabihf")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("cli-guide")) as running:
        yield running


@pytest.fixture
def work(tmp_path) -> Path:
    return tmp_path


def verbatim(snippet: str) -> str:
    """The snippet, after checking the guide holds it character for character."""
    assert snippet in guide_text(), f"not in the guide verbatim:\n{snippet}"
    return snippet


def script(snippet: str, **variables: str) -> str:
    """Shell variables the guide leaves to the reader, then the guide's own lines."""
    preamble = "".join(f"{name}={_quote(value)}\n" for name, value in variables.items())
    return preamble + verbatim(snippet)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def json_documents(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    found, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        value, i = decoder.raw_decode(text, i)
        found.append(value)
    return found


def ok(done) -> Any:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def firmware(work: Path, size: int) -> tuple[Path, str]:
    path = random_file(work / "firmware.bin", size)
    return path, sha256_file(path)


def rsa_key(stack: Stack, work: Path) -> str:
    """private_key.pem (RSA 2048, as a reader would make it) registered; its PRN."""
    ok(
        stack.bash(
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
            "-out private_key.pem 2>/dev/null",
            work,
        )
    )
    ok(stack.bash("openssl pkey -in private_key.pem -pubout -out public_key.pem", work))
    return stack.prn_of(
        "signing-keys",
        "create",
        "--name",
        f"rsa-{work.name}",
        "--path",
        str(work / "public_key.pem"),
    )


# --- Creating, uploading, signing, reading, downloading, destroying -----------------------


def test_it_runs_the_via_cli_example_then_signs_lists_gets_and_destroys(stack, work):
    version = stack.new_version()
    _, digest = firmware(work, 12 * MiB + 3)
    created = ok(
        stack.bash(
            script(
                VIA_CLI_CREATE, VERSION_PRN=version, FILE_HASH=digest, FILE_SIZE=str(12 * MiB + 3)
            ),
            work,
        )
    )
    binary = json.loads(created.stdout)
    assert binary["state"] == "uploadable"
    assert (binary["hash"], binary["size"]) == (f"sha256:{digest}", 12 * MiB + 3)
    prn = binary["prn"]

    uploaded = ok(stack.bash(script(VIA_CLI_UPLOAD, BINARY_PRN=prn), work))
    assert json.loads(uploaded.stdout)["state"] == "signable"  # verified by the worker
    assert stack.binary(prn)["bytes_hashed"] == 12 * MiB + 3

    key = rsa_key(stack, work)
    signed = ok(stack.bash(script(SIGNATURE, BINARY_PRN=prn, KEY_PRN=key), work))
    signature = json.loads(signed.stdout)
    assert signature["binary_prn"] == prn and signature["signing_key_prn"] == key
    assert len((work / "firmware.sig").read_bytes()) == 256
    assert stack.binary(prn)["state"] == "signed"

    shown = json.loads(ok(stack.bash(script(GET, BINARY_PRN=prn), work)).stdout)
    assert {"prn", "target", "hash", "size", "state", "created_at"} <= set(shown)  # unwrapped
    assert (shown["prn"], shown["target"], shown["state"]) == (prn, "arm-linux-gnueabihf", "signed")

    listed = json_documents(ok(stack.bash(script(LISTING, VERSION_PRN=version), work)).stdout)
    assert [[b["prn"] for b in page["binaries"]] for page in listed] == [[prn], [prn]]

    downloaded = ok(
        stack.peridio("binaries", "download", "--prn", prn, "--file", "copy.bin", cwd=work)
    )
    assert json.loads(downloaded.stdout)["hash"] == f"sha256:{digest}"
    assert sha256_file(work / "copy.bin") == digest

    # Run as printed in a script (no terminal to confirm on) it refuses and changes nothing;
    # a script says --yes.
    refused = stack.bash(script(DESTROY, BINARY_PRN=prn), work)
    assert refused.returncode == 2 and "--yes" in refused.stderr, refused.stderr
    assert stack.binary(prn)["state"] == "signed"
    confirmed = script(DESTROY, BINARY_PRN=prn).rstrip() + " --yes\n"
    destroyed = json.loads(ok(stack.bash(confirmed, work)).stdout)
    assert destroyed["state"] == "destroyed"
    assert stack.binary(prn)["state"] == "destroyed"


def test_it_runs_the_via_cli_example_as_one_script_without_binary_prn(stack, work):
    """Run as printed, $BINARY_PRN is never set: `binaries upload` then finds the one binary
    that declares the file's SHA-256 and says so."""
    version = stack.new_version()
    _, digest = firmware(work, 3 * MiB)
    done = ok(
        stack.bash(
            script(
                VIA_CLI_CREATE + VIA_CLI_UPLOAD,
                VERSION_PRN=version,
                FILE_HASH=digest,
                FILE_SIZE=str(3 * MiB),
            ),
            work,
        )
    )
    created, uploaded = json_documents(done.stdout)
    assert uploaded["prn"] == created["prn"] and uploaded["state"] == "signable"
    assert "--binary-prn is empty or missing" in done.stderr


def test_it_runs_the_direct_upload_example(stack, work):
    version = stack.new_version()
    path, digest = firmware(work, 7 * MiB + 11)
    prn = stack.prn_of(
        "binaries",
        "create",
        "--artifact-version-prn",
        version,
        "--target",
        "universal",
        "--hash",
        digest,
        "--size",
        str(path.stat().st_size),
    )
    done = ok(stack.bash(script(DIRECT_UPLOAD.split("\n", 1)[1], BINARY_PRN=prn), work))
    assert json.loads(done.stdout)["state"] == "signable"
    assert stack.upload_puts() >= 1


def test_it_runs_the_multipart_example(stack, work):
    """split -b 10M, one `binary-parts create` per part, then `binaries update --state
    hashable`; the worker verifies the assembled content."""
    version = stack.new_version()
    path, digest = firmware(work, 25 * MiB + 1234)
    prn = stack.prn_of(
        "binaries",
        "create",
        "--artifact-version-prn",
        version,
        "--target",
        "arm-linux-gnueabihf",
        "--hash",
        f"sha256:{digest}",
        "--size",
        str(path.stat().st_size),
    )
    loop = verbatim(SPLIT_LOOP).replace(
        "for part in part_*; do\n", "for part in part_*; do\n" + NUMBER_LINE
    )
    done = ok(stack.bash(f"BINARY_PRN={prn}\n{loop}", work))
    parts = json_documents(done.stdout)
    assert [(p["index"], p["size"], p["state"]) for p in parts] == [
        (1, 10 * MiB, "valid"),
        (2, 10 * MiB, "valid"),
        (3, 5 * MiB + 1234, "valid"),
    ]
    completed = ok(stack.bash(script(COMPLETE_UPLOAD, BINARY_PRN=prn), work))
    assert json.loads(completed.stdout)["state"] in ("hashable", "hashing", "signable")
    assert stack.wait_state(prn, ("signable",))["bytes_hashed"] == path.stat().st_size

    listed = ok(stack.peridio("binary-parts", "list", "--binary-prn", prn, "--output", "json"))
    assert [p["index"] for p in json.loads(listed.stdout)["binary_parts"]] == [1, 2, 3]


def test_it_runs_the_split_loop_as_printed_with_a_usage_error(stack, work):
    """Without the added line, $NUMBER is empty: each call stops with exit 2 and says why."""
    version = stack.new_version()
    path, digest = firmware(work, 6 * MiB)
    prn = stack.prn_of(
        "binaries",
        "create",
        "--artifact-version-prn",
        version,
        "--target",
        "universal",
        "--hash",
        digest,
        "--size",
        str(path.stat().st_size),
    )
    done = stack.bash(script(SPLIT_LOOP, BINARY_PRN=prn) + "echo exit=$?\n", work)
    assert "exit=2" in done.stdout
    assert "'--part-number' / '--index': got an empty value" in done.stderr
    assert "Traceback" not in done.stderr


def test_it_runs_provide_hash_on_creation_with_the_env_defaults(stack, work):
    """The guide's example names neither version nor target: PERIDIO_ARTIFACT_VERSION_PRN
    and PERIDIO_TARGET supply them; without them, exit 2 and a line naming both."""
    version = stack.new_version()
    path, digest = firmware(work, 1 * MiB + 5)
    env = stack.cli_env(PERIDIO_ARTIFACT_VERSION_PRN=version, PERIDIO_TARGET="universal")
    done = ok(stack.bash(verbatim(PROVIDE_HASH), work, env=env))
    binary = json.loads(done.stdout)
    assert (binary["hash"], binary["size"], binary["target"]) == (
        f"sha256:{digest}",
        path.stat().st_size,
        "universal",
    )
    assert binary["artifact_version_prn"] == version

    refused = stack.bash(verbatim(PROVIDE_HASH), work)
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.startswith("peridio")]
    assert lines == [
        "peridio: binaries create needs --artifact-version-prn (or set "
        "PERIDIO_ARTIFACT_VERSION_PRN) and --target (or set PERIDIO_TARGET)."
    ]


def test_it_accepts_ecdsa_signatures_made_with_openssl(stack, work):
    version = stack.new_version()
    path, _ = firmware(work, 2 * MiB)
    prn = json.loads(ok(stack.peridio(*create_args(version, path))).stdout)["prn"]
    ok(stack.bash("openssl ecparam -name prime256v1 -genkey -noout -out private_key.pem", work))
    ok(stack.bash("openssl pkey -in private_key.pem -pubout -out public_key.pem", work))
    key = stack.prn_of(
        "signing-keys", "create", "--name", "ec-key", "--path", str(work / "public_key.pem")
    )
    ok(stack.bash(script(SIGNATURE, BINARY_PRN=prn, KEY_PRN=key), work))
    assert stack.binary(prn)["state"] == "signed"


def test_it_explains_an_unset_key_prn_in_the_signature_example(stack, work):
    firmware(work, 1024)
    ok(stack.bash("openssl genpkey -algorithm ed25519 -out private_key.pem", work))
    done = stack.bash(script(SIGNATURE, BINARY_PRN="prn:1:x"), work)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "peridio binary-signatures create: Invalid value for '--signing-key-prn': got an "
        "empty value; is the shell variable that should hold it set? "
        "(see `peridio binary-signatures create --help`)"
    )


def test_it_runs_the_reset_example(stack, work):
    """Reset a verified (not yet signed) binary: parts and content deleted, then uploadable
    again, and the same upload can run again."""
    version = stack.new_version()
    path, _ = firmware(work, 6 * MiB)
    binary = json.loads(ok(stack.peridio(*create_args(version, path))).stdout)
    assert binary["state"] == "signable"
    reset = json.loads(ok(stack.bash(script(RESET, BINARY_PRN=binary["prn"]), work)).stdout)
    assert reset["state"] == "uploadable"
    parts = ok(stack.peridio("binary-parts", "list", "--binary-prn", binary["prn"], "-o", "json"))
    assert json.loads(parts.stdout)["binary_parts"] == []
    again = ok(stack.bash(script(DIRECT_UPLOAD.split("\n", 1)[1], BINARY_PRN=binary["prn"]), work))
    assert json.loads(again.stdout)["state"] == "signable"


def test_it_runs_the_multi_architecture_loop(stack, work):
    """`make TARGET=$TARGET` builds output-$TARGET.bin; the loop creates each binary without
    a size and uploads it with $BINARY_PRN never set: each upload finds its binary by the
    file's SHA-256, declares the size, and waits for the worker's verification."""
    version = stack.new_version()
    (work / "Makefile").write_text(
        "all:\n\thead -c 3000000 /dev/urandom > output-$(TARGET).bin\n"
        "\tprintf '%s' $(TARGET) >> output-$(TARGET).bin\n"
    )
    done = ok(stack.bash(script(MULTI_ARCH, VERSION_PRN=version), work))
    documents = json_documents(
        "\n".join(
            line for line in done.stdout.splitlines() if not line.startswith(("head ", "printf "))
        )
    )
    created, uploaded = documents[0::2], documents[1::2]
    assert [b["target"] for b in created] == list(GUIDE_TARGETS)
    assert all(b["size"] is None and b["state"] == "uploadable" for b in created)
    assert [b["prn"] for b in uploaded] == [b["prn"] for b in created]
    for target, binary in zip(GUIDE_TARGETS, uploaded, strict=True):
        output = work / f"output-{target}.bin"
        assert binary["state"] == "signable"
        assert binary["size"] == output.stat().st_size
        assert binary["hash"] == f"sha256:{sha256_file(output)}"
    assert done.stderr.count("--binary-prn is empty or missing") == 3


def test_it_runs_the_ci_snippet(stack, work):
    version = stack.new_version()
    _, digest = firmware(work, 9 * MiB + 1)
    template = verbatim(CI_RUN)
    rendered = (
        template.replace("${{ env.OUTPUT_FILE }}", "firmware.bin")
        .replace("${{ env.VERSION_PRN }}", version)
        .replace("${{ matrix.target }}", "aarch64-linux-gnu")
    )
    done = ok(stack.bash(rendered, work))
    binary = json.loads(done.stdout)
    assert (binary["target"], binary["state"], binary["hash"]) == (
        "aarch64-linux-gnu",
        "signable",
        f"sha256:{digest}",
    )


# --- The one-command path: create --content-path, resume, sign ---------------------------


def test_it_creates_uploads_verifies_and_signs_in_one_command(stack, work):
    version = stack.new_version()
    path, digest = firmware(work, 20 * MiB + 7)
    ok(stack.bash("openssl genpkey -algorithm ed25519 -out signer.pem", work))
    key = stack.prn_of(
        "signing-keys", "create", "--name", "ed-key", "--path", str(work / "signer.pem")
    )  # a private key: only its public half is sent
    args = (
        "binaries",
        "create",
        "--artifact-version-prn",
        version,
        "--target",
        "aarch64-linux-gnu",
        "--content-path",
        str(path),
        "--binary-part-size",
        "8MiB",
        "--signing-key-private",
        str(work / "signer.pem"),
        "--signing-key-prn",
        key,
    )
    before = stack.upload_puts()
    binary = json.loads(ok(stack.peridio(*args)).stdout)
    assert binary["state"] == "signed"
    assert binary["hash"] == f"sha256:{digest}"
    assert [s["signing_key_prn"] for s in binary["signatures"]] == [key]
    assert stack.upload_puts() - before == 3  # 8 + 8 + 4 MiB

    rerun = ok(stack.peridio(*args))  # idempotent: nothing uploaded or signed twice
    assert json.loads(rerun.stdout)["prn"] == binary["prn"]
    assert "already signed" in rerun.stderr
    assert stack.upload_puts() - before == 3

    other, _ = firmware(work, 1 * MiB)
    refused = stack.peridio(
        "binaries",
        "create",
        "--artifact-version-prn",
        version,
        "--target",
        "aarch64-linux-gnu",
        "--content-path",
        str(other),
    )
    assert refused.returncode == 3
    assert "a signed binary is never overwritten" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
