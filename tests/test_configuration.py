"""CACHE_URL, the local install's var/env, and one sentence (no traceback) for a bad setting
from manage.py, `check --deploy` and gunicorn."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from peridio_console.env import cache_from_url, read_env_file
from tests.server_helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
VAR = "PERIDIO_TEST_FROM_FILE"


# --- One sentence, no traceback -----------------------------------------------------------


def _environment(tmp_path: Path, **env: str) -> dict[str, str]:
    """Like a fresh shell: none of the suite's settings, a VAR_DIR of the test's own."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CELERY_", "STORAGE_", "DATABASE_", "CACHE_", "PYTEST_"))
        and k not in ("DEBUG", "SECRET_KEY", "PORT", "METRICS_TOKEN", "DJANGO_SETTINGS_MODULE")
    }
    environment["VAR_DIR"] = str(tmp_path / "var")
    environment.update(env)
    return environment


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_environment(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env", "sentence"),
    [
        pytest.param(
            ["check", "--deploy"],
            {},
            "SECRET_KEY must be set when DEBUG is off (generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`).",
            id="check-deploy-secret-key",
        ),
        pytest.param(
            ["create_org", "Acme", "--admin", "alice"],
            {"DEBUG": "sometimes"},
            "DEBUG must be one of true/false, yes/no, on/off or 1/0; got 'sometimes'.",
            id="debug",
        ),
        pytest.param(
            ["check"],
            {"DEBUG": "true", "CACHE_URL": "memcached://127.0.0.1:11211"},
            "CACHE_URL must start with redis://, rediss://, file:// or locmem://; "
            "got 'memcached://127.0.0.1:11211'.",
            id="check-cache-url",
        ),
        pytest.param(
            ["migrate"],
            {"DEBUG": "true", "METRICS_TOKEN": "short"},
            "METRICS_TOKEN must be at least 16 characters long.",
            id="migrate-metrics-token",
        ),
    ],
)
def test_it_stops_on_a_bad_setting_with_one_sentence(tmp_path, args, env, sentence):
    done = _manage(tmp_path, *args, **env)

    assert done.returncode == 2
    assert done.stderr == f"Configuration error: {sentence}\n"
    assert done.stdout == ""


def _gunicorn(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            *args,
            "peridio_console.wsgi",
            "--bind",
            f"127.0.0.1:{free_port()}",
        ],
        cwd=ROOT,
        env=_environment(tmp_path, DEBUG="false"),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_it_stops_gunicorn_on_a_bad_setting_before_any_worker_starts(tmp_path):
    done = _gunicorn(tmp_path, "--workers", "4")  # gunicorn.conf.py, read from ROOT

    assert done.returncode == 2
    assert done.stderr.startswith(
        "Configuration error: SECRET_KEY must be set when DEBUG is off (generate one with"
    )
    assert done.stderr.count("\n") == 1


@pytest.mark.slow
def test_it_stops_gunicorn_started_without_its_config_file(tmp_path):
    # Without gunicorn.conf.py the worker finds the error; gunicorn stops instead of starting
    # workers again for ever.
    (tmp_path / "empty.conf.py").write_text("")

    done = _gunicorn(tmp_path, "--config", str(tmp_path / "empty.conf.py"), "--workers", "1")

    assert done.returncode == 4
    assert "Traceback" not in done.stderr
    assert "Configuration error: SECRET_KEY must be set when DEBUG is off" in done.stderr
    assert "Reason: App failed to load." in done.stderr


# --- var/env ------------------------------------------------------------------------------


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    for name in (VAR, f"{VAR}_2", f"{VAR}_3"):
        monkeypatch.delenv(name, raising=False)  # restored after the test, whatever is read
    return tmp_path / "env"


def test_it_reads_a_local_env_file_under_the_environment(env_file, monkeypatch):
    monkeypatch.setenv(f"{VAR}_2", "from the environment")
    monkeypatch.setenv(f"{VAR}_3", "  ")  # empty counts as unset, as everywhere
    env_file.write_text(
        f"# a comment\n\n{VAR}=true\n{VAR}_2=from the file\n {VAR}_3 = 'quoted value' \n"
    )

    read_env_file(env_file)

    assert os.environ[VAR] == "true"
    assert os.environ[f"{VAR}_2"] == "from the environment"
    assert os.environ[f"{VAR}_3"] == "quoted value"


def test_it_does_without_an_env_file(env_file):
    read_env_file(env_file)

    assert VAR not in os.environ


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("DEBUG", "line 2 must look like NAME=value; got 'DEBUG'."),
        ("export DEBUG=true", "line 2 must look like NAME=value; got 'export DEBUG=true'."),
        ("VAR_DIR=/srv", "line 2 cannot set VAR_DIR: that file is read from VAR_DIR."),
    ],
)
def test_it_refuses_an_env_file_line_it_cannot_read(env_file, line, message):
    env_file.write_text(f"{VAR}=1\n{line}\n")

    with pytest.raises(ImproperlyConfigured) as excinfo:
        read_env_file(env_file)

    assert str(excinfo.value) == f"{env_file} {message}"


@pytest.mark.slow
def test_it_uses_the_local_install_s_env_file_and_lets_the_environment_win(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "env").write_text("DEBUG=true\n")

    local = _manage(tmp_path, "check")
    production = _manage(tmp_path, "check", DEBUG="false")

    assert local.returncode == 0, local.stderr
    assert (tmp_path / "var" / "secret_key").exists()
    assert production.returncode == 2
    assert production.stderr.startswith("Configuration error: SECRET_KEY must be set")


@pytest.mark.slow
def test_it_stops_on_a_bad_env_file_line_with_one_sentence(tmp_path):
    (tmp_path / "var").mkdir()
    env_file = tmp_path / "var" / "env"
    env_file.write_text("DEBUG=true\nnonsense\n")

    done = _manage(tmp_path, "check")

    assert done.returncode == 2
    assert done.stderr == (
        f"Configuration error: {env_file} line 2 must look like NAME=value; got 'nonsense'.\n"
    )


# --- CACHE_URL ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "backend", "location"),
    [
        ("", "filebased.FileBasedCache", "{var}/cache"),
        ("file://", "filebased.FileBasedCache", "{var}/cache"),
        ("file:///srv/peridio/cache", "filebased.FileBasedCache", "/srv/peridio/cache"),
        ("redis://10.0.0.7:6379/1", "redis.RedisCache", "redis://10.0.0.7:6379/1"),
        ("rediss://:pw@cache.example.com:6380/0", "redis.RedisCache", None),
        ("locmem://", "locmem.LocMemCache", ""),
        ("locmem://tests", "locmem.LocMemCache", "tests"),
    ],
)
def test_it_reads_the_cache_url(tmp_path, url, backend, location):
    config = cache_from_url(url, tmp_path)

    assert config["BACKEND"] == f"django.core.cache.backends.{backend}"
    expected = url if location is None else location.format(var=tmp_path)
    assert config["LOCATION"] == expected


def test_it_gives_redis_short_timeouts(tmp_path):
    options = cache_from_url("redis://127.0.0.1:6379/0", tmp_path)["OPTIONS"]

    assert options == {"socket_connect_timeout": 2, "socket_timeout": 2}


@pytest.mark.parametrize("url", ["memcached://127.0.0.1:11211", "redis:/x", "/var/cache"])
def test_it_refuses_a_cache_url_it_cannot_read(tmp_path, url):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        cache_from_url(url, tmp_path)

    assert str(excinfo.value) == (
        f"CACHE_URL must start with redis://, rediss://, file:// or locmem://; got {url!r}."
    )


def test_it_shares_the_cache_through_redis(settings):
    from django.core.cache import caches

    settings.CACHES = {"default": cache_from_url("redis://127.0.0.1:6379/15", Path("unused"))}
    cache = caches.create_connection("default")
    try:
        cache.set("shared", 1)
    except Exception as exc:  # redis-py's ConnectionError
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise
        pytest.skip(f"needs Redis on 127.0.0.1:6379 ({exc})")
    other = caches.create_connection("default")  # as another machine would
    assert other.incr("shared") == 2
    assert cache.get("shared") == 2
    cache.delete("shared")
