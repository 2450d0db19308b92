"""The platform's list query language: `key<op>value` clauses joined by ` and `.

    target:arm-linux-gnueabihf and description-'nightly build' and size>=1048576

Operators: `:` equals, `-` contains (case-insensitive), `~` contains (case-sensitive),
`<`, `<=`, `>`, `>=` compare. Values are bare words without spaces, or single-quoted with
`\\'` for a quote and `\\\\` for a backslash. One to five clauses. Every syntax error names the
character position (counted from 1) and what was expected there.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import F, Q, Value
from django.db.models.functions import StrIndex
from django.db.models.lookups import GreaterThan, IContains

from binaries.models import State
from peridio_console.accounts.models import Organization
from peridio_console.core.errors import InvalidInput
from peridio_console.core.prn import MalformedPRN, parse_prn

MAX_CLAUSES = 5
MAX_LENGTH = 2000
OPERATORS = ("<=", ">=", ":", "-", "~", "<", ">")  # two-character operators first
COMPARISONS = frozenset({"<", "<=", ">", ">="})
TEXT_OPERATORS = frozenset({":", "-", "~"})
OPERATOR_LIST = ":, -, ~, <, <=, >, >="
KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_.")  # dots: signature.signing_key.keyid
MAX_BIGINT = 2**63 - 1


class SearchError(InvalidInput):
    code = "invalid_search"

    def __init__(self, position: int, what: str):
        super().__init__(f"Invalid search at character {position}: {what}", field="search")
        self.position = position


@dataclass(frozen=True)
class Clause:
    key: str
    op: str
    value: str
    position: int  # where the clause starts, counted from 1
    value_position: int


def _shown(text: str, i: int) -> str:
    return "the end of the query" if i >= len(text) else repr(text[i : i + 10])


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _key(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] in KEY_CHARS:
        i += 1
    if i == start:
        raise SearchError(start + 1, f"expected a key such as target; found {_shown(text, i)}.")
    return text[start:i], i


def _operator(text: str, i: int, key: str) -> tuple[str, int]:
    for op in OPERATORS:
        if text.startswith(op, i):
            return op, i + len(op)
    raise SearchError(
        i + 1, f"expected an operator ({OPERATOR_LIST}) after {key!r}; found {_shown(text, i)}."
    )


def _quoted(text: str, i: int) -> tuple[str, int]:
    start, i, out = i, i + 1, []
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in "'\\":
            out.append(text[i + 1])
            i += 2
        elif char == "'":
            i += 1
            if i < len(text) and not text[i].isspace():
                raise SearchError(
                    i + 1,
                    f"expected ' and ' or the end of the query after the quoted value; "
                    f"found {_shown(text, i)}.",
                )
            return "".join(out), i
        else:
            out.append(char)
            i += 1
    raise SearchError(
        len(text) + 1,
        f"the quoted value that starts at character {start + 1} is not closed; expected a ' "
        "(write \\' for a quote inside a value).",
    )


def _value(text: str, i: int, key: str, op: str) -> tuple[str, int]:
    if i < len(text) and text[i] == "'":
        return _quoted(text, i)
    start = i
    while i < len(text) and not text[i].isspace():
        if text[i] == "'":
            raise SearchError(
                i + 1,
                "a quote inside an unquoted value; quote the whole value "
                "('like this', with \\' for a quote inside it).",
            )
        i += 1
    if i == start:
        raise SearchError(
            start + 1,
            f"expected a value after {key + op!r} (quote it if it holds spaces); "
            f"found {_shown(text, i)}.",
        )
    return text[start:i], i


def parse_search(text: str) -> list[Clause]:
    """The clauses of a query, or SearchError naming where and what was expected."""
    if len(text) > MAX_LENGTH:
        raise SearchError(MAX_LENGTH + 1, f"a query is at most {MAX_LENGTH} characters long.")
    if "\x00" in text:
        raise SearchError(text.index("\x00") + 1, "expected text; found a NUL character.")
    clauses: list[Clause] = []
    i = _skip_spaces(text, 0)
    if i == len(text):
        raise SearchError(1, "expected at least one clause such as target:universal.")
    while True:
        if len(clauses) == MAX_CLAUSES:
            raise SearchError(
                i + 1, f"expected the end of the query; a query has at most {MAX_CLAUSES} clauses."
            )
        start = i
        key, i = _key(text, i)
        op, i = _operator(text, i, key)
        value_start = i
        value, i = _value(text, i, key, op)
        clauses.append(Clause(key, op, value, start + 1, value_start + 1))
        i = _skip_spaces(text, i)
        if i == len(text):
            return clauses
        if text[i:].lower() == "and":
            raise SearchError(i + 4, "expected a clause after 'and'; found the end of the query.")
        if text[i : i + 3].lower() != "and" or not text[i + 3 : i + 4].isspace():
            raise SearchError(i + 1, f"expected ' and ' between clauses; found {_shown(text, i)}.")
        i = _skip_spaces(text, i + 3)
        if i == len(text):
            raise SearchError(i + 1, "expected a clause after 'and'; found the end of the query.")


# --- Turning clauses into a filter --------------------------------------------------------


@dataclass(frozen=True)
class SearchField:
    """How one search key maps to a column: kind is text, hash, prn, state, size or time."""

    kind: str
    column: str
    prn_type: str = ""


class ContainsAnyCase(IContains):
    """icontains, written as ILIKE on PostgreSQL: for UPPER(x) LIKE UPPER(y) the planner
    guesses a handful of matches and sorts a full scan; for ILIKE it walks the ordered index
    and stops after a page (0.1 ms instead of 35 ms on 100,000 binaries)."""

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs_sql, lhs_params = compiler.compile(self.lhs)  # the bare column, no UPPER()
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs_sql}::text ILIKE {rhs_sql}", [*lhs_params, *rhs_params]


def _text(field: SearchField, clause: Clause, value: str) -> Q:
    if clause.op == ":":
        return Q(**{field.column: value})
    if clause.op == "-":
        return Q(ContainsAnyCase(F(field.column), value))
    # SQLite's LIKE ignores case, so a case-sensitive substring is a position test instead.
    return Q(GreaterThan(StrIndex(F(field.column), Value(value)), 0))


def _hash(field: SearchField, clause: Clause) -> Q:
    value = clause.value.strip()
    if value.lower().startswith("sha256:"):
        value = value[7:]
    return _text(field, clause, value.lower() if clause.op != "~" else value)


def _prn(field: SearchField, clause: Clause, organization: Organization) -> Q:
    try:
        prn = parse_prn(clause.value, field.prn_type)
    except MalformedPRN as exc:
        raise SearchError(clause.value_position, f"{clause.key}: {exc}") from None
    if prn.organization != organization.uuid:
        return Q(pk__in=[])
    return Q(**{field.column: prn.id})


def _state(field: SearchField, clause: Clause) -> Q:
    if clause.value not in State.values:
        raise SearchError(
            clause.value_position,
            f"state must be one of {', '.join(State.values)}; got {clause.value!r}.",
        )
    return Q(**{field.column: clause.value})


def _size(field: SearchField, clause: Clause) -> Q:
    value = clause.value
    if not value.isascii() or not value.isdigit() or int(value) > MAX_BIGINT:
        raise SearchError(
            clause.value_position,
            f"{clause.key} must be a whole number of bytes from 0 to {MAX_BIGINT}; got {value!r}.",
        )
    return _compare(field.column, clause.op, int(value))


def _moment(clause: Clause) -> tuple[datetime, datetime | None]:
    """The instant a value names and, when it named a whole day, the end of that day."""
    text = clause.value.strip()
    try:
        if len(text) == 10:
            day = datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
            return day, day + timedelta(days=1)
        moment = datetime.fromisoformat(text)
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise SearchError(
            clause.value_position,
            f"{clause.key} must be an ISO 8601 date or time such as 2024-01-15 or "
            f"2024-01-15T10:30:00Z; got {clause.value!r}.",
        ) from None
    return moment, None


def _time(field: SearchField, clause: Clause) -> Q:
    moment, day_end = _moment(clause)
    if clause.op == ":" and day_end is not None:
        return Q(**{f"{field.column}__gte": moment, f"{field.column}__lt": day_end})
    return _compare(field.column, clause.op, moment)


def _compare(column: str, op: str, value: object) -> Q:
    lookup = {":": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[op]
    return Q(**{f"{column}__{lookup}": value})


def _check_operator(field: SearchField, clause: Clause) -> None:
    if field.kind in ("size", "time"):
        allowed: frozenset[str] = COMPARISONS | {":"}
    elif field.kind in ("prn", "state"):
        allowed = frozenset({":"})
    else:
        allowed = TEXT_OPERATORS
    if clause.op not in allowed:
        shown = ", ".join(op for op in OPERATORS[::-1] if op in allowed)
        raise SearchError(
            clause.position + len(clause.key),
            f"operator {clause.op!r} does not apply to {clause.key}; use one of {shown}.",
        )


def clause_filter(field: SearchField, clause: Clause, organization: Organization) -> Q:
    _check_operator(field, clause)
    if field.kind == "text":
        return _text(field, clause, clause.value)
    if field.kind == "hash":
        return _hash(field, clause)
    if field.kind == "prn":
        return _prn(field, clause, organization)
    if field.kind == "state":
        return _state(field, clause)
    if field.kind == "size":
        return _size(field, clause)
    return _time(field, clause)


def search_filter(text: str, fields: Mapping[str, SearchField], organization: Organization) -> Q:
    """A Q for a whole query over the given keys; SearchError for anything malformed."""
    result = Q()
    for clause in parse_search(text):
        field = fields.get(clause.key)
        if field is None:
            raise SearchError(
                clause.position,
                f"unknown key {clause.key!r}; expected one of {', '.join(sorted(fields))}.",
            )
        result &= clause_filter(field, clause, organization)
    return result


def search_keys(text: str) -> set[str]:
    """The keys a query names (SearchError when it is malformed)."""
    return {clause.key for clause in parse_search(text)}


def _timestamps() -> dict[str, SearchField]:
    return {
        "created_at": SearchField("time", "created_at"),
        "inserted_at": SearchField("time", "created_at"),
        "updated_at": SearchField("time", "updated_at"),
    }


BINARY_FIELDS: dict[str, SearchField] = {
    "artifact_version_prn": SearchField("prn", "artifact_version__uuid", "artifact_version"),
    "description": SearchField("text", "description"),
    "hash": SearchField("hash", "hash"),
    "prn": SearchField("prn", "uuid", "binary"),
    "size": SearchField("size", "size"),
    "state": SearchField("state", "state"),
    "target": SearchField("text", "target"),
    **_timestamps(),
}

ARTIFACT_FIELDS: dict[str, SearchField] = {
    "description": SearchField("text", "description"),
    "name": SearchField("text", "name"),
    "prn": SearchField("prn", "uuid", "artifact"),
    **_timestamps(),
}

ARTIFACT_VERSION_FIELDS: dict[str, SearchField] = {
    "artifact_prn": SearchField("prn", "artifact__uuid", "artifact"),
    "description": SearchField("text", "description"),
    "prn": SearchField("prn", "uuid", "artifact_version"),
    "version": SearchField("text", "version"),
    **_timestamps(),
}

# The hosted CLI asks whether a key already signed a binary with
# binary_prn:'...' and signature.signing_key.keyid:'...'.
BINARY_SIGNATURE_FIELDS: dict[str, SearchField] = {
    "binary_prn": SearchField("prn", "binary__uuid", "binary"),
    "keyid": SearchField("text", "signing_key__keyid"),
    "prn": SearchField("prn", "uuid", "binary_signature"),
    "signature.signing_key.keyid": SearchField("text", "signing_key__keyid"),
    "signing_key_prn": SearchField("prn", "signing_key__uuid", "signing_key"),
    **_timestamps(),
}

SIGNING_KEY_FIELDS: dict[str, SearchField] = {
    "keyid": SearchField("text", "keyid"),
    "name": SearchField("text", "name"),
    "prn": SearchField("prn", "uuid", "signing_key"),
    **_timestamps(),
}
