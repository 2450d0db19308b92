"""Schemathesis with the hosted platform's own published schema (tests/data/, version 2).

Its artifacts, artifact versions, binaries, binary parts, binary signatures, signing keys and
download-url operations are sent to a live server with `x-api-version: 2` and an admin's key,
valid and invalid requests, half of them aimed at the organization's real objects. No answer
may be a server error, and no answer the schema describes (it documents only the successes)
may break it. Bounded and derandomized: the same cases every run, well under a minute.
"""

import os
import time
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
EXAMPLES = int(os.environ.get("HOSTED_SCHEMA_EXAMPLES", "6"))
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
            # A negative case may drop the required header; without it the server rightly
            # answers in the guide's shapes, which this schema does not describe.
            case.headers = {**(case.headers or {}), **HEADERS_V2}
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


def test_it_answers_the_published_schema_with_x_api_version_2(live_server, monkeypatch):
    from django.core.servers.basehttp import WSGIRequestHandler

    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)
    base_url = live_server.url.replace("localhost", "127.0.0.1") + "/v1"
    run = Run(base_url, populate("Hosted"))
    operations = [result.ok() for result in published_schema().get_all_operations()]
    assert len(operations) == 26, [op.label for op in operations]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # deletions last
    started = time.monotonic()
    try:
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
