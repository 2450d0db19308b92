"""Settings come from the environment; a bad value stops start-up with one sentence naming it."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from peridio_console.env import env_bool, env_choice, env_int, env_list, env_str, secret_key

VAR = "PERIDIO_TEST_SETTING"
BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _unset(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)


# --- env_bool -----------------------------------------------------------------------------


@pytest.mark.parametrize("default", [True, False])
def test_it_uses_the_default_bool_when_unset(default):
    assert env_bool(VAR, default) is default


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_it_reads_a_bool(monkeypatch, raw, value):
    monkeypatch.setenv(VAR, raw)
    assert env_bool(VAR, not value) is value


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "y"])
def test_it_refuses_a_bool_it_cannot_read_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)

    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_bool(VAR, False)

    assert str(excinfo.value) == (
        f"{VAR} must be one of true/false, yes/no, on/off or 1/0; got {raw!r}."
    )


# --- env_int ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_it_uses_the_default_int_when_unset_or_empty(monkeypatch, raw):
    if raw is not None:
        monkeypatch.setenv(VAR, raw)
    assert env_int(VAR, 8000) == 8000


@pytest.mark.parametrize(("raw", "value"), [("42", 42), (" 7 ", 7), ("0", 0), ("65535", 65535)])
def test_it_reads_an_int(monkeypatch, raw, value):
    monkeypatch.setenv(VAR, raw)
    assert env_int(VAR, 1, minimum=0, maximum=65535) == value


@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "0x10", "ten"])
def test_it_refuses_an_int_that_is_not_a_whole_number(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)

    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_int(VAR, 1)

    assert str(excinfo.value) == f"{VAR} must be a whole number; got {raw!r}."


@pytest.mark.parametrize(
    ("raw", "kwargs", "message"),
    [
        ("-1", {}, f"{VAR} must be at least 0; got -1."),
        ("59", {"minimum": 60}, f"{VAR} must be at least 60; got 59."),
        (
            "0",
            {"minimum": 1, "maximum": 65535},
            f"{VAR} must be at least 1 and at most 65535; got 0.",
        ),
        (
            "65536",
            {"minimum": 1, "maximum": 65535},
            f"{VAR} must be at least 1 and at most 65535; got 65536.",
        ),
    ],
)
def test_it_refuses_an_int_out_of_range_naming_the_bounds(monkeypatch, raw, kwargs, message):
    monkeypatch.setenv(VAR, raw)

    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_int(VAR, 1, **kwargs)

    assert str(excinfo.value) == message


# --- env_choice and env_list --------------------------------------------------------------


def test_it_uses_the_default_choice_when_unset():
    assert env_choice(VAR, "filesystem", ("filesystem", "s3")) == "filesystem"


@pytest.mark.parametrize("raw", ["s3", "S3", " s3 "])
def test_it_reads_a_choice_in_any_case(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    assert env_choice(VAR, "filesystem", ("filesystem", "s3")) == "s3"


@pytest.mark.parametrize("raw", ["bogus", "azure"])
def test_it_refuses_a_choice_naming_the_variable_and_the_choices(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)

    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_choice(VAR, "filesystem", ("filesystem", "s3"))

    assert str(excinfo.value) == f"{VAR} must be one of filesystem, s3; got {raw.strip()!r}."


def test_it_reads_a_list(monkeypatch):
    assert env_list(VAR, ["localhost"]) == ["localhost"]
    monkeypatch.setenv(VAR, " ")
    assert env_list(VAR, ["localhost"]) == ["localhost"]
    monkeypatch.setenv(VAR, " a.example.com, ,b.example.com ,")
    assert env_list(VAR, ["localhost"]) == ["a.example.com", "b.example.com"]


# --- secret_key ---------------------------------------------------------------------------


def test_it_generates_a_secret_key_once_in_development(tmp_path):
    var_dir = tmp_path / "var"

    first = secret_key(var_dir, debug=True)
    second = secret_key(var_dir, debug=True)

    assert first == second
    assert len(first) >= 50
    path = var_dir / "secret_key"
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_it_generates_a_different_key_in_another_var_dir(tmp_path):
    assert secret_key(tmp_path / "a", debug=True) != secret_key(tmp_path / "b", debug=True)


def test_it_prefers_the_secret_key_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "k" * 40)

    assert secret_key(tmp_path, debug=False) == "k" * 40
    assert secret_key(tmp_path, debug=True) == "k" * 40
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("debug", [True, False])
def test_it_refuses_a_short_secret_key(monkeypatch, tmp_path, debug):
    monkeypatch.setenv("SECRET_KEY", "too-short")

    with pytest.raises(ImproperlyConfigured, match=r"^SECRET_KEY must be at least 32 characters"):
        secret_key(tmp_path, debug=debug)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_it_refuses_to_run_in_production_without_a_secret_key(monkeypatch, tmp_path, raw):
    if raw is not None:
        monkeypatch.setenv("SECRET_KEY", raw)

    with pytest.raises(ImproperlyConfigured, match=r"^SECRET_KEY must be set when DEBUG is off"):
        secret_key(tmp_path, debug=False)

    assert not (tmp_path / "secret_key").exists()


def test_it_does_not_use_a_key_generated_in_development_once_debug_is_off(tmp_path):
    secret_key(tmp_path, debug=True)

    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        secret_key(tmp_path, debug=False)


# --- the settings module, loaded in a fresh process ---------------------------------------


def _load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SECRET_KEY", "DEBUG", "STORAGE_BACKEND", "CELERY_BROKER_URL", "PORT")
    }
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "peridio_console.settings",
            "VAR_DIR": str(tmp_path / "var"),
            "DEBUG": "true",
        }
    )
    environment.update(env)
    code = "import django; django.setup(); from django.conf import settings; print('loaded')"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_it_loads_the_settings_with_the_embedded_defaults(tmp_path):
    result = _load_settings(tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded"
    assert (tmp_path / "var" / "secret_key").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"STORAGE_BACKEND": "bogus"},
            "STORAGE_BACKEND must be one of filesystem, s3; got 'bogus'.",
        ),
        ({"DEBUG": "false", "SECRET_KEY": ""}, "SECRET_KEY must be set when DEBUG is off"),
        ({"DEBUG": "maybe"}, "DEBUG must be one of true/false"),
        ({"PORT": "0"}, "PORT must be at least 1 and at most 65535; got 0."),
        ({"DATABASE_URL": "mysql://u:p@localhost/db"}, "DATABASE_URL must point at SQLite"),
        (
            {"STORAGE_BACKEND": "s3", "AWS_STORAGE_BUCKET_NAME": ""},
            "AWS_STORAGE_BUCKET_NAME must name a bucket when STORAGE_BACKEND is s3.",
        ),
        ({"CELERY_BROKER_URL": "sqs://queue"}, "CELERY_BROKER_URL must start with filesystem://"),
    ],
    ids=["storage-backend", "secret-key", "debug", "port", "database-url", "bucket", "broker"],
)
def test_it_refuses_to_load_settings_with_a_bad_value(tmp_path, env, message):
    result = _load_settings(tmp_path, **env)

    assert result.returncode != 0
    assert "loaded" not in result.stdout
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_it_reads_an_empty_choice_as_the_default(monkeypatch):
    monkeypatch.setenv(VAR, "")
    assert env_choice(VAR, "filesystem", ("filesystem", "s3")) == "filesystem"


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_it_reads_an_empty_string_setting_as_the_default(monkeypatch, raw):
    if raw is not None:
        monkeypatch.setenv(VAR, raw)
    assert env_str(VAR, "filesystem://") == "filesystem://"
    assert env_bool(VAR, True) is True  # SECURE_COOKIES= keeps cookies secure
    monkeypatch.setenv(VAR, " redis://127.0.0.1:6379/0 ")
    assert env_str(VAR, "filesystem://") == "redis://127.0.0.1:6379/0"
