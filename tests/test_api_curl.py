"""The guide's curl example, run by the real curl against a live server."""

import json
import os
import shutil
import subprocess

import pytest

from binaries.models import Binary, State
from peridio_console.accounts.models import Role
from tests.factories import ApiKeyFactory, ArtifactVersionFactory, MembershipFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl binary"),
]

# Verbatim from the guide, with the host and the two placeholders filled in.
GUIDE_COMMAND = """curl -X POST {host}/v1/binaries \\
-H "Authorization: Bearer $API_KEY" \\
-d '{{
"artifact_version_prn": "{version_prn}",
"target": "arm-linux-gnueabihf",
"hash": "sha256:{hex}",
"size": 104857600
}}'"""


def _shell(command: str, api_key: str) -> tuple[int, dict]:
    completed = subprocess.run(
        ["bash", "-c", command + " --silent --show-error --write-out '\\n%{http_code}'"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "API_KEY": api_key},
        check=True,
    )
    body, _, status = completed.stdout.rpartition("\n")
    return int(status), json.loads(body)


@pytest.fixture
def engineer_key_and_version():
    membership = MembershipFactory(role=Role.ENGINEER)
    secret = ApiKeyFactory(organization=membership.organization, user=membership.user).secret
    version = ArtifactVersionFactory(artifact__organization=membership.organization)
    return secret, version


def test_it_creates_a_binary_with_the_guides_curl_command(live_server, engineer_key_and_version):
    secret, version = engineer_key_and_version
    command = GUIDE_COMMAND.format(host=live_server.url, version_prn=version.prn, hex="ab" * 32)
    status, body = _shell(command, secret)
    assert status == 201, body
    assert body["binary"]["artifact_version_prn"] == version.prn
    assert body["binary"]["hash"] == "sha256:" + "ab" * 32
    assert body["binary"]["size"] == 104857600
    assert body["binary"]["state"] == "uploadable"
    binary = Binary.objects.get()
    assert (binary.target, binary.state, binary.size) == (
        "arm-linux-gnueabihf",
        State.UPLOADABLE,
        104857600,
    )

    status, body = _shell(
        f'curl {live_server.url}/v1/binaries/{binary.prn} -H "Authorization: Token $API_KEY"',
        secret,
    )
    assert status == 200
    assert body["binary"]["prn"] == binary.prn


def test_it_explains_the_guides_placeholder_prn(live_server, engineer_key_and_version):
    secret, _ = engineer_key_and_version
    command = GUIDE_COMMAND.format(
        host=live_server.url, version_prn="prn:1:artifact-version:...", hex="ab" * 32
    )
    status, body = _shell(command, secret)
    assert status == 400
    assert body["error"]["field"] == "artifact_version_prn"
    assert "is not a PRN" in body["error"]["message"]


def test_it_answers_curl_without_a_key_with_401(live_server, engineer_key_and_version):
    _, version = engineer_key_and_version
    command = GUIDE_COMMAND.format(host=live_server.url, version_prn=version.prn, hex="ab" * 32)
    status, body = _shell(command, "")
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert not Binary.objects.exists()
