"""One settings file. Every value comes from the environment, with embedded defaults."""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from peridio_console.env import (
    cache_from_url,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_str,
    read_env_file,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var"))).resolve()
# Everything a project process writes (var/: the database and its WAL, keys, passwords, the
# cache, the broker's queue, stored binaries) is its user's alone: 0600 files, 0700 folders.
# Settings are the first thing each of them loads (manage.py, wsgi/asgi, the Celery app, and
# the children of `serve`); peridio_console/checks.py refuses secrets made before this.
os.umask(0o077)

# The first `make run` writes var/env (DEBUG=true): manage.py run by hand in this checkout then
# gets the same settings and the same generated var/secret_key. The environment still wins; a
# machine without that file (production) gets none of it.
read_env_file(VAR_DIR / "env")

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_key(VAR_DIR, debug=DEBUG)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "ninja",
    "peridio_console",
    "peridio_console.accounts",
    "binaries",
]

MIDDLEWARE = [
    "peridio_console.health.ProbeMiddleware",  # first: probes come by address over plain HTTP
    "django.middleware.security.SecurityMiddleware",
    "peridio_console.middleware.SecurityHeadersMiddleware",
    "peridio_console.middleware.DatabaseErrorMiddleware",
    "peridio_console.middleware.StaticFilesMiddleware",
    "peridio_console.middleware.ApiPrefixMiddleware",  # before CommonMiddleware's added slash
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "peridio_console.middleware.ApiErrorShapeMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "peridio_console.accounts.login.LoginThrottleMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "peridio_console.urls"
WSGI_APPLICATION = "peridio_console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "peridio_console.accounts.context_processors.organization",
            ],
        },
    },
]


def _database() -> dict[str, Any]:
    url = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
    try:
        config = dj_database_url.parse(url)
    except Exception as exc:
        raise ImproperlyConfigured(
            "DATABASE_URL must look like sqlite:///path/db.sqlite3 or "
            f"postgres://user:password@host:5432/name; got {url!r} ({exc})."
        ) from None
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        # A web server and a worker write at once: WAL, a busy timeout and IMMEDIATE
        # transactions keep "database is locked" away from users.
        config["OPTIONS"] = {
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
        # A file, not memory, so test workers and live servers in other threads or
        # processes see the same database.
        # One file per test run, so parallel runs on one machine do not share it.
        config["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
    elif engine == "django.db.backends.postgresql":
        config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
        config["CONN_HEALTH_CHECKS"] = True
        # An unreachable server fails a request (and /readyz) in seconds, not after the
        # system's TCP time-out of minutes.
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    else:
        raise ImproperlyConfigured(
            f"DATABASE_URL must point at SQLite or PostgreSQL; got engine {engine}."
        )
    return dict(config)


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Every password check goes through the log-in throttle (peridio_console/accounts/login.py).
AUTHENTICATION_BACKENDS = ["peridio_console.accounts.login.ThrottledModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

FILE_UPLOAD_PERMISSIONS = 0o600  # Django chmods what its storages save (collectstatic too)
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"  # made by collectstatic, or by StaticFilesMiddleware
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

# --- Content storage --------------------------------------------------------------------
STORAGE_BACKEND = env_choice("STORAGE_BACKEND", "filesystem", ("filesystem", "s3"))
BINARIES_ROOT = VAR_DIR / "binaries"
UPLOAD_URL_TTL_SECONDS = env_int("UPLOAD_URL_TTL_SECONDS", 3600, minimum=60, maximum=7 * 86400)
DOWNLOAD_URL_TTL_SECONDS = env_int("DOWNLOAD_URL_TTL_SECONDS", 3600, minimum=60, maximum=7 * 86400)
DOWNLOAD_URL_MAX_TTL_SECONDS = env_int(
    "DOWNLOAD_URL_MAX_TTL_SECONDS", 7 * 86400, minimum=60, maximum=7 * 86400
)
ABANDONED_UPLOAD_DAYS = env_int("ABANDONED_UPLOAD_DAYS", 7, minimum=1)


def _s3_options() -> dict[str, Any]:
    bucket = env_str("AWS_STORAGE_BUCKET_NAME", "")
    if STORAGE_BACKEND == "s3" and not bucket:
        raise ImproperlyConfigured(
            "AWS_STORAGE_BUCKET_NAME must name a bucket when STORAGE_BACKEND is s3."
        )
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "endpoint_url": env_str("AWS_S3_ENDPOINT_URL", "") or None,
        "region_name": env_str("AWS_S3_REGION_NAME", "") or None,
        "access_key": env_str("AWS_ACCESS_KEY_ID", "") or None,
        "secret_key": env_str("AWS_SECRET_ACCESS_KEY", "") or None,
        "addressing_style": env_choice(
            "AWS_S3_ADDRESSING_STYLE", "auto", ("auto", "path", "virtual")
        )
        if env_str("AWS_S3_ADDRESSING_STYLE", "")
        else None,
        "querystring_expire": env_int("AWS_QUERYSTRING_EXPIRE", 3600, minimum=60),
        "location": env_str("AWS_LOCATION", ""),
        "file_overwrite": True,
        "default_acl": None,
        "signature_version": "s3v4",
    }
    # CloudFront-signed download URLs (django-storages signs them when all three are set).
    if env_str("AWS_CLOUDFRONT_KEY_ID", ""):
        options["custom_domain"] = env_str("AWS_S3_CUSTOM_DOMAIN", "") or None
        options["cloudfront_key_id"] = env_str("AWS_CLOUDFRONT_KEY_ID", "")
        options["cloudfront_key"] = env_str("AWS_CLOUDFRONT_KEY", "").encode() or None
        if not options["custom_domain"] or not options["cloudfront_key"]:
            raise ImproperlyConfigured(
                "AWS_CLOUDFRONT_KEY_ID needs AWS_S3_CUSTOM_DOMAIN (the distribution's domain) "
                "and AWS_CLOUDFRONT_KEY (the PEM private key) as well."
            )
    return options


STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "media")},
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage",
    },
}
if STORAGE_BACKEND == "s3":  # the filesystem backend reads BINARIES_ROOT, not a Django storage
    STORAGES["binaries"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _s3_options()}

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.split("://", 1)[0] not in {
    "filesystem",
    "redis",
    "rediss",
    "amqp",
    "amqps",
    "pyamqp",
    "memory",
}:
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL must start with filesystem://, redis://, rediss://, amqp:// or "
        f"memory://; got {CELERY_BROKER_URL!r}."
    )
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport, with each message renamed into the queue whole (broker.py,
    # registered for the filesystem:// scheme in celery.py).
    _queue = VAR_DIR / "celery" / "queue"  # made when the broker is set up (celery.py)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue),
        "data_folder_out": str(_queue),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
        # Look for new work every 0.1 s (default 1 s): verification starts at once.
        "polling_interval": 0.1,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Redis delivers an unacknowledged message again once its lease is this old. A live
        # worker renews the lease of every message it holds each second (binaries/tasks.py),
        # so a long verification is never delivered twice, and one whose worker was killed
        # is delivered again within seconds (kombu's default, an hour, would strand it).
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6, minimum=3),
        # Every worker looks for expired leases each second (default: every 100 s).
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
        # The lock around that look; a worker killed holding it must not stop it for minutes.
        "unacked_mutex_expire": 10,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
HASHING_STALL_SECONDS = env_int("HASHING_STALL_SECONDS", 120, minimum=1)
# A redelivered verification takes over a run whose heartbeat (every second) is this old.
HASHING_TAKEOVER_SECONDS = env_int("HASHING_TAKEOVER_SECONDS", 5, minimum=2)
HASHING_BYTES_PER_SECOND = env_int("HASHING_BYTES_PER_SECOND", 0, minimum=0)  # 0: no limit
SCRUB_INTERVAL_SECONDS = env_int("SCRUB_INTERVAL_SECONDS", 7 * 86400, minimum=60)
SCRUB_BYTES_PER_SECOND = env_int("SCRUB_BYTES_PER_SECOND", 50 * 1024 * 1024, minimum=0)
CELERY_BEAT_SCHEDULE: dict = {
    "sweep-stalled-verifications": {"task": "binaries.tasks.sweep", "schedule": 60.0},
    "clean-abandoned-uploads": {
        "task": "binaries.tasks.clean_abandoned_uploads",
        "schedule": 3600.0,
    },
    "scrub-signed-content": {"task": "binaries.tasks.scrub", "schedule": 600.0},
}

# --- Requests ---------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 4 * 1024 * 1024, minimum=1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
}

# --- Web hardening --------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
CSP_CONNECT_SRC = env_list("CSP_CONNECT_SRC", [])
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900, minimum=1)
# How many proxies of ours stand in front (each appending to X-Forwarded-For). 0: clients
# connect directly and REMOTE_ADDR is theirs; any X-Forwarded-For they send is ignored. N: the
# client's address is the Nth entry from the right (log-in throttling, audit events).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)
# Log-in failures are not counted in the cache (the database counts them atomically). The file
# cache under var/ serves one machine; several web machines share CACHE_URL=redis://...
CACHES = {"default": cache_from_url(env_str("CACHE_URL", ""), VAR_DIR)}

# --- Health and metrics (peridio_console/health.py) -------------------------------------
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
if METRICS_TOKEN:
    if len(METRICS_TOKEN) < 16:
        raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long.")
    # Gunicorn's and Celery's processes each count; prometheus_client adds their files up. It
    # reads this variable when first imported, which is after the settings.
    _metrics_dir = Path(env_str("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "metrics"))).resolve()
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    if env_bool("SECURE_PROXY_SSL_HEADER", False):  # behind a proxy that sets it
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
