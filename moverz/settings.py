"""Moverz settings: one file, driven by environment variables with working local defaults.

Every variable read here is documented in README.md ("Configuration").
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

# Lets ModelAdmin[Model], Serializer[T] etc. be subscripted at run time (typing only).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    """A string variable; `NAME_FILE` (a path) wins over `NAME`, for secrets mounted as files."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
_INSECURE_KEY = "insecure-local-development-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", _INSECURE_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_dramatiq",
    "moverz",
    "aimetrics",
    "photos",
    "inventory",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "moverz.urls"
WSGI_APPLICATION = "moverz.wsgi.application"
APPEND_SLASH = False

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# No DATABASE_URL: a SQLite file under var/ (what `make run` uses on a bare machine).
VAR_DIR = Path(os.environ.get("MOVERZ_VAR_DIR", BASE_DIR / "var"))
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "moverz.sqlite3"),
            # Web and worker threads write concurrently: wait for the lock instead of failing.
            "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and Dramatiq ---------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DRAMATIQ_NAMESPACE = os.environ.get("DRAMATIQ_NAMESPACE", "dramatiq")
DRAMATIQ_HEARTBEAT_TIMEOUT_MS = env_int("DRAMATIQ_HEARTBEAT_TIMEOUT_MS", 15_000)
DRAMATIQ_MAINTENANCE_CHANCE = env_int("DRAMATIQ_MAINTENANCE_CHANCE", 1000)  # per 65,536 calls
DRAMATIQ_BROKER = {
    "BROKER": "dramatiq.brokers.redis.RedisBroker",
    "OPTIONS": {
        "url": REDIS_URL,
        "namespace": DRAMATIQ_NAMESPACE,
        "heartbeat_timeout": DRAMATIQ_HEARTBEAT_TIMEOUT_MS,
        "maintenance_chance": DRAMATIQ_MAINTENANCE_CHANCE,
    },
    # Listed explicitly: without this key django-dramatiq runs the broker with no middleware at
    # all, and its implicit default names a Prometheus path that dramatiq 2 moved.
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Pipelines",
        "dramatiq.middleware.Retries",
        "dramatiq.middleware.CurrentMessage",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# --- Pipeline knobs -------------------------------------------------------------------------
PHOTO_MAX_ATTEMPTS = env_int("PHOTO_MAX_ATTEMPTS", 3)
PHOTO_RETRY_BASE_MS = env_int("PHOTO_RETRY_BASE_MS", 2_000)
PHOTO_RETRY_MAX_MS = env_int("PHOTO_RETRY_MAX_MS", 60_000)
PHOTO_LEASE_SECONDS = env_int("PHOTO_LEASE_SECONDS", 120)
INVENTORY_SYNC_DELAY_MS = env_int("INVENTORY_SYNC_DELAY_MS", 500)
# A PENDING photo owed a message for longer than this, with no live message, is stuck.
PHOTO_RELAY_GRACE_SECONDS = env_int("PHOTO_RELAY_GRACE_SECONDS", 30)

# --- AI providers ---------------------------------------------------------------------------
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
ANTHROPIC_BASE_URL = os.environ.get("ANTHROPIC_BASE_URL", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "")
ANTHROPIC_MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
OPENAI_MODEL = os.environ.get("OPENAI_MODEL", "gpt-4.1-mini")
AI_TIMEOUT_S = env_float("AI_TIMEOUT_S", 30.0)
# Ordered fallback list. Default: the providers whose keys are set, else the fake provider.
_default_providers = [
    name for name, key in (("anthropic", ANTHROPIC_API_KEY), ("openai", OPENAI_API_KEY)) if key
] or ["fake"]
AI_PROVIDERS = env_list("AI_PROVIDERS", []) or (
    [os.environ["AI_PROVIDER"]] if os.environ.get("AI_PROVIDER") else _default_providers
)
AI_PROVIDER = AI_PROVIDERS[0]
# USD per million input/output tokens, per model, e.g. {"claude-sonnet-4-5": [3, 15]};
# merged over ai_engine.pricing.DEFAULT_PRICES.
AI_PRICES = json.loads(os.environ.get("AI_PRICES", "{}") or "{}")
AI_BREAKER_THRESHOLD = env_int("AI_BREAKER_THRESHOLD", 5)
AI_BREAKER_WINDOW_S = env_int("AI_BREAKER_WINDOW_S", 60)
AI_BREAKER_COOLDOWN_S = env_int("AI_BREAKER_COOLDOWN_S", 30)
AI_FAKE_LATENCY_MS = env_int("AI_FAKE_LATENCY_MS", 0)
AI_FAKE_FAIL_RATE = env_float("AI_FAKE_FAIL_RATE", 0.0)
AI_FAKE_FAIL_CODE = os.environ.get("AI_FAKE_FAIL_CODE", "PROVIDER_DOWN")

# --- Uploads and media ----------------------------------------------------------------------
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 15 * 1024 * 1024)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 50_000_000)
UPLOAD_MIN_EDGE = env_int("UPLOAD_MIN_EDGE", 200)
# Django refuses request bodies above this before our validation sees them; keep it above the
# upload limit so an oversized image gets our precise message.
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Photos go through Django's storage API only: the file system under MEDIA_ROOT, or S3 when a
# bucket is configured (django-storages reads the AWS_* settings below).
AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")
AWS_S3_ENDPOINT_URL = os.environ.get("AWS_S3_ENDPOINT_URL", "") or None
AWS_S3_REGION_NAME = os.environ.get("AWS_S3_REGION_NAME", "") or None
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID") or None
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY") or None
AWS_LOCATION = os.environ.get("AWS_LOCATION", "")
AWS_DEFAULT_ACL = None
AWS_S3_FILE_OVERWRITE = False
AWS_QUERYSTRING_AUTH = True
_DEFAULT_STORAGE: dict[str, Any] = (
    {"BACKEND": "storages.backends.s3.S3Storage"}
    if AWS_STORAGE_BUCKET_NAME
    else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
)
STORAGES = {
    "default": _DEFAULT_STORAGE,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
# The admin's and Swagger UI's files are served by the app itself (no CDN, no extra server):
# from the apps' static folders directly, so no collectstatic step is needed.
WHITENOISE_USE_FINDERS = True
with contextlib.suppress(OSError):  # WhiteNoise warns at every start when it is missing
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_AUTOREFRESH = DEBUG

# --- Auth and API ---------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

_RENDERERS = ["rest_framework.renderers.JSONRenderer"]
if DEBUG:
    _RENDERERS.append("rest_framework.renderers.BrowsableAPIRenderer")

REST_FRAMEWORK = {
    # Token first: an unauthenticated request then gets 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": _RENDERERS,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "moverz.api.NewestFirstPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "EXCEPTION_HANDLER": "moverz.api.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Moverz photo-analysis API",
    "DESCRIPTION": "Upload room photos, analyse them with AI, read the moving inventory.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are under /api/ like everything else: token or admin session needed.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "en-us")
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
