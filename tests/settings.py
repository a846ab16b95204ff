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
for knob in ("AI_FAKE_LATENCY_MS", "AI_FAKE_FAIL_RATE", "AI_FAKE_FAIL_CODE", "PHOTO_MAX_ATTEMPTS"):
    os.environ.pop(knob, None)

from moverz.settings import *  # noqa: E402,F403
