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
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS ----------------------------------------------------------------------------------
# With DEBUG off the service is HTTPS-only (`manage.py check --deploy` passes: see
# scripts/check_deploy.sh). TLS ends at the platform's proxy, which must set (and overwrite)
# X-Forwarded-Proto; TRUST_X_FORWARDED_PROTO=0 when nothing in front of the app does. The
# switches exist for plain-HTTP runs (the test suite, a private network).
if env_bool("TRUST_X_FORWARDED_PROTO", not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Health probes and Prometheus scrapes reach the app directly over HTTP: no redirect for them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)

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
    # Before django_dramatiq: its `rundramatiq` command is replaced by ours (operations).
    "operations",
    "django_dramatiq",
    "moverz",
    "aimetrics",
    "photos",
    "inventory",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "moverz.middleware.RequestBodyLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The admin in the browser's language (Accept-Language), LANGUAGE_CODE otherwise.
    "django.middleware.locale.LocaleMiddleware",
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
# PostgreSQL goes through psycopg's connection pool (per process, DB_POOL_MAX_SIZE connections at
# most; 0 turns pooling off and keeps persistent connections instead). Workers hand their
# connection back while they wait on the AI provider (DB_RELEASE_DURING_AI_CALLS), so threads
# share a few connections, and the pool checks each one before use (infra/dbpool.py), so
# connections that PostgreSQL dropped are replaced instead of failing a request.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 10)
DB_RELEASE_DURING_AI_CALLS = env_bool("DB_RELEASE_DURING_AI_CALLS", True)
if DATABASE_URL:
    _pooled = DB_POOL_MAX_SIZE > 0 and DATABASE_URL.startswith(("postgres", "postgresql"))
    _database = dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=0 if _pooled else env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=not _pooled,
    )
    if _pooled:
        from infra.dbpool import pool_check

        _database.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": env_float("DB_POOL_TIMEOUT_S", 30.0),
            "check": pool_check,
        }
    DATABASES = {"default": _database}
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
# SQLite (development only) ignores the INCLUDE columns of AiMetric's covering indexes: harmless.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- Redis and Dramatiq ---------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DRAMATIQ_NAMESPACE = os.environ.get("DRAMATIQ_NAMESPACE", "dramatiq")
DRAMATIQ_HEARTBEAT_TIMEOUT_MS = env_int("DRAMATIQ_HEARTBEAT_TIMEOUT_MS", 15_000)
# Per 1,000,000 broker calls (dramatiq's scale), and only for the queue of that call; the relay
# also sweeps every queue on each pass (operations/relay.py), which is what bounds the recovery.
DRAMATIQ_MAINTENANCE_CHANCE = env_int("DRAMATIQ_MAINTENANCE_CHANCE", 1000)
DRAMATIQ_BROKER = {
    # Dramatiq's, with a consumer that fetches as soon as a thread is free (infra/broker.py).
    "BROKER": "infra.broker.RedisBroker",
    "OPTIONS": {
        "url": REDIS_URL,
        "namespace": DRAMATIQ_NAMESPACE,
        "heartbeat_timeout": DRAMATIQ_HEARTBEAT_TIMEOUT_MS,
        "maintenance_chance": DRAMATIQ_MAINTENANCE_CHANCE,
    },
    # Listed explicitly: without this key django-dramatiq runs the broker with no middleware at
    # all, and its implicit default names a Prometheus path that dramatiq 2 moved.
    "MIDDLEWARE": [
        # The worker's own metrics, served by its main process on dramatiq_prom_host:
        # dramatiq_prom_port (env; default 0.0.0.0:9191). A port already taken costs only that
        # exporter, never the worker. README ("Prometheus").
        "dramatiq.middleware.prometheus.Prometheus",
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Pipelines",
        "dramatiq.middleware.Retries",
        "dramatiq.middleware.CurrentMessage",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        "photos.worker_boot.WarmAiEngine",
        # A worker's prefetch and idle timeout from the settings below (before the registry,
        # which records what the worker's consumers got).
        "infra.broker.WorkerTuning",
        # Marks worker processes in Redis, so the queues page tells them from web processes.
        "operations.workers.WorkerRegistry",
        # The relay as a fork process of every `rundramatiq` (RELAY_IN_WORKER).
        "operations.relay.RelayInWorker",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# --- Cache and throttling -------------------------------------------------------------------
# Django's cache is Redis, so the throttling counters are shared by every web process; the key
# prefix keeps them apart from other deployments (and test processes) on the same server. Short
# socket timeouts: when Redis is down, throttling fails open quickly (infra/throttling.py).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("CACHE_URL", REDIS_URL),
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", f"{DRAMATIQ_NAMESPACE}:cache"),
        # RESP2, as the broker (infra/broker.py, REDIS_PROTOCOL): see there.
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5, "protocol": 2},
    }
}
THROTTLE_CACHE = "default"
# Per user, e.g. "120/min", "5000/day", "10/5s"; empty or "off" turns the limit off.
THROTTLE_UPLOAD_RATE = os.environ.get("THROTTLE_UPLOAD_RATE", "120/min")
THROTTLE_ENQUEUE_RATE = os.environ.get("THROTTLE_ENQUEUE_RATE", "120/min")
THROTTLE_FAILOPEN_S = env_float("THROTTLE_FAILOPEN_S", 5.0)
# Creating, testing and rotating webhook endpoints (each test sends a request somewhere).
THROTTLE_WEBHOOK_RATE = os.environ.get("THROTTLE_WEBHOOK_RATE", "30/min")

# --- Prometheus (/metrics) ------------------------------------------------------------------
# Allowed: `Authorization: Bearer <METRICS_TOKEN>`, or a client address in one of these networks
# (CIDRs; `none`: no address, the token only). Everything else gets 403.
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = [
    net for net in env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"]) if net != "none"
]

# --- Pipeline knobs -------------------------------------------------------------------------
PHOTO_MAX_ATTEMPTS = env_int("PHOTO_MAX_ATTEMPTS", 3)
PHOTO_RETRY_BASE_MS = env_int("PHOTO_RETRY_BASE_MS", 2_000)
PHOTO_RETRY_MAX_MS = env_int("PHOTO_RETRY_MAX_MS", 60_000)
PHOTO_LEASE_SECONDS = env_int("PHOTO_LEASE_SECONDS", 120)
INVENTORY_SYNC_DELAY_MS = env_int("INVENTORY_SYNC_DELAY_MS", 500)
# How an inventory line counts an item seen in several photos of one room: the largest quantity
# of any one photo (views of one room), or the sum (clients that send one photo per room).
INVENTORY_MERGE = env_str("INVENTORY_MERGE", "max").strip().lower()
if INVENTORY_MERGE not in ("max", "sum"):
    raise ImproperlyConfigured(f"INVENTORY_MERGE must be max or sum, got {INVENTORY_MERGE!r}")
# A PENDING photo owed a message for longer than this, with no live message, is stuck.
PHOTO_RELAY_GRACE_SECONDS = env_int("PHOTO_RELAY_GRACE_SECONDS", 30)
RELAY_INTERVAL_S = env_float("RELAY_INTERVAL_S", 10.0)
# Each `rundramatiq` forks one relay; off where the platform runs `manage.py relay` instead.
RELAY_IN_WORKER = env_bool("RELAY_IN_WORKER", True)

# --- Webhooks (webhooks/; README "Webhooks") --------------------------------------------
# Plain http:// endpoints, and endpoints in these networks (CIDRs) although they are not public
# addresses: development and tests only. Production needs neither.
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", False)
WEBHOOK_ALLOWED_NETWORKS = env_list("WEBHOOK_ALLOWED_NETWORKS", [])
# Seconds before each retry of a failed delivery (then it is given up), with jitter.
WEBHOOK_RETRY_SCHEDULE = [
    float(step)
    for step in env_list("WEBHOOK_RETRY_SCHEDULE", ["5", "300", "1800", "7200", "18000", "36000"])
]
# One attempt, DNS to the response's first bytes, never holds a worker thread longer than this.
WEBHOOK_TIMEOUT_S = env_float("WEBHOOK_TIMEOUT_S", 10.0)
# An endpoint failing without a success for this long is disabled (five days).
WEBHOOK_DISABLE_AFTER_S = env_int("WEBHOOK_DISABLE_AFTER_S", 5 * 86_400)
# After a rotation the previous secret still signs for this long.
WEBHOOK_SECRET_OVERLAP_S = env_int("WEBHOOK_SECRET_OVERLAP_S", 86_400)

# --- Workers (`manage.py rundramatiq`; its flags override the first two) -------------------
WORKER_PROCESSES = env_int("WORKER_PROCESSES", 2)
WORKER_THREADS = env_int("WORKER_THREADS", 8)
# One message per thread (Dramatiq's default is two) spreads a burst over all the processes.
WORKER_PREFETCH_PER_THREAD = env_int("WORKER_PREFETCH_PER_THREAD", 1)
# How long an idle consumer or thread sleeps before it looks again (Dramatiq's default: 1 s):
# bounds the wait of the first message sent to an idle worker.
WORKER_IDLE_TIMEOUT_MS = env_int("WORKER_IDLE_TIMEOUT_MS", 250)
# `manage.py worker_health` fails when a worker process of this host has not published its state
# (every third of this) or one of its consumers has not asked for a message for this long.
WORKER_HEALTH_STALE_S = env_float("WORKER_HEALTH_STALE_S", 30.0)
# On SIGTERM, how long running messages may finish: above the actor's time limit.
WORKER_SHUTDOWN_TIMEOUT_MS = env_int(
    "WORKER_SHUTDOWN_TIMEOUT_MS", PHOTO_LEASE_SECONDS * 1000 + 30_000
)

# --- AI providers ---------------------------------------------------------------------------
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
ANTHROPIC_BASE_URL = os.environ.get("ANTHROPIC_BASE_URL", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "")
# Defaults the installed SDKs list, not deprecated, and priced by genai-prices
# (tests/test_models.py checks all three, so a retired default fails CI).
ANTHROPIC_MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
OPENAI_MODEL = os.environ.get("OPENAI_MODEL", "gpt-5.4-mini")
AI_TIMEOUT_S = env_float("AI_TIMEOUT_S", 30.0)
# A photo without a room type: one call answers the room and the items; on, the room is asked in
# a call of its own first (two calls: twice the image tokens and the wait).
AI_ROOM_SEPARATE_CALL = env_bool("AI_ROOM_SEPARATE_CALL", False)
# How long a process keeps the queue's pace behind a poll's Retry-After (photos/pace.py).
POLL_PACE_TTL_S = env_float("POLL_PACE_TTL_S", 15.0)
# Ordered fallback list. Default: the providers whose keys are set, else the fake provider.
_default_providers = [
    name for name, key in (("anthropic", ANTHROPIC_API_KEY), ("openai", OPENAI_API_KEY)) if key
] or ["fake"]
AI_PROVIDERS = env_list("AI_PROVIDERS", []) or (
    [os.environ["AI_PROVIDER"]] if os.environ.get("AI_PROVIDER") else _default_providers
)
AI_PROVIDER = AI_PROVIDERS[0]
# Prices come from the installed genai-prices; this overrides them for the models it names:
# USD per million input/output tokens, e.g. {"claude-sonnet-4-6": [3, 15]} (ai_engine/pricing.py).
AI_PRICES = json.loads(os.environ.get("AI_PRICES", "{}") or "{}")
AI_BREAKER_THRESHOLD = env_int("AI_BREAKER_THRESHOLD", 5)
AI_BREAKER_WINDOW_S = env_int("AI_BREAKER_WINDOW_S", 60)
AI_BREAKER_COOLDOWN_S = env_int("AI_BREAKER_COOLDOWN_S", 30)
AI_FAKE_LATENCY_MS = env_int("AI_FAKE_LATENCY_MS", 0)
AI_FAKE_FAIL_RATE = env_float("AI_FAKE_FAIL_RATE", 0.0)
AI_FAKE_FAIL_CODE = os.environ.get("AI_FAKE_FAIL_CODE", "PROVIDER_DOWN")
# Provider quotas shared by every worker (ai_engine/quota.py; docs/configuration.md), e.g.
# {"anthropic": {"rpm": 120, "itpm": 400000, "otpm": 80000, "concurrency": 16}}; a key
# "provider:model" limits one model. Checked when the engine is built (ImproperlyConfigured).
try:
    AI_QUOTAS = json.loads(os.environ.get("AI_QUOTAS", "{}") or "{}")
except ValueError as exc:
    raise ImproperlyConfigured(f"AI_QUOTAS is not valid JSON: {exc}") from None
# The buckets hold this many seconds of each per-minute limit (the largest burst after a lull).
AI_QUOTA_BURST_S = env_float("AI_QUOTA_BURST_S", 10.0)
# How soon a photo denied for concurrency or its project's fair share asks again.
AI_QUOTA_RECHECK_MS = env_int("AI_QUOTA_RECHECK_MS", 1000)
# A project counts as having work waiting this long after its last ask (or its next booking),
# unless its last owed photo is done sooner.
AI_FAIR_ACTIVE_MS = env_int("AI_FAIR_ACTIVE_MS", 2000)
# At most this many analyses of one project at once (0: no cap but the fair share).
AI_PROJECT_CONCURRENCY = env_int("AI_PROJECT_CONCURRENCY", 0)
# High-priority photos are served first (ai_engine/quota.py); while they keep the provider busy,
# normal work still gets at least this share of the slots (0: none until they are done).
AI_PRIORITY_NORMAL_SHARE = env_float("AI_PRIORITY_NORMAL_SHARE", 0.1)
# Normal calls leave this many seconds of each budget for high-priority ones, so a burst of
# high-priority photos starts at once behind a normal backlog.
AI_PRIORITY_RESERVE_S = env_float("AI_PRIORITY_RESERVE_S", 2.5)

# --- Uploads and media ----------------------------------------------------------------------
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 15 * 1024 * 1024)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 50_000_000)
UPLOAD_MIN_EDGE = env_int("UPLOAD_MIN_EDGE", 200)
# Request bodies above this get 413 before anything reads them (moverz.middleware); keep it above
# the upload limit so an oversized image gets our precise message.
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
        "infra.auth.TokenAuthentication",  # DRF's, reading the user by the key
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": _RENDERERS,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "infra.api.NewestFirstPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "EXCEPTION_HANDLER": "infra.api.exception_handler",
    # No OPTIONS metadata (it lists every serializer field, and the docs view crashed on it):
    # OPTIONS answers 405 like any method a view does not have.
    "DEFAULT_METADATA_CLASS": None,
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
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # fpdf2's font subsetting (the cube sheet's PDF) logs each table it prunes at INFO.
        "fontTools": {"level": "WARNING"},
        # Never at DEBUG, whatever LOG_LEVEL says: there the AI SDKs log whole requests (the
        # photo in base64) and response headers, and the HTTP and AWS libraries log headers.
        **{
            name: {"level": "INFO"}
            for name in (
                *("anthropic", "openai", "httpx", "httpx2", "httpcore", "httpcore2"),
                *("botocore", "boto3", "urllib3"),
            )
        },
    },
}
