import subprocess
import sys

import pytest
from django.db import OperationalError
from django.urls import reverse

from tests.factories import UserFactory


def test_it_sends_a_csp_without_inline_script(client, db):
    response = client.get(reverse("login"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_it_has_no_inline_script_in_templates():
    from pathlib import Path

    for template in Path("templates").rglob("*.html"):
        text = template.read_text()
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("<script"):
                assert "src=" in stripped, f"inline script in {template}"
            assert " onclick=" not in line and " onload=" not in line, template


def test_it_throttles_repeated_failed_logins(client, db, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    user = UserFactory(username="alice")
    for _ in range(3):
        response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
    response = client.post(
        reverse("login"), {"username": "alice", "password": "correct horse battery"}
    )
    assert response.status_code == 429
    assert b"Too many failed log-ins" in response.content
    assert "_auth_user_id" not in client.session
    assert user.pk


def test_it_lets_a_correct_login_through_below_the_limit(client, db, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    UserFactory(username="bob")
    client.post(reverse("login"), {"username": "bob", "password": "wrong"})
    response = client.post(
        reverse("login"), {"username": "bob", "password": "correct horse battery"}
    )
    assert response.status_code == 302


def test_it_answers_503_when_the_database_drops(monkeypatch, engineer_api):
    from binaries import selectors

    def broken(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(selectors, "binary_list", broken)
    response = engineer_api.get("/binaries")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert "nothing was changed" in response.json()["error"]["message"]


def test_it_passes_the_deploy_check_when_debug_is_off(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DEBUG": "false",
        "SECRET_KEY": "x" * 50 + "-a-long-random-production-secret-key",
        "VAR_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "console.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", ["/artifacts", "/binaries"])
def test_it_refuses_oversized_bodies(engineer_api, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = engineer_api.post(path, b'{"name": "' + b"x" * 4096 + b'"}')
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "message"),
    [
        (
            "post",
            "/v1/binaries/prn:1:a:binary:b",
            405,
            "method",
            "POST is not allowed on this path; it takes DELETE, GET, PATCH.",
        ),
        (
            "put",
            "/v1/artifacts",
            405,
            "method",
            "PUT is not allowed on this path; it takes GET, POST.",
        ),
        ("get", "/transfer/elsewhere", 404, "not_found", "Not found."),
        (
            "delete",
            "/v1/openapi.json",
            405,
            "method",
            "DELETE is not allowed on this path; it takes GET, HEAD.",
        ),
    ],
)
def test_it_answers_a_wrong_method_or_path_in_the_api_error_shape(
    engineer_api, method, path, status, code, message
):
    response = getattr(engineer_api.client, method)(path)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"error": {"code": code, "message": message, "field": None}}
    if status == 405:
        assert response["Allow"]


def test_it_leaves_console_errors_as_pages(client, db):
    response = client.get("/no-such-console-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
