"""Production settings (HTTPS, cookies, `check --deploy`) and per-user throttling of the upload and
enqueue endpoints, with Redis shared by every process and failing open when it is down."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from infra import throttling
from photos.models import Photo, Project
from tests.factories import image_bytes, make_photo, make_project, make_token, make_user

pytestmark = pytest.mark.django_db

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECK_DEPLOY = REPO_ROOT / "scripts" / "check_deploy.sh"


def _client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {make_token(user)}")
    return client


def _upload(api: APIClient, project: Project) -> Any:
    image = SimpleUploadedFile("room.jpg", image_bytes(), content_type="image/jpeg")
    return api.post(
        "/api/photos", {"image": image, "projectId": str(project.pk)}, format="multipart"
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _fresh_cache_health() -> Iterator[None]:
    """The fail-open memory is per process: every test starts with a healthy cache."""
    throttling.cache_health = throttling._CacheHealth()
    yield
    throttling.cache_health = throttling._CacheHealth()


# --- check --deploy -----------------------------------------------------------------------------


def _check_deploy(*extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CHECK_DEPLOY), *extra_env],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_the_production_settings() -> None:
    result = _check_deploy()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("switch", "warning"),
    [
        ("SECURE_SSL_REDIRECT=0", "security.W008"),
        ("SECURE_COOKIES=0", "security.W012"),
        ("SECURE_HSTS_SECONDS=0", "security.W004"),
    ],
)
def test_check_deploy_fails_when_https_is_switched_off(switch: str, warning: str) -> None:
    # The script really checks: the plain-HTTP switches the test suite uses would fail CI.
    result = _check_deploy(switch)

    assert result.returncode != 0
    assert warning in result.stderr


def _settings_in_subprocess(env: dict[str, str]) -> dict[str, Any]:
    code = textwrap.dedent(
        """
        import json
        from moverz import settings as s
        print(json.dumps({name: getattr(s, name, None) for name in (
            "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE",
            "CSRF_COOKIE_SECURE")}))
        """
    )
    base = {"PATH": os.environ["PATH"], "MOVERZ_VAR_DIR": os.environ["MOVERZ_VAR_DIR"]}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(result.stdout))


def test_production_defaults_are_https_only() -> None:
    values = _settings_in_subprocess({"DEBUG": "0", "SECRET_KEY": "k" * 60})

    assert values == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
    }


def test_debug_runs_over_plain_http() -> None:
    values = _settings_in_subprocess({"DEBUG": "1"})

    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert (values["SESSION_COOKIE_SECURE"], values["CSRF_COOKIE_SECURE"]) == (False, False)


# --- HTTPS behaviour (production values, set here: the suite itself runs over plain HTTP) --------


@pytest.fixture
def https_only(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True


@pytest.mark.usefixtures("https_only")
def test_plain_http_is_redirected_to_https(user: Any) -> None:
    client = _client_for(user)

    response = client.get("/api/projects")

    assert response.status_code == 301
    assert response["Location"] == "https://testserver/api/projects"


@pytest.mark.usefixtures("https_only")
def test_https_through_the_proxy_is_served_with_hsts(user: Any) -> None:
    client = _client_for(user)

    response = client.get("/api/projects", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


@pytest.mark.usefixtures("https_only")
def test_health_probe_over_plain_http_is_not_redirected() -> None:
    response = Client().get("/healthz")

    assert response.status_code == 200


@pytest.mark.usefixtures("https_only")
def test_admin_session_and_csrf_cookies_are_secure_only() -> None:
    make_user(username="staffer", staff=True)
    client = Client()
    login_page = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    token = login_page.cookies["csrftoken"]

    response = client.post(
        "/admin/login/",
        {"username": "staffer", "password": "pw", "csrfmiddlewaretoken": token.value},
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_REFERER="https://testserver/admin/login/",
    )

    assert response.status_code == 302
    assert token["secure"] is True
    assert response.cookies["sessionid"]["secure"] is True
    assert response.cookies["sessionid"]["httponly"] is True


# --- throttling ---------------------------------------------------------------------------------


def test_upload_over_the_rate_is_429_with_retry_after_and_stores_nothing(
    settings: Any, user: Any
) -> None:
    settings.THROTTLE_UPLOAD_RATE = "3/min"
    api = _client_for(user)
    project = make_project(owner=user)

    statuses = [_upload(api, project).status_code for _ in range(3)]
    refused = _upload(api, project)

    assert statuses == [201, 201, 201]
    assert refused.status_code == 429
    assert refused.json()["error"].startswith("Request was throttled")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Photo.objects.count() == 3
    # Reading is not throttled, and the limit is the user's own.
    assert api.get("/api/photos").status_code == 200
    other = make_user()
    assert _upload(_client_for(other), make_project(owner=other)).status_code == 201


def test_enqueue_over_the_rate_is_429_with_retry_after(
    settings: Any, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.THROTTLE_ENQUEUE_RATE = "2/min"
    api = _client_for(user)
    photo = make_photo(project=make_project(owner=user))

    with django_capture_on_commit_callbacks(execute=True):
        statuses = [
            api.post("/api/photos/enqueue", {"photoId": str(photo.pk)}, format="json").status_code
            for _ in range(3)
        ]
    refused = api.post("/api/photos/enqueue", {"photoId": str(photo.pk)}, format="json")

    assert statuses == [202, 202, 429]
    assert refused.status_code == 429
    assert set(refused.json()) == {"error"}
    assert 1 <= int(refused["Retry-After"]) <= 60


def test_a_rate_of_off_disables_the_throttle(settings: Any, user: Any) -> None:
    settings.THROTTLE_ENQUEUE_RATE = "off"
    api = _client_for(user)

    statuses = {
        api.post("/api/photos/enqueue", {"photoId": "nope"}, format="json").status_code
        for _ in range(5)
    }

    assert statuses == {400}


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("120/min", (120, 60)),
        ("5/s", (5, 1)),
        ("1000/hour", (1000, 3600)),
        ("20000/day", (20000, 86400)),
        ("10/5m", (10, 300)),
        ("", None),
        ("off", None),
    ],
)
def test_rates_are_parsed(rate: str, parsed: tuple[int, int] | None) -> None:
    assert throttling.parse_rate(rate) == parsed


def test_counts_are_shared_by_every_process(settings: Any, user: Any) -> None:
    """Another process (its own Django, its own Redis connections) spends 3 of the token's 5
    uploads; this one gets the remaining 2."""
    settings.THROTTLE_UPLOAD_RATE = "5/min"
    api = _client_for(user)
    key = Token.objects.get(user=user).key
    code = textwrap.dedent(
        f"""
        import django
        from types import SimpleNamespace
        django.setup()
        from rest_framework.authtoken.models import Token
        from infra.throttling import UploadRateThrottle
        request = SimpleNamespace(
            method="POST",
            user=SimpleNamespace(pk={user.pk}, is_authenticated=True),
            auth=Token(key="{key}"),
        )
        print([UploadRateThrottle().allow_request(request, None) for _ in range(3)])
        """
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "moverz.settings",
        "DRAMATIQ_NAMESPACE": django_settings.DRAMATIQ_NAMESPACE,
        "THROTTLE_UPLOAD_RATE": "5/min",
    }
    other = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    project = make_project(owner=user)

    statuses = [_upload(api, project).status_code for _ in range(3)]

    assert other.stdout.strip() == "[True, True, True]"
    assert statuses == [201, 201, 429]


@pytest.fixture
def cache_down(settings: Any) -> None:
    """The throttling cache points at a closed port (the broker's Redis stays up)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    settings.THROTTLE_UPLOAD_RATE = "1/min"
    settings.THROTTLE_ENQUEUE_RATE = "1/min"


@pytest.mark.usefixtures("cache_down")
@pytest.mark.parametrize("failopen_s", [5.0, 0.0], ids=["skips-the-cache", "asks-every-time"])
def test_enqueue_and_upload_fail_open_when_the_cache_is_down(
    settings: Any,
    user: Any,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
    failopen_s: float,
) -> None:
    settings.THROTTLE_FAILOPEN_S = failopen_s
    api = _client_for(user)
    project = make_project(owner=user)
    caplog.set_level(logging.INFO, logger="infra.throttling")

    started = time.perf_counter()
    uploads = [_upload(api, project).status_code for _ in range(3)]
    photo_id = Photo.objects.filter(project=project).values_list("pk", flat=True).first()
    with django_capture_on_commit_callbacks(execute=True):
        enqueues = [
            api.post("/api/photos/enqueue", {"photoId": str(photo_id)}, format="json").status_code
            for _ in range(3)
        ]
    elapsed = time.perf_counter() - started

    assert uploads == [201, 201, 201]  # over "1/min": the limit is not enforced
    assert enqueues == [202, 202, 202]
    warnings = [r for r in caplog.records if r.name == "infra.throttling"]
    assert len(warnings) == 1  # logged once, not once per request
    assert "throttling is off" in warnings[0].getMessage()
    print(f"\n6 requests with the throttling cache down: {elapsed * 1000:.0f} ms")


@pytest.mark.usefixtures("cache_down")
def test_throttling_resumes_when_the_cache_answers_again(
    settings: Any, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.THROTTLE_FAILOPEN_S = 0.0
    api = _client_for(user)
    project = make_project(owner=user)
    caplog.set_level(logging.INFO, logger="infra.throttling")
    assert _upload(api, project).status_code == 201  # down: let through

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": django_settings.REDIS_URL,
            "KEY_PREFIX": f"{django_settings.DRAMATIQ_NAMESPACE}:cache",
        }
    }
    statuses = [_upload(api, project).status_code for _ in range(2)]

    assert statuses == [201, 429]
    messages = [r.getMessage() for r in caplog.records if r.name == "infra.throttling"]
    assert [m.split(":")[0] for m in messages] == [
        "throttling is off",
        "throttling is back on",
    ]


def test_throttling_counts_on_redis_6_2(settings: Any, user: Any, redis_6_2: str) -> None:
    # The counter once used EXPIRE … NX: Redis 6.2 refused it, so throttling was silently off
    # wherever the wheel's server ran (found in the fault suite's web log).
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_6_2,
            "OPTIONS": {"protocol": 2},
        }
    }
    settings.THROTTLE_UPLOAD_RATE = "2/min"
    settings.THROTTLE_FAILOPEN_S = 0.0
    api = _client_for(user)
    project = make_project(owner=user)

    assert [_upload(api, project).status_code for _ in range(3)] == [201, 201, 429]
    ttls = [
        redis.Redis.from_url(redis_6_2).ttl(key)
        for key in redis.Redis.from_url(redis_6_2).scan_iter(match="*throttle:upload:*")
    ]
    assert len(ttls) == 1 and 60 <= ttls[0] <= 65  # the window's lifetime, set once
