import base64
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from binaries.models import Binary
from peridio_console.core.pagination import Cursor, decode_cursor, encode_cursor
from tests.api_helpers import error_of
from tests.factories import ArtifactFactory, ArtifactVersionFactory, BinaryFactory


def _binaries(version, count: int, start: datetime | None = None) -> list[Binary]:
    start = start or datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    return [
        BinaryFactory(artifact_version=version, created_at=start + timedelta(seconds=n))
        for n in range(count)
    ]


def _walk(api, path: str, key: str, **params) -> list[list[str]]:
    pages, page = [], None
    while True:
        query = dict(params, **({"page": page} if page else {}))
        response = api.get(path, **query)
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append([item["prn"] for item in body[key]])
        page = body["next_page"]
        if page is None:
            return pages


def _flat(pages: list[list[str]]) -> list[str]:
    return [prn for page in pages for prn in page]


def test_it_pages_through_a_list_in_creation_order(engineer_api, version):
    made = _binaries(version, 7)
    pages = _walk(engineer_api, "/binaries", "binaries", limit=3)
    assert pages == [[b.prn for b in made[i : i + 3]] for i in (0, 3, 6)]


def test_it_pages_newest_first_when_asked(engineer_api, version):
    made = _binaries(version, 5)
    pages = _walk(engineer_api, "/binaries", "binaries", limit=2, order="desc")
    assert _flat(pages) == [b.prn for b in reversed(made)]


def test_it_answers_a_null_next_page_on_an_exact_last_page(engineer_api, version):
    _binaries(version, 4)
    body = engineer_api.get("/binaries", limit=4).json()
    assert len(body["binaries"]) == 4
    assert body["next_page"] is None


def test_it_defaults_to_ten_and_allows_a_hundred(engineer_api, version):
    _binaries(version, 101)
    assert len(engineer_api.get("/binaries").json()["binaries"]) == 10
    body = engineer_api.get("/binaries", limit=100).json()
    assert len(body["binaries"]) == 100
    assert body["next_page"] is not None


def test_it_breaks_ties_on_creation_time_by_id(engineer_api, version):
    same = datetime(2024, 1, 15, tzinfo=UTC)
    made = [BinaryFactory(artifact_version=version, created_at=same) for _ in range(5)]
    for order, expected in (("asc", made), ("desc", made[::-1])):
        pages = _walk(engineer_api, "/binaries", "binaries", limit=2, order=order)
        assert _flat(pages) == [b.prn for b in expected]


def test_it_neither_skips_nor_repeats_rows_inserted_between_pages(engineer_api, version):
    before = _binaries(version, 6, start=datetime.now(UTC) - timedelta(hours=1))
    seen: list[str] = []
    page = None
    inserted: list[Binary] = []
    while True:
        body = engineer_api.get("/binaries", limit=2, **({"page": page} if page else {})).json()
        seen += [b["prn"] for b in body["binaries"]]
        page = body["next_page"]
        if page is None:
            break
        # Someone creates a binary while we page, and another one backdated into pages we read.
        inserted.append(BinaryFactory(artifact_version=version))
        BinaryFactory(artifact_version=version, created_at=before[0].created_at - timedelta(1))
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert [b.prn for b in before] == seen[: len(before)]
    assert set(b.prn for b in inserted) <= set(seen), "a row inserted ahead was skipped"


def test_it_refuses_a_tampered_cursor(engineer_api, version):
    _binaries(version, 3)
    cursor = engineer_api.get("/binaries", limit=1).json()["next_page"]
    payload, signature = cursor.split(".")
    forged_payload = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "==").replace(b'"i":', b'"i":9').rstrip(b"=")
    )
    tampered = [
        cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"),
        f"{forged_payload.decode().rstrip('=')}.{signature}",
        "not-a-cursor",
        "a" * 5000,
        "Zm9v.YmFy",
    ]
    for page in tampered:
        response = engineer_api.get("/binaries", page=page)
        assert response.status_code == 400, (page, response.content)
        error = error_of(response)
        assert (error["code"], error["field"]) == ("invalid_page", "page")


def test_it_refuses_a_cursor_of_another_list(engineer_api, version):
    _binaries(version, 2)
    ArtifactFactory(organization=engineer_api.organization)
    ArtifactFactory(organization=engineer_api.organization)
    cursor = engineer_api.get("/artifacts", limit=1).json()["next_page"]
    response = engineer_api.get("/binaries", page=cursor)
    assert response.status_code == 400
    assert "belongs to the artifacts list" in error_of(response)["message"]


def test_it_refuses_an_order_that_contradicts_the_cursor(engineer_api, version):
    _binaries(version, 3)
    cursor = engineer_api.get("/binaries", limit=1).json()["next_page"]
    assert engineer_api.get("/binaries", page=cursor, order="asc").status_code == 200
    response = engineer_api.get("/binaries", page=cursor, order="desc")
    assert response.status_code == 400
    assert "issued for order=asc" in error_of(response)["message"]


def test_it_keeps_filters_across_pages(engineer_api, version):
    other = ArtifactVersionFactory(artifact=version.artifact)
    mine = []
    for n in range(6):
        mine.append(BinaryFactory(artifact_version=version, target=f"t{n}"))
        BinaryFactory(artifact_version=other, target=f"t{n}")
    pages = _walk(engineer_api, "/binaries", "binaries", limit=4, artifact_version_prn=version.prn)
    assert _flat(pages) == [b.prn for b in mine]


def test_it_pages_artifacts_and_versions_too(engineer_api):
    artifacts = [ArtifactFactory(organization=engineer_api.organization) for _ in range(3)]
    versions = [ArtifactVersionFactory(artifact=artifacts[0]) for _ in range(3)]
    assert _flat(_walk(engineer_api, "/artifacts", "artifacts", limit=2)) == [
        a.prn for a in artifacts
    ]
    assert _flat(_walk(engineer_api, "/artifact_versions", "artifact_versions", limit=2)) == [
        v.prn for v in versions
    ]


def test_it_reads_a_page_in_one_query_without_offset(engineer_api, version):
    _binaries(version, 30)
    cursor = engineer_api.get("/binaries", limit=10).json()["next_page"]
    with CaptureQueriesContext(connection) as queries:
        response = engineer_api.get("/binaries", limit=10, page=cursor)
    assert response.status_code == 200
    listing = [q["sql"] for q in queries.captured_queries if 'FROM "binaries_binary"' in q["sql"]]
    assert len(listing) == 1
    assert "OFFSET" not in listing[0].upper()


def test_it_round_trips_a_cursor():
    cursor = Cursor("binaries", "desc", datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC), 42)
    encoded = encode_cursor(cursor)
    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert decode_cursor(encoded, "binaries") == cursor


@pytest.mark.parametrize("limit", [1, 100])
def test_it_accepts_the_limits_bounds(engineer_api, limit):
    assert engineer_api.get("/binaries", limit=limit).status_code == 200
