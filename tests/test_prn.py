"""PRNs: prn:1:<org-uuid> and prn:1:<org-uuid>:<type>:<uuid>, formatted and parsed."""

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peridio_console.core.prn import EXPECTED, PRN, TYPES, MalformedPRN, format_prn, parse_prn

ORG = uuid.UUID("5f0c6c8e-2b1a-4c53-9a57-0d9e2f0b7a11")
ID = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")


def test_it_formats_an_organization_prn():
    assert format_prn(ORG) == f"prn:1:{ORG}"


@pytest.mark.parametrize("type_", TYPES)
def test_it_formats_a_prn_of_each_type(type_):
    assert format_prn(ORG, type_, ID) == f"prn:1:{ORG}:{type_}:{ID}"


@given(org=st.uuids())
def test_it_round_trips_organization_prns(org):
    text = format_prn(org)
    assert parse_prn(text) == PRN(org)
    assert parse_prn(text, "organization") == PRN(org)
    assert str(parse_prn(text)) == text


@given(org=st.uuids(), type_=st.sampled_from(TYPES), id_=st.uuids())
def test_it_round_trips_prns_of_every_type(org, type_, id_):
    text = format_prn(org, type_, id_)
    parsed = parse_prn(text, type_)
    assert parsed == PRN(org, type_, id_)
    assert (parsed.organization, parsed.type, parsed.id) == (org, type_, id_)
    assert str(parsed) == text


@given(org=st.uuids(), id_=st.uuids())
def test_it_reads_uppercase_uuids_as_the_same_prn(org, id_):
    text = f"prn:1:{str(org).upper()}:binary:{str(id_).upper()}"
    assert parse_prn(text, "binary") == PRN(org, "binary", id_)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "prn",
        "prn:1",
        f"prn:2:{ORG}",
        f"PRN:1:{ORG}",
        f"urn:1:{ORG}",
        f"prn:1:{ORG}:binary",
        f"prn:1:{ORG}:binary:{ID}:extra",
        f"prn::{ORG}",
        f"prn:1:{ORG}:",
        f"prn:1:{ORG}:binary:",
        # The guide's placeholder form, without an organization.
        "prn:1:binary:3f2a",
        "prn:1:artifact-version:...",
    ],
)
def test_it_refuses_a_malformed_prn_naming_the_expected_form(raw):
    with pytest.raises(MalformedPRN) as excinfo:
        parse_prn(raw)

    assert EXPECTED in str(excinfo.value)
    assert EXPECTED == "prn:1:<organization-uuid> or prn:1:<organization-uuid>:<type>:<uuid>"


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        ("prn:1:not-a-uuid", "organization"),
        ("prn:1:1234", "organization"),
        (f"prn:1:{ORG.hex}", "organization"),  # a UUID, but not in its canonical form
        (f"prn:1:{{{ORG}}}", "organization"),
        (f"prn:1:{ORG}:binary:not-a-uuid", "binary"),
        (f"prn:1:{ORG}:artifact:{ID.hex}", "artifact"),
    ],
)
def test_it_refuses_a_prn_whose_uuid_is_malformed(raw, what):
    with pytest.raises(MalformedPRN) as excinfo:
        parse_prn(raw)

    message = str(excinfo.value)
    assert f"the {what} must be a UUID" in message
    assert EXPECTED in message
    assert repr(raw) in message


@pytest.mark.parametrize(
    "type_", ["organization", "device", "Binary", "binaries", "artifact-version"]
)
def test_it_refuses_an_unknown_type_naming_the_known_ones(type_):
    with pytest.raises(MalformedPRN) as excinfo:
        parse_prn(f"prn:1:{ORG}:{type_}:{ID}")

    message = str(excinfo.value)
    assert f"unknown type {type_!r}" in message
    assert ", ".join(TYPES) in message


@pytest.mark.parametrize("raw", [None, 42, b"prn:1:x", ["prn", "1"]])
def test_it_refuses_a_value_that_is_not_text(raw):
    with pytest.raises(MalformedPRN, match="expected a PRN of the form prn:1:<organization-uuid>"):
        parse_prn(raw)


@pytest.mark.parametrize(
    ("raw", "expected_type", "found"),
    [
        (f"prn:1:{ORG}:artifact:{ID}", "binary", "artifact"),
        (f"prn:1:{ORG}:binary:{ID}", "artifact_version", "binary"),
        (f"prn:1:{ORG}", "binary", "organization"),
    ],
)
def test_it_refuses_a_prn_of_another_type_when_a_type_is_expected(raw, expected_type, found):
    with pytest.raises(MalformedPRN) as excinfo:
        parse_prn(raw, expected_type)

    message = str(excinfo.value)
    article = "an" if expected_type[0] in "aeiou" else "a"
    assert f"is a PRN of type {found}; expected {article} {expected_type} PRN" in message
    assert f"prn:1:<organization-uuid>:{expected_type}:<uuid>" in message


def test_it_is_a_value_error_so_callers_can_catch_it_broadly():
    assert issubclass(MalformedPRN, ValueError)
