"""Schemathesis with the hosted platform's own published schema (tests/data/, version 2).

Its artifacts, artifact versions, binaries, binary parts, binary signatures, signing keys and
download-url operations are sent to a live server with `x-api-version: 2` and an admin's key,
valid and invalid requests, half of them aimed at the organization's real objects. No answer
may be a server error, and no answer the schema describes (it documents only the successes)
may break it. Bounded and derandomized: the same cases every run, well under a minute.
"""

import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from tests.world_helpers import World, populate

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

SCHEMA = Path(__file__).parent / "data" / "peridio-admin-openapi-v2.yaml"
EXAMPLES = int(os.environ.get("HOSTED_SCHEMA_EXAMPLES", "5"))
BUDGET_SECONDS = 120  # a guard against a hang; alone it takes far less
HEADERS_V2 = {"x-api-version": "2"}

# Path parameters and body fields that name an object of the organization.
PRN_FIELDS = {
    "artifact_prn": "artifact",
    "artifact_version_prn": "artifact_version",
    "binary_prn": "binary",
    "binary_signature_prn": "binary_signature",
    "signing_key_prn": "signing_key",
}


def published_schema() -> Any:
    raw = yaml.safe_load(SCHEMA.read_text())
    # The published header parameter reads `type: string, enum: [2]`: an integer in a string's
    # enum, which no value satisfies. Every call below sends `x-api-version: 2` itself.
    raw["components"]["parameters"]["x-api-version"]["schema"] = {"type": "string", "enum": ["2"]}
    # It also gives every part (and `expected_binary_size`) a 5 MiB minimum, which its own CLI
    # breaks: the last part of a binary is shorter, and a 3-byte binary is one 3-byte part.
    del raw["components"]["schemas"]["binary-part-size"]["minimum"]
    return schemathesis.openapi.from_dict(raw)


def aim_at_real_objects(case: Any, world: World) -> None:
    parts_path = "/parts" in case.operation.path
    for name, kind in PRN_FIELDS.items():
        prn = world.uploadable.prn if parts_path and kind == "binary" else world.prn_for(kind)
        if name in (case.path_parameters or {}):
            case.path_parameters = {**case.path_parameters, name: prn}
        if isinstance(case.body, dict) and name in case.body:
            case.body = {**case.body, name: prn}
    if isinstance(case.body, dict) and "id" in case.body:
        # The schema says any string; an id is the UUID part of a PRN, a fresh one succeeds.
        case.body = {**case.body, "id": str(uuid.uuid4())}
    if "index" in (case.path_parameters or {}):
        case.path_parameters = {**case.path_parameters, "index": 1}


def _checks() -> list[Any]:
    from schemathesis import checks

    return [checks.not_a_server_error, checks.response_schema_conformance]


class Run:
    def __init__(self, base_url: str, world: World):
        self.base_url = base_url
        self.world = world
        self.headers = {"Authorization": f"Token {world.api.secret}", **HEADERS_V2}
        self.session = requests.Session()
        self.failures: dict[tuple[str, str], str] = {}
        self.statuses: Counter[int] = Counter()

    def operation(self, operation: Any, mode: GenerationMode) -> None:
        count = {"n": 0}

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def one(case: Any) -> None:
            count["n"] += 1
            if count["n"] % 2 == 0:
                aim_at_real_objects(case, self.world)
            # A case carries its own `Authorization` (made up from the security scheme) and may
            # drop the required version header (without it the server rightly answers in the
            # guide's shapes, which this schema does not describe): both are set here.
            case.headers = {**(case.headers or {}), **self.headers}
            response = case.call(
                base_url=self.base_url, session=self.session, headers=self.headers, timeout=30
            )
            self.statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=_checks(), headers=self.headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    key = (operation.label, f"{mode.value}: {failure.title}")
                    self.failures.setdefault(key, str(group)[:3000])

        one()

    def report(self) -> str:
        lines = [f"{len(self.failures)} distinct failures:"]
        for (label, title), text in sorted(self.failures.items()):
            lines.append(f"--- {label}: {title}\n{text}")
        return "\n".join(lines)


def everyday_calls(schema: Any, run: Run) -> list[str]:
    """One valid call of each writing operation (random bodies seldom pass the server's
    checks, so the schema's 201 and 200 bodies would go unchecked): each must succeed, and its
    answer must match. Returns the failures."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tests.hosted_sdk import raw_public_key_b64, sign_hex_digest

    world, key = run.world, ed25519.Ed25519PrivateKey.generate()
    signable, uploadable = world.signable, world.uploadable
    calls: list[tuple[str, str, dict, Any]] = [
        ("/artifacts", "POST", {}, {"name": "everyday", "description": "d"}),
        (
            "/artifacts/{artifact_prn}",
            "PATCH",
            {"artifact_prn": world.artifact.prn},
            {"description": "e"},
        ),
        (
            "/artifact_versions",
            "POST",
            {},
            {"artifact_prn": world.artifact.prn, "version": "9.9.9"},
        ),
        (
            "/artifact_versions/{artifact_version_prn}",
            "PATCH",
            {"artifact_version_prn": world.version.prn},
            {"description": "e"},
        ),
        (
            "/binaries",
            "POST",
            {},
            {
                "artifact_version_prn": world.version.prn,
                "target": "everyday",
                "hash": "ab" * 32,
                "size": 10,
            },
        ),
        ("/binaries/{binary_prn}", "PATCH", {"binary_prn": world.signed.prn}, {"description": "e"}),
        (
            "/binaries/{binary_prn}/parts/{index}",
            "PUT",
            {"binary_prn": uploadable.prn, "index": 1},
            {"expected_binary_size": uploadable.size, "hash": "cd" * 32, "size": uploadable.size},
        ),
        ("/binaries/{binary_prn}/download_url", "GET", {"binary_prn": world.signed.prn}, None),
        ("/signing_keys", "POST", {}, {"name": "everyday", "value": raw_public_key_b64(key)}),
    ]
    failures: list[str] = []
    answers = [_everyday(schema, run, *call, failures) for call in calls]
    key_prn = answers[-1].json()["signing_key"]["prn"]  # the key just registered signs
    signature = {
        "binary_prn": signable.prn,
        "signing_key_prn": key_prn,
        "signature": sign_hex_digest(key, signable.hash or ""),
    }
    _everyday(schema, run, "/binary_signatures", "POST", {}, signature, failures)
    return failures


def _everyday(schema, run, path, method, path_parameters, body, failures) -> Any:
    operation = schema[path][method]
    extra = {} if body is None else {"body": body, "media_type": "application/json"}
    case = operation.Case(path_parameters=path_parameters, headers=dict(run.headers), **extra)
    response = case.call(
        base_url=run.base_url, session=run.session, headers=run.headers, timeout=30
    )
    run.statuses[response.status_code] += 1
    if not 200 <= response.status_code < 300:
        failures.append(f"{method} {path}: {response.status_code} {response.text[:500]}")
    try:
        case.validate_response(response, checks=_checks(), headers=run.headers)
    except FailureGroup as group:
        failures.append(f"{method} {path}: {str(group)[:3000]}")
    return response


def test_it_answers_the_published_schema_with_x_api_version_2(live_server, monkeypatch):
    from django.core.servers.basehttp import WSGIRequestHandler

    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)
    base_url = live_server.url.replace("localhost", "127.0.0.1") + "/v1"
    run = Run(base_url, populate("Hosted"))
    schema = published_schema()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 26, [op.label for op in operations]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # deletions last
    started = time.monotonic()
    try:
        everyday_failures = everyday_calls(schema, run)
        assert not everyday_failures, "\n".join(everyday_failures)
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                assert time.monotonic() - started < BUDGET_SECONDS, operation.label
                run.operation(operation, mode)
    finally:
        # A keep-alive connection would keep a server thread and its database session alive.
        run.session.close()
    elapsed = time.monotonic() - started
    total = sum(run.statuses.values())
    print(f"\nhosted schema: {total} requests in {elapsed:.1f} s, {dict(run.statuses)}")
    Path(os.environ.get("HOSTED_SCHEMA_REPORT", "/dev/null")).write_text(run.report())
    assert not run.failures, run.report()
    assert not [status for status in run.statuses if status >= 500]
