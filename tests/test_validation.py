"""The input rules of binaries/validation.py, each with what it accepts and what it refuses."""

import pytest

from binaries.validation import (
    MAX_DESCRIPTION,
    MAX_METADATA_BYTES,
    MAX_SIZE,
    STANDARD_TARGETS,
    clean_custom_metadata,
    clean_description,
    clean_hash,
    clean_name,
    clean_size,
    clean_target,
)
from peridio_console.core.errors import InvalidInput

HEX = "0123456789abcdef" * 4

# --- target -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        *STANDARD_TARGETS,
        "custom-soc-v1",
        "proprietary-rtos-2.0",
        "vendor-specific-platform",
        "universal",
        "a",
        "x" * 128,
        "A.b_C-9",
    ],
)
def test_it_accepts_a_target(target):
    assert clean_target(target) == target


def test_it_knows_the_guide_s_standard_targets():
    assert set(STANDARD_TARGETS) == {
        "x86_64-linux-gnu",
        "i686-linux-gnu",
        "aarch64-linux-gnu",
        "arm-linux-gnueabihf",
        "riscv64-linux-gnu",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
        "universal",
    }


@pytest.mark.parametrize(
    "target",
    [
        "",
        "x" * 129,
        "arm linux",
        "arm/linux",
        "arm:linux",
        " universal",
        "universal ",
        "ünïversal",
        "arm\tlinux",
        None,
        42,
        ["universal"],
    ],
)
def test_it_refuses_a_bad_target(target):
    with pytest.raises(InvalidInput) as excinfo:
        clean_target(target)

    assert excinfo.value.field == "target"
    assert excinfo.value.message.startswith(
        "target must be 1-128 characters of letters, digits, '.', '_' or '-'"
    )
    assert f"got {target!r}." in excinfo.value.message


@pytest.mark.parametrize("target", ["universal\n", "aarch64-linux-gnu\n", "x" * 128 + "\n"])
def test_it_refuses_a_target_with_a_trailing_newline(target):
    # `$` in TARGET_RE also matches just before a final newline; the rule must cover all of it.
    with pytest.raises(InvalidInput):
        clean_target(target)


# --- hash ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (HEX, HEX),
        (f"sha256:{HEX}", HEX),
        (HEX.upper(), HEX),
        (f"sha256:{HEX.upper()}", HEX),
        (f"SHA256:{HEX}", HEX),
        (f"  sha256:{HEX}\n", HEX),
    ],
)
def test_it_accepts_a_sha256_with_or_without_prefix_and_stores_lowercase_hex(raw, stored):
    assert clean_hash(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "sha256:",
        HEX[:-1],
        HEX + "0",
        "g" + HEX[1:],
        f"sha1:{HEX}",
        f"sha256: {HEX}",
        f"sha256:sha256:{HEX}",
        f"md5:{HEX}",
        HEX[:32] + " " + HEX[32:63],
        None,
        123,
        True,
        ["sha256", HEX],
    ],
)
def test_it_refuses_a_bad_hash(raw):
    with pytest.raises(InvalidInput) as excinfo:
        clean_hash(raw)

    assert excinfo.value.field == "hash"
    assert excinfo.value.message.startswith(
        "hash must be a SHA-256 as sha256:<64 hex digits> or <64 hex digits>; got "
    )


def test_it_names_the_field_it_checks_a_hash_for():
    with pytest.raises(InvalidInput, match=r"^part hash must be a SHA-256") as excinfo:
        clean_hash("nope", field="part hash")
    assert excinfo.value.field == "part hash"


def test_it_shortens_a_long_bad_hash_in_its_message():
    with pytest.raises(InvalidInput) as excinfo:
        clean_hash("z" * 500)
    assert "z" * 77 + "..." in excinfo.value.message
    assert "z" * 78 not in excinfo.value.message


# --- size ---------------------------------------------------------------------------------


def test_it_caps_sizes_at_fifty_terabytes():
    assert MAX_SIZE == 53_687_091_200_000


@pytest.mark.parametrize("size", [0, 1, 5 * 1024 * 1024, 2**40, MAX_SIZE - 1, MAX_SIZE])
def test_it_accepts_a_size(size):
    assert clean_size(size) == size


@pytest.mark.parametrize(
    "size", [-1, -(2**40), MAX_SIZE + 1, 2**63, True, False, 1.0, 1024.5, "1024", None, [1]]
)
def test_it_refuses_a_bad_size(size):
    with pytest.raises(InvalidInput) as excinfo:
        clean_size(size)

    assert excinfo.value.field == "size"
    assert excinfo.value.message == (
        f"size must be a whole number of bytes from 0 to {MAX_SIZE}; got {size!r}."
    )


# --- description --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "Release build", "é" * MAX_DESCRIPTION, "x" * 256])
def test_it_accepts_a_description(text):
    assert clean_description(text) == text


def test_it_reads_a_missing_description_as_empty():
    assert clean_description(None) == ""


@pytest.mark.parametrize(
    ("value", "got"),
    [("x" * 257, "257 characters"), ("é" * 1000, "1000 characters"), (42, "42"), (["a"], "['a']")],
)
def test_it_refuses_a_bad_description(value, got):
    with pytest.raises(InvalidInput) as excinfo:
        clean_description(value)

    assert excinfo.value.field == "description"
    assert excinfo.value.message == (
        f"description must be text of at most 256 characters; got {got}."
    )


# --- custom_metadata ----------------------------------------------------------------------


def _metadata_of_bytes(n: int) -> dict:
    # {"a":"xxx…"} serializes (compactly) to 8 bytes plus the string.
    return {"a": "x" * (n - 8)}


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"build": {"commit": "abc123", "ci": True, "attempt": 3, "tags": ["a", "b"], "x": None}},
        _metadata_of_bytes(MAX_METADATA_BYTES),
    ],
)
def test_it_accepts_custom_metadata(value):
    assert clean_custom_metadata(value) == value


def test_it_reads_missing_custom_metadata_as_an_empty_object():
    assert clean_custom_metadata(None) == {}


def test_it_refuses_custom_metadata_one_byte_over_the_limit():
    assert MAX_METADATA_BYTES == 1_000_000
    with pytest.raises(InvalidInput) as excinfo:
        clean_custom_metadata(_metadata_of_bytes(MAX_METADATA_BYTES + 1))

    assert excinfo.value.field == "custom_metadata"
    assert excinfo.value.message == (
        "custom_metadata must be at most 1000000 bytes as JSON; got 1000001 bytes."
    )


@pytest.mark.parametrize(
    ("value", "kind"),
    [([], "list"), ("{}", "str"), (3, "int"), (True, "bool"), ([{"a": 1}], "list")],
)
def test_it_refuses_custom_metadata_that_is_not_an_object(value, kind):
    with pytest.raises(InvalidInput) as excinfo:
        clean_custom_metadata(value)

    assert excinfo.value.field == "custom_metadata"
    assert excinfo.value.message == f"custom_metadata must be a JSON object; got {kind}."


@pytest.mark.parametrize("value", [{"a": {1, 2}}, {"a": b"bytes"}, {"a": object()}])
def test_it_refuses_custom_metadata_that_is_not_plain_json(value):
    with pytest.raises(InvalidInput, match=r"^custom_metadata must be plain JSON; "):
        clean_custom_metadata(value)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_it_refuses_custom_metadata_with_numbers_json_cannot_hold(number):
    # json.dumps writes NaN/Infinity by default, which is not JSON: PostgreSQL's jsonb refuses
    # it on save, so the request would fail with a database error instead of a clear sentence.
    with pytest.raises(InvalidInput, match=r"^custom_metadata must be plain JSON"):
        clean_custom_metadata({"score": number})


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "clean"), [("firmware", "firmware"), ("  v1.0 ", "v1.0")])
def test_it_accepts_a_name_and_strips_it(raw, clean):
    assert clean_name(raw) == clean


@pytest.mark.parametrize("raw", ["", "   ", "x" * 129, None, 1])
def test_it_refuses_a_bad_name(raw):
    with pytest.raises(InvalidInput, match=r"^version must be non-empty text of at most 128"):
        clean_name(raw, "version")
