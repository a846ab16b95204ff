"""A local S3: `moto_server` in server mode on loopback, and fixtures around it. Registered as
a pytest plugin by tests/conftest.py (fixtures `moto_endpoint`, `s3`, `bucket`, `s3_storage`,
`s3_worker_env`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.processes import stop_process

REGION = "us-east-1"
ACCESS_KEY = "test"
SECRET_KEY = "test"  # noqa: S105 - moto accepts any key


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto_answers(endpoint: str) -> bool:
    """True once a moto server answers its own API (not just anything on that port)."""
    try:
        with urllib.request.urlopen(endpoint + "/moto-api/data.json", timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:  # refused, or an HTTP error from something that is not moto
        return False


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`moto_server` on a free loopback port, for the test session; its URL."""
    executable = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    assert executable, "moto_server is not installed next to this Python"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    for _attempt in range(3):  # another process may take the free port before moto binds it
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [executable, "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while process.poll() is None and time.monotonic() < deadline:
            if _moto_answers(endpoint) and process.poll() is None:
                try:
                    yield endpoint
                finally:
                    stop_process(process, 5.0)
                return
            time.sleep(0.05)
        stop_process(process, 5.0)
    pytest.fail(f"moto_server did not start; log:\n{log_path.read_text(errors='replace')}")


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return s3_client(moto_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A new, empty bucket for this test."""
    name = f"moverz-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_storage(settings: Any, moto_endpoint: str, bucket: str) -> str:
    """This process stores photos in `bucket` (Django resets its storages on STORAGES change)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": moto_endpoint,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "region_name": REGION,
                "file_overwrite": False,
                "querystring_auth": False,
            },
        },
    }
    return bucket


@pytest.fixture
def media_root(settings: Any, tmp_path: Path) -> Path:
    """An empty MEDIA_ROOT of this test alone: nothing may land on the local disk."""
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def s3_worker_env(moto_endpoint: str, s3_storage: str) -> dict[str, str]:
    """The environment that makes a worker process store photos in the test's bucket."""
    return {
        "AWS_STORAGE_BUCKET_NAME": s3_storage,
        "AWS_S3_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_S3_REGION_NAME": REGION,
    }
