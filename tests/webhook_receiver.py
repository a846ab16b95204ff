"""The webhook receiver of the tests, the fault suite and the bench: a real HTTP server on
127.0.0.1 (threaded, in the calling process) that records every request, verifies its Standard
Webhooks signature when it knows the secret, and answers from a script (status, headers, delay),
the last answer repeating, or from a `decide` function of the request and those before it."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_s: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: time.monotonic() when the request's body was read.
    at: float
    #: time.time() at the same moment (to compare with timestamps the database holds).
    wall: float = 0.0
    #: The signature checked with the receiver's secret; None when it has none.
    verified: bool | None = None
    #: The status it was answered.
    status: int = 0

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def payload(self) -> Any:
        return json.loads(self.body or b"{}")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


#: How a receiver answers a request, given the ones before it (oldest first).
Decide = Callable[[Received, list[Received]], Reply]


class Receiver:
    def __init__(
        self,
        *,
        secret: str = "",
        decide: Decide | None = None,
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """`tls`: serve HTTPS with this server context; `host`: the name its URL uses (a name
        the certificate is for: the server still listens on 127.0.0.1)."""
        #: The endpoint's signing secret (`whsec_…`), once known: each request is verified.
        self.secret = secret
        self.scheme = "https" if tls is not None else "http"
        self.host = host
        self.requests: list[Received] = []
        self.script: list[Reply] = [Reply()]
        self.decide = decide
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                request = Received(
                    self.path, dict(self.headers.items()), body, time.monotonic(), time.time()
                )
                if receiver.secret:
                    request.verified = receiver._verify(request)
                with receiver._lock:
                    reply = receiver._reply(request)
                    request.status = reply.status
                    receiver.requests.append(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            # The handshake runs in the request's thread, on its first read.
            self.server.socket = tls.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.server.daemon_threads = True
        # A client that refuses the certificate ends the handshake: no traceback for that.
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _verify(self, request: Received) -> bool:
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            Webhook(self.secret).verify(request.body, headers)
        except WebhookVerificationError:
            return False
        return True

    def _reply(self, request: Received) -> Reply:
        if self.decide is not None:
            return self.decide(request, self.requests)
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.server.server_port}/hook"

    def answer(self, *replies: Reply) -> None:
        with self._lock:
            self.script = list(replies)

    def snapshot(self) -> list[Received]:
        """The requests so far (a copy: the server goes on appending)."""
        with self._lock:
            return list(self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests = []

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def local_webhooks(settings: Any) -> None:
    """Webhooks may go to plain http on loopback: the receivers tests start."""
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
