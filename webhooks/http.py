"""One webhook request: to the address that was checked, within a hard deadline.

The connection goes to the resolved address given (no second DNS lookup, so the address check
cannot be dodged by a name that rebinds), while the Host header, TLS SNI and the certificate
check use the URL's host name. Redirects are not followed (http.client never does), no proxy
from the environment is used, and a watchdog shuts the socket down when the deadline passes,
so a receiver that trickles its answer byte by byte cannot hold the worker thread longer.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from webhooks.addresses import Target

#: Bytes of the response body kept in the delivery log.
EXCERPT_BYTES = 500


@dataclass(frozen=True)
class HttpAnswer:
    status: int | None
    retry_after: str | None = None
    excerpt: str = ""
    #: Why there is no status (a timeout, a refused connection, a TLS failure).
    error: str = ""


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.pinned_address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.pinned_address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int, *, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.pinned_address = address
        self.pinned_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self.pinned_address, self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake after `sock` is set, so the watchdog can cut a stalled one too.
        tls = self.pinned_context.wrap_socket(
            raw, server_hostname=self.host, do_handshake_on_connect=False
        )
        self.sock = tls
        tls.do_handshake()


def http_post(
    *,
    target: Target,
    address: str,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
    context: ssl.SSLContext | None = None,
) -> HttpAnswer:
    """POST `body` to `target` at `address`; the answer, or an error, by `deadline`
    (time.monotonic())."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return HttpAnswer(None, error="timed out (name resolution)")
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(
            target.host,
            target.port,
            address=address,
            timeout=remaining,
            context=context or ssl.create_default_context(),
        )
    else:
        connection = _PinnedHTTPConnection(
            target.host, target.port, address=address, timeout=remaining
        )
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(remaining, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = response.read(EXCERPT_BYTES)
        return HttpAnswer(
            response.status,
            retry_after=response.getheader("Retry-After"),
            excerpt=excerpt.decode("utf-8", errors="replace"),
        )
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            return HttpAnswer(None, error="timed out")
        return HttpAnswer(None, error=_describe(exc))
    finally:
        watchdog.cancel()
        connection.close()


def _describe(exc: BaseException) -> str:
    """A short, safe description: the exception's class and message (no headers, no body)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate refused: {exc.verify_message}"[:300]
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
