"""Real processes for end-to-end tests: `rundramatiq` workers, and a JSON client for the live
server. Registered as a pytest plugin by tests/conftest.py (fixtures `start_worker`, `client_api`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from tests.factories import make_token, make_user

REPO_ROOT = Path(__file__).resolve().parent.parent
POLL_TIMEOUT_S = 30.0


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL the process group if it hangs (children started with
    start_new_session lead their own group, so this reaches them and their children only)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


class Worker:
    """A `manage.py rundramatiq` process; everything it prints goes to `log_path`."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no worker log)"
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            pytest.fail(f"worker exited with {code}; log:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (threads finish their message), then SIGKILL the group if it hangs."""
        stop_process(self.process, timeout)


def test_database_url() -> str:
    """The URL of the database this test uses (the test database, not the configured one)."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{credentials}@{host}:{port}/{db['NAME']}"


@pytest.fixture
def start_worker(
    transactional_db: Any, live_server: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Worker]]:
    """Starts workers with extra environment variables; stops them before the database flush.

    Depending on `transactional_db` makes this fixture's teardown run before the flush, so no
    worker connection holds a lock the flush waits for (or outlives the test database).
    """
    workers: list[Worker] = []
    failures_before = request.session.testsfailed

    def start(threads: int = 4, **extra_env: str) -> Worker:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "moverz.settings",
            "DATABASE_URL": test_database_url(),
            "DRAMATIQ_NAMESPACE": settings.DRAMATIQ_NAMESPACE,
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        log_path = tmp_path / f"worker-{len(workers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "rundramatiq",
                    "--processes",
                    "1",
                    "--threads",
                    str(threads),
                ],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process, log_path)
        workers.append(worker)
        return worker

    yield start

    for worker in workers:
        worker.stop()
    if request.session.testsfailed > failures_before:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            for worker in workers:
                print(f"\n--- tail of {worker.log_path} ---\n{worker.log_tail()}\n---")


class Api:
    """A token-authenticated JSON client over urllib."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(
            self.base_url + path, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            payload = error.read()
            return error.code, json.loads(payload) if payload else None

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post_json(self, path: str, data: dict[str, Any]) -> tuple[int, Any]:
        return self.request("POST", path, json.dumps(data).encode(), "application/json")

    def post_multipart(
        self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
    ) -> tuple[int, Any]:
        boundary = f"----moverz-{uuid.uuid4().hex}"
        parts: list[bytes] = []
        for name, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        for name, (filename, content, mime) in files.items():
            parts.append(
                f"--{boundary}\r\nContent-Disposition: form-data; name="
                f'"{name}"; filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n'.encode()
                + content
                + b"\r\n"
            )
        parts.append(f"--{boundary}--\r\n".encode())
        return self.request(
            "POST", path, b"".join(parts), f"multipart/form-data; boundary={boundary}"
        )


@pytest.fixture
def client_api(live_server: Any) -> Api:
    user = make_user()
    return Api(live_server.url, make_token(user))


def poll[T](
    worker: Worker, what: str, probe: Callable[[], T | None], timeout: float = POLL_TIMEOUT_S
) -> T:
    """Call `probe` until it returns something; fail early if the worker dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check_alive()
        result = probe()
        if result is not None:
            return result
        time.sleep(0.05)
    pytest.fail(
        f"timed out after {timeout:.0f} s waiting for {what}; worker log:\n{worker.log_tail()}"
    )
