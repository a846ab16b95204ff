"""Test settings: the test environment, then the one real settings module (nothing overridden)."""

from __future__ import annotations

import os
import tempfile
import uuid

_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ["DATABASE_URL"] = os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/moverz"
)
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Each test process owns a Redis namespace, so parallel runs never see each other's messages.
os.environ["DRAMATIQ_NAMESPACE"] = f"moverz-test-{_worker}-{uuid.uuid4().hex[:8]}"
os.environ["MEDIA_ROOT"] = tempfile.mkdtemp(prefix=f"moverz-media-{_worker}-")
os.environ["MOVERZ_VAR_DIR"] = tempfile.mkdtemp(prefix=f"moverz-var-{_worker}-")
os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 40)
os.environ["DEBUG"] = "0"
os.environ["ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"
os.environ["AI_PROVIDER"] = "fake"
os.environ["PHOTO_RETRY_BASE_MS"] = "50"
os.environ["PHOTO_RETRY_MAX_MS"] = "200"
os.environ["INVENTORY_SYNC_DELAY_MS"] = "100"
# Plain HTTP (http://testserver, the live server, the processes tests start): no HTTPS redirect,
# no secure-only cookies. tests/test_security_settings.py checks the production defaults.
os.environ["SECURE_SSL_REDIRECT"] = "0"
os.environ["SECURE_COOKIES"] = "0"
# Throttling counters live under this process's namespace (the cache key prefix follows it); the
# rates are out of the way of load tests, and tests of throttling set their own.
os.environ.pop("CACHE_KEY_PREFIX", None)
os.environ.setdefault("THROTTLE_UPLOAD_RATE", "100000/min")
os.environ.setdefault("THROTTLE_ENQUEUE_RATE", "100000/min")
# Workers started by tests export their Dramatiq metrics on a free loopback port, so concurrent
# workers (and test runs) never compete for the default 9191 (dramatiq reads these lowercase).
os.environ["dramatiq_prom_host"] = "127.0.0.1"  # noqa: SIM112
os.environ["dramatiq_prom_port"] = "0"  # noqa: SIM112
for knob in ("AI_FAKE_LATENCY_MS", "AI_FAKE_FAIL_RATE", "AI_FAKE_FAIL_CODE", "PHOTO_MAX_ATTEMPTS"):
    os.environ.pop(knob, None)

from moverz.settings import *  # noqa: E402,F403
