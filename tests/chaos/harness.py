"""The fault suite's machinery: real processes it can break, and SQL to see what came out.

A `Stack` is one scenario's world: a PostgreSQL database of its own (cloned from a template the
suite migrated once), a private `redis-server` without persistence (so a restart is empty), the
fake AI server as its own process, a gunicorn web server, and worker groups (plain `manage.py
rundramatiq`, which forks its relay), all started with the environment of `Stack.env()`. Faults
are injected from outside only: signals to processes, stopping Redis, `pg_terminate_backend`, the
fake server's faults. Nothing of ours is patched.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from PIL import Image

from infra.broker import PHOTO_QUEUE, heartbeats, held_message_ids
from tests.processes import Api

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PR_SET_PDEATHSIG = 1
NAMESPACE = "dramatiq"  # each Stack has its own Redis server: the default namespace is ours
USERNAME = "chaos"
RELAY = "operations.relay:relay_forever"  # as the worker's log names its fork

#: The knobs every process of a scenario runs with (documented in docs/reliability.md). The
#: heartbeat timeout and maintenance chance are deliberately left at their defaults.
KNOBS: dict[str, str] = {
    "AI_PROVIDERS": "anthropic",
    "ANTHROPIC_API_KEY": "sk-ant-chaos-dummy-key-0000",
    "AI_TIMEOUT_S": "2",
    "PHOTO_RETRY_BASE_MS": "200",
    "PHOTO_RETRY_MAX_MS": "2000",
    "PHOTO_RELAY_GRACE_SECONDS": "5",
    "RELAY_INTERVAL_S": "2",
}

# Variables of the pytest process (tests/settings.py sets several) that must not leak into the
# processes a scenario starts: they get exactly the environment `Stack.env()` builds.
_INHERITED_PREFIXES = (
    "AI_",
    "ANTHROPIC_",
    "OPENAI_",
    "AWS_",
    "CACHE_",
    "DATABASE_URL",
    "DB_",
    "DEBUG",
    "DJANGO_",
    "DRAMATIQ_",
    "INVENTORY_",
    "MEDIA_ROOT",
    "MOVERZ_",
    "PHOTO_",
    "PYTEST_",
    "REDIS_URL",
    "RELAY_",
    "WORKER_",
    "SECRET_KEY",
    "SECURE_",
    "THROTTLE_",
    "TRUST_X_FORWARDED_PROTO",
    "ALLOWED_HOSTS",
    "dramatiq_",
    "prometheus_",
    "PROMETHEUS_",
)

#: What a worker or web log must never show in scenario 8 (and is reported in every scenario).
CONNECTION_ERRORS = re.compile(
    r"OperationalError|too many clients|PoolTimeout|couldn't get a connection|"
    r"remaining connection slots|connection is closed|server closed the connection",
    re.IGNORECASE,
)


def _die_with_parent() -> None:
    """Children get SIGTERM if the test process dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until[T](
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def jpeg(seed: int, *, width: int = 320, height: int = 240) -> bytes:
    """A small distinct JPEG (the fake provider's answer depends on its bytes)."""
    image = Image.new("RGB", (width, height), ((seed * 37) % 256, (seed * 91) % 256, 120))
    for x in range(0, width, 8):
        image.putpixel((x, (x * 7 + seed) % height), ((seed * 13) % 256, 10, 200))
        image.putpixel(((x + seed) % width, (seed // 7) % height), (10, (seed * 3) % 256, 50))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class Proc:
    """A child process leading its own process group; its output goes to `log_path`."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self.started_at = time.time()
        self.terminated = False
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(args),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill9(self) -> None:
        """SIGKILL the whole group: the process and every child it forked (a crashed dyno)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP the whole group: it holds its connections but does nothing."""
        os.killpg(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)

    def terminate(self) -> None:
        """SIGTERM to the leader only: what a platform sends before stopping a dyno."""
        if self.alive() and not self.terminated:
            self.popen.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (unless already sent), then SIGKILL the group if it hangs."""
        if self.alive():
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # children left behind, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)


class RedisServer:
    """A private redis-server without persistence: stopping it loses everything it held."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: Proc | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = BIN / "redis-server"
        if not binary.exists():
            binary = Path(shutil.which("redis-server") or "redis-server")
        args = [
            str(binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--loglevel", "warning",
        ]  # fmt: skip
        self.proc = Proc("redis", args, dict(os.environ), self.workdir / "redis.log")
        wait_until(self._ping, timeout=15, what=f"redis-server on port {self.port}")

    def _ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def crash(self) -> None:
        """kill -9: what was in memory is gone."""
        assert self.proc is not None
        self.proc.kill9()

    def restart_empty(self) -> None:
        self.crash()
        self.start()
        self.restarts += 1

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=5)


class FakeAiProcess:
    """`python -m tests.fakeai` as its own process: the provider on the far side of the network."""

    def __init__(self, workdir: Path, options: Sequence[str]) -> None:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.fakeai", "--port", "0", *options],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=(workdir / "fakeai.log").open("ab"),
            text=True,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        assert self.popen.stdout is not None
        self.port = int(self.popen.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as response:
            stats: dict[str, int] = json.loads(response.read())
            return stats

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=5)


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return urlunsplit(parts._replace(query=query))


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}", query=""))


class Postgres:
    """The real PostgreSQL server of the test suite (TEST_DATABASE_URL), used as an admin."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(with_database(self.server_url, "postgres"), autocommit=True)

    def create(self, name: str, template: str | None = None) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')

    def drop(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def databases(self, like: str) -> list[str]:
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (like,)
            ).fetchall()
        return [row[0] for row in rows]

    def url(self, name: str, application_name: str | None = None) -> str:
        url = with_database(self.server_url, name)
        return with_query(url, application_name=application_name) if application_name else url


# An audit of every status or lease change of a photo, written by PostgreSQL itself (a trigger
# in the scenario's database, not in our code): how many times each photo was claimed, moved to
# DONE, and when.
TRANSITION_LOG_SQL = """
CREATE TABLE chaos_transition (
    id bigserial PRIMARY KEY,
    photo_id uuid NOT NULL,
    old_status text,
    new_status text,
    old_token uuid,
    new_token uuid,
    owner text,
    attempts integer,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION chaos_log_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_transition (photo_id, old_status, new_status, old_token, new_token, owner,
                                  attempts)
    VALUES (NEW.id, OLD.status, NEW.status, OLD.lease_token, NEW.lease_token, NEW.lease_owner,
            NEW.attempts);
    RETURN NEW;
END $$;
CREATE TRIGGER chaos_transition AFTER UPDATE ON photos_photo FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.lease_token IS DISTINCT FROM NEW.lease_token)
    EXECUTE FUNCTION chaos_log_transition();
"""

CREATE_USER = f"""
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
user = get_user_model().objects.create_user(username={USERNAME!r}, password="chaos-not-used")
print(Token.objects.create(user=user).key)
"""


def base_env(**extra: str) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(_INHERITED_PREFIXES)
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "moverz.settings",
            "DEBUG": "0",
            "SECRET_KEY": "chaos-secret-key-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # Plain HTTP on loopback: no redirect to HTTPS, no secure-only cookies.
            "SECURE_SSL_REDIRECT": "0",
            "SECURE_COOKIES": "0",
            # Throttling stays on (its Redis-backed counters, failing open while Redis is down,
            # are part of scenario 4) at a rate the uploads of a scenario never reach.
            "THROTTLE_UPLOAD_RATE": "100000/min",
            "THROTTLE_ENQUEUE_RATE": "100000/min",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",  # our warnings and errors; not one line per HTTP call
        }
    )
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@dataclass
class Template:
    """A migrated database with the chaos user, its token and the transition log."""

    postgres: Postgres
    name: str
    token: str

    @classmethod
    def build(cls, postgres: Postgres, name: str, workdir: Path) -> Template:
        postgres.create(name)
        env = base_env(
            DATABASE_URL=postgres.url(name),
            MOVERZ_VAR_DIR=str(workdir / "var"),
            MEDIA_ROOT=str(workdir / "media"),
            REDIS_URL="redis://127.0.0.1:1/0",  # never used by these commands
        )
        manage("migrate", "--no-input", env=env)
        token = manage("shell", "-c", CREATE_USER, env=env).strip().splitlines()[-1]
        with psycopg.connect(postgres.url(name), autocommit=True) as conn:
            conn.execute(TRANSITION_LOG_SQL)
        return cls(postgres, name, token)


class Workers:
    """One `rundramatiq` invocation (a dyno): its processes, threads, and the relay fork."""

    def __init__(self, proc: Proc, processes: int, threads: int) -> None:
        self.proc = proc
        self.processes = processes
        self.threads = threads
        self.broker_ids: set[str] = set()

    @property
    def name(self) -> str:
        return self.proc.name

    def relay_ready(self) -> bool:
        return f"Fork process {RELAY!r} is ready for action" in self.proc.log()


@dataclass
class Sample:
    at: float
    connections: int


class ConnectionSampler:
    """Samples, on a thread, how many connections the workers hold on the scenario database."""

    def __init__(self, conninfo: str, database: str, interval: float = 0.1) -> None:
        self.conninfo = conninfo
        self.database = database
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-sampler", daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                    " AND application_name = 'moverz-worker'",
                    (self.database,),
                ).fetchone()
                self.samples.append(Sample(time.time(), int(row[0]) if row else 0))
                self._stop.wait(self.interval)

    @property
    def peak(self) -> int:
        return max((sample.connections for sample in self.samples), default=0)


@dataclass
class Stack:
    """One scenario's processes and database. Use as a context manager; see the module doc."""

    number: int
    template: Template
    workdir: Path
    fake_options: Sequence[str] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    database: str = ""
    redis: RedisServer | None = None
    fake: FakeAiProcess | None = None
    web: Proc | None = None
    worker_groups: list[Workers] = field(default_factory=list)
    api: Api | None = None
    _sql: psycopg.Connection[Any] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        postgres = self.template.postgres
        self.database = f"{self.template.name.removesuffix('_tmpl')}_s{self.number}"
        postgres.create(self.database, template=self.template.name)
        (self.workdir / "media").mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.workdir)
        self.redis.start()
        self.fake = FakeAiProcess(self.workdir, self.fake_options)
        return self

    def __exit__(self, *exc_info: object) -> None:
        procs = [group.proc for group in self.worker_groups]
        if self.web is not None:
            procs.append(self.web)
        for proc in procs:  # all at once: each takes a few seconds to shut down
            with contextlib.suppress(ProcessLookupError):
                proc.thaw()  # a scenario that failed may have left it frozen
            proc.terminate()
        for proc in procs:
            proc.stop(timeout=20)
        if self.fake is not None:
            self.fake.stop()
        if self.redis is not None:
            self.redis.stop()
        if self._sql is not None:
            self._sql.close()
        if self.database:
            self.template.postgres.drop(self.database)

    def env(self, application_name: str, **extra: str) -> dict[str, str]:
        assert self.redis is not None and self.fake is not None
        return base_env(
            DATABASE_URL=self.template.postgres.url(self.database, application_name),
            REDIS_URL=self.redis.url,
            MEDIA_ROOT=str(self.workdir / "media"),
            MOVERZ_VAR_DIR=str(self.workdir / "var"),
            ANTHROPIC_BASE_URL=self.fake.url,
            **{**KNOBS, **self.extra_env, **extra},
        )

    def start_web(self) -> Api:
        port = free_port()
        args = [
            str(BIN / "gunicorn"),
            "moverz.wsgi",
            "--bind", f"127.0.0.1:{port}",
            "--workers", "1",  # one Django boot per scenario: the machine has 2 cores
            "--threads", "8",
            "--timeout", "60",
            "--graceful-timeout", "5",
            "--no-control-socket",  # its default path is shared by every gunicorn on the machine
        ]  # fmt: skip
        self.web = Proc("web", args, self.env("moverz-web"), self.workdir / "web.log")
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _http_ok(f"{base}/healthz"), timeout=30, what="the web server")
        self.api = Api(base, self.template.token)
        return self.api

    def start_workers(
        self, *, processes: int = 1, threads: int = 4, wait: bool = True, **extra: str
    ) -> Workers:
        index = len(self.worker_groups)
        prom = self.workdir / f"prom-{index}"
        prom.mkdir(exist_ok=True)
        args = [
            sys.executable, "manage.py", "rundramatiq",
            "--processes", str(processes),
            "--threads", str(threads),
        ]  # fmt: skip
        env = self.env(
            "moverz-worker",
            dramatiq_prom_host="127.0.0.1",
            dramatiq_prom_port="0",
            dramatiq_prom_db=str(prom),
            **extra,
        )
        before = self.heartbeat_ids()
        proc = Proc(f"worker-{index}", args, env, self.workdir / f"worker-{index}.log")
        group = Workers(proc, processes, threads)
        self.worker_groups.append(group)
        if wait:
            wait_until(group.relay_ready, timeout=60, what=f"{group.name}'s relay")
            # Each worker process announces itself with a heartbeat on its first fetch, and so
            # does the relay (its sweep of dead workers' messages goes through the broker).
            group.broker_ids = wait_until(
                lambda: new if len(new := self.heartbeat_ids() - before) > processes else None,
                timeout=60,
                what=f"{group.name}'s heartbeats",
            )
        return group

    # -- HTTP --------------------------------------------------------------------------------

    def project(self, name: str = "Chaos move") -> str:
        assert self.api is not None
        status, body = self.api.post_json("/api/projects", {"name": name})
        assert status == 201, body
        return str(body["id"])

    def upload(
        self,
        project_id: str,
        images: Sequence[bytes],
        *,
        enqueue: bool = True,
        concurrency: int = 8,
    ) -> list[str]:
        """Upload the images (in parallel); every one must be accepted (201). Returns ids."""
        api = self.api
        assert api is not None

        def one(data: bytes) -> str:
            fields = {"projectId": project_id, "enqueue": "true" if enqueue else "false"}
            status, body = api.post_multipart(
                "/api/photos", fields, {"image": ("room.jpg", data, "image/jpeg")}
            )
            assert status == 201, (status, body)
            return str(body["photo"]["id"])

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(one, images))

    # -- observing ---------------------------------------------------------------------------

    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        if self._sql is None or self._sql.closed:
            self._sql = psycopg.connect(
                self.template.postgres.url(self.database, "chaos-observer"), autocommit=True
            )
        return self._sql.execute(query, params).fetchall()

    def admin_conninfo(self) -> str:
        return self.template.postgres.url(self.database, "chaos-observer")

    def statuses(self) -> dict[str, int]:
        rows = self.sql("SELECT status, count(*) FROM photos_photo GROUP BY status")
        return dict(rows)

    def settled(self) -> bool:
        counts = self.statuses()
        return counts.get("PENDING", 0) == 0 and counts.get("PROCESSING", 0) == 0

    def wait_settled(self, timeout: float) -> float:
        """Wait until no photo is PENDING or PROCESSING; returns when that happened (time.time),
        or when the time ran out (the invariants then report what is stuck)."""
        with contextlib.suppress(TimeoutError):
            wait_until(self.settled, timeout=timeout, what="every photo settled", interval=0.2)
        return time.time()

    def wait_done_count(self, count: int, timeout: float) -> None:
        wait_until(
            lambda: self.statuses().get("DONE", 0) >= count,
            timeout=timeout,
            what=f"{count} photos DONE",
            interval=0.05,
        )

    def heartbeat_ids(self) -> set[str]:
        assert self.redis is not None
        try:
            beats = heartbeats(self.redis.client(), 10_000, namespace=NAMESPACE)
        except redis.RedisError:
            return set()
        return {broker_id for broker_id, _ in beats}

    def photos_held_by(self, broker_ids: Iterable[str]) -> set[str]:
        """Photo ids named by the messages these workers had fetched and not acked (running,
        prefetched, or delayed in their memory): what a dead worker takes down with it."""
        assert self.redis is not None
        client = self.redis.client()
        held: set[str] = set()
        for broker_id in broker_ids:
            held |= held_message_ids(
                client, broker_id=broker_id, queue=PHOTO_QUEUE, namespace=NAMESPACE
            )
        return held

    def logs(self) -> str:
        parts = [group.proc.log() for group in self.worker_groups]
        if self.web is not None:
            parts.append(self.web.log())
        return "\n".join(parts)

    def connection_errors(self) -> list[str]:
        return [line for line in self.logs().splitlines() if CONNECTION_ERRORS.search(line)]


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def new_run_id() -> str:
    return f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
