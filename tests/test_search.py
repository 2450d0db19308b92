from datetime import UTC, datetime, timedelta

import pytest

from binaries.models import Binary
from binaries.search import BINARY_FIELDS, Clause, SearchError, parse_search, search_filter
from tests.api_helpers import error_of
from tests.factories import ArtifactVersionFactory, BinaryFactory, OrganizationFactory

# --- The parser -------------------------------------------------------------------------


def test_it_parses_one_clause():
    assert parse_search("target:arm-linux-gnueabihf") == [
        Clause("target", ":", "arm-linux-gnueabihf", 1, 8)
    ]


@pytest.mark.parametrize("op", [":", "-", "~", "<", "<=", ">", ">="])
def test_it_parses_every_operator(op):
    [clause] = parse_search(f"size{op}10")
    assert (clause.key, clause.op, clause.value) == ("size", op, "10")


def test_it_parses_up_to_five_clauses_joined_by_and():
    query = "target:a and size>=1 and  description-'two words'  AND state:signed and hash~ab"
    clauses = parse_search(query)
    assert [(c.key, c.op, c.value) for c in clauses] == [
        ("target", ":", "a"),
        ("size", ">=", "1"),
        ("description", "-", "two words"),
        ("state", ":", "signed"),
        ("hash", "~", "ab"),
    ]
    assert [c.position for c in clauses] == [query.index(c.key) + 1 for c in clauses]


def test_it_reads_escapes_in_quoted_values():
    [clause] = parse_search(r"description:'it\'s a \\ backslash and a \n'")
    assert clause.value == "it's a \\ backslash and a \\n"


def test_it_keeps_colons_in_unquoted_values():
    [clause] = parse_search("hash:sha256:abc")
    assert clause.value == "sha256:abc"
    [clause] = parse_search("created_at>2024-01-15T10:30:00Z")
    assert (clause.op, clause.value) == (">", "2024-01-15T10:30:00Z")


def test_it_accepts_an_empty_quoted_value_and_surrounding_spaces():
    assert parse_search("  description:''  ") == [Clause("description", ":", "", 3, 15)]


MALFORMED = [
    ("", 1, "expected at least one clause"),
    ("   ", 1, "expected at least one clause"),
    ("target", 7, "expected an operator (:, -, ~, <, <=, >, >=) after 'target'; found the end"),
    ("target=arm", 7, "expected an operator (:, -, ~, <, <=, >, >=) after 'target'; found '=arm'"),
    ("target:", 8, "expected a value after 'target:'"),
    ("target: arm", 8, "expected a value after 'target:'"),
    (":arm", 1, "expected a key such as target; found ':arm'"),
    ("Target:arm", 1, "expected a key"),
    ("target:'arm", 12, "the quoted value that starts at character 8 is not closed"),
    ("target:'arm'x", 13, "expected ' and ' or the end of the query after the quoted value"),
    ("target:arm or size>1", 12, "expected ' and ' between clauses; found 'or size>1'"),
    ("target:arm size>1", 12, "expected ' and ' between clauses"),
    ("target:arm and", 15, "expected a clause after 'and'"),
    ("target:arm and ", 16, "expected a clause after 'and'"),
    ("target:arm andsize>1", 12, "expected ' and ' between clauses"),
    ("description:it's", 15, "a quote inside an unquoted value"),
    ("a:1 and b:2 and c:3 and d:4 and e:5 and f:6", 41, "at most 5 clauses"),
    ("target:a\x00b", 9, "NUL"),
    ("x" * 2001, 2001, "at most 2000 characters"),
]


@pytest.mark.parametrize(("query", "position", "words"), MALFORMED)
def test_it_says_where_a_query_is_malformed(query, position, words):
    with pytest.raises(SearchError) as caught:
        parse_search(query)
    assert caught.value.position == position
    assert caught.value.message.startswith(f"Invalid search at character {position}: ")
    assert words in caught.value.message
    assert caught.value.field == "search"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "position", "words"),
    [
        ("colour:red", 1, "unknown key 'colour'; expected one of artifact_version_prn, created_at"),
        ("target:a and colour:red", 14, "unknown key 'colour'"),
        ("target<a", 7, "operator '<' does not apply to target; use one of ~, -, :"),
        ("state-sign", 6, "operator '-' does not apply to state; use one of :"),
        ("size-10", 5, "operator '-' does not apply to size"),
        ("size>ten", 6, "size must be a whole number of bytes"),
        ("size>-1", 6, "size must be a whole number of bytes"),
        ("size<" + "9" * 30, 6, "size must be a whole number of bytes"),
        ("state:lost", 7, "state must be one of uploadable, hashable"),
        ("created_at>yesterday", 12, "ISO 8601 date or time"),
        ("created_at>0001-01-01T00:00:00+01:00", 12, "ISO 8601"),
        ("prn:prn:1:nope", 5, "prn: 'prn:1:nope' is not a PRN"),
        ("artifact_version_prn:x", 22, "is not a PRN"),
    ],
)
def test_it_says_where_a_clause_does_not_fit(query, position, words):
    organization = OrganizationFactory()
    with pytest.raises(SearchError) as caught:
        search_filter(query, BINARY_FIELDS, organization)
    assert caught.value.position == position, caught.value.message
    assert words in caught.value.message


# --- Searching binaries through the API --------------------------------------------------


@pytest.fixture
def catalogue(engineer_api):
    organization = engineer_api.organization
    version = ArtifactVersionFactory(artifact__organization=organization)
    other_version = ArtifactVersionFactory(artifact__organization=organization)
    now = datetime.now(UTC)
    return {
        "version": version,
        "arm": BinaryFactory(
            artifact_version=version,
            target="arm-linux-gnueabihf",
            description="Nightly build for the gateway",
            hash="0" * 64,
            size=100,
            created_at=now - timedelta(days=3),
        ),
        "x86": BinaryFactory(
            artifact_version=version,
            target="x86_64-linux-gnu",
            description="nightly BUILD, it's fast",
            hash="f" * 64,
            size=5000,
            created_at=now - timedelta(days=2),
        ),
        "model": BinaryFactory(
            artifact_version=other_version,
            target="universal",
            description="Vision model",
            hash=None,
            size=None,
            created_at=now - timedelta(days=1),
        ),
    }


def _search(api, query: str) -> list[str]:
    response = api.get("/binaries", search=query)
    assert response.status_code == 200, response.content
    return [b["target"] for b in response.json()["binaries"]]


def test_it_searches_by_equality(engineer_api, catalogue):
    assert _search(engineer_api, "target:universal") == ["universal"]
    assert _search(engineer_api, "target:'x86_64-linux-gnu'") == ["x86_64-linux-gnu"]
    assert _search(engineer_api, "hash:sha256:" + "F" * 64) == ["x86_64-linux-gnu"]
    assert _search(engineer_api, "hash:" + "0" * 64) == ["arm-linux-gnueabihf"]
    assert _search(engineer_api, "state:uploadable") == [
        "arm-linux-gnueabihf",
        "x86_64-linux-gnu",
        "universal",
    ]
    assert _search(engineer_api, "state:signed") == []
    assert _search(engineer_api, "size:100") == ["arm-linux-gnueabihf"]


def test_it_searches_substrings_with_and_without_case(engineer_api, catalogue):
    assert _search(engineer_api, "description-nightly") == [
        "arm-linux-gnueabihf",
        "x86_64-linux-gnu",
    ]
    assert _search(engineer_api, "description~Nightly") == ["arm-linux-gnueabihf"]
    assert _search(engineer_api, "description~BUILD") == ["x86_64-linux-gnu"]
    assert _search(engineer_api, "description-'build for'") == ["arm-linux-gnueabihf"]
    assert _search(engineer_api, r"description-'it\'s'") == ["x86_64-linux-gnu"]
    assert _search(engineer_api, "description~'100%'") == []
    assert _search(engineer_api, "target-LINUX and description~nightly") == ["x86_64-linux-gnu"]


def test_it_compares_sizes_and_times(engineer_api, catalogue):
    assert _search(engineer_api, "size>100") == ["x86_64-linux-gnu"]
    assert _search(engineer_api, "size>=100") == ["arm-linux-gnueabihf", "x86_64-linux-gnu"]
    assert _search(engineer_api, "size<5000 and size>0") == ["arm-linux-gnueabihf"]
    middle = catalogue["x86"].created_at
    stamp = middle.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert _search(engineer_api, f"created_at>{stamp}") == ["universal"]
    assert _search(engineer_api, f"inserted_at<={stamp}") == [
        "arm-linux-gnueabihf",
        "x86_64-linux-gnu",
    ]
    assert _search(engineer_api, f"created_at:{stamp}") == ["x86_64-linux-gnu"]
    assert _search(engineer_api, f"created_at:{middle.date().isoformat()}") == ["x86_64-linux-gnu"]
    assert _search(engineer_api, "updated_at>2000-01-01") == [
        "arm-linux-gnueabihf",
        "x86_64-linux-gnu",
        "universal",
    ]


def test_it_searches_by_prn(engineer_api, catalogue, other_org):
    arm, version = catalogue["arm"], catalogue["version"]
    assert _search(engineer_api, f"prn:{arm.prn}") == ["arm-linux-gnueabihf"]
    assert _search(engineer_api, f"artifact_version_prn:{version.prn}") == [
        "arm-linux-gnueabihf",
        "x86_64-linux-gnu",
    ]
    foreign = f"{other_org.prn}:binary:{arm.uuid}"
    assert _search(engineer_api, f"prn:{foreign}") == []


def test_it_never_searches_another_organization(outsider_api, catalogue):
    assert _search(outsider_api, "description-nightly") == []


def test_it_answers_a_malformed_search_with_400_saying_where(engineer_api, catalogue):
    for query, position in (("target=arm", 7), ("target:arm or x:1", 12), ("colour:x", 1)):
        response = engineer_api.get("/binaries", search=query)
        assert response.status_code == 400
        error = error_of(response)
        assert (error["code"], error["field"]) == ("invalid_search", "search")
        assert f"at character {position}:" in error["message"]
    assert Binary.objects.count() == 3


def test_it_takes_like_wildcards_literally(engineer_api, version):
    BinaryFactory(artifact_version=version, target="a", description="50% off")
    BinaryFactory(artifact_version=version, target="b", description="5000 off")
    BinaryFactory(artifact_version=version, target="c", description="snake_case")
    BinaryFactory(artifact_version=version, target="d", description="snakeXcase")
    assert _search(engineer_api, "description-'0%'") == ["a"]
    assert _search(engineer_api, "description~'0%'") == ["a"]
    assert _search(engineer_api, "description-e_c") == ["c"]
    assert _search(engineer_api, "description~e_c") == ["c"]
    assert _search(engineer_api, r"description-'\\'") == []
