"""Where a webhook may be sent: https URLs whose host resolves to a public address.

Checked twice: when an endpoint is registered (a clear 400) and before every attempt, after
DNS, on the very address the attempt then connects to (webhooks/http.py pins it), so a name that
rebinds to an internal address between the check and the connection cannot reach our network.
Two settings relax the rule for development and tests only: WEBHOOK_ALLOW_HTTP and
WEBHOOK_ALLOWED_NETWORKS (CIDRs exempt from the address check).
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Cloud metadata services, refused whatever else is said of their networks.
METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
# getaddrinfo has no timeout of its own: it runs on these threads, and the caller waits for at
# most its remaining time (a thread stuck on a dead resolver is not a worker thread).
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


class UnsafeUrl(ValueError):
    """The URL may not receive webhooks; the message says why, for the client."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    #: Path and query, as sent in the request line.
    path: str


def webhook_url_parse(url: str) -> Target:
    """The parts of an acceptable URL (https, or http when WEBHOOK_ALLOW_HTTP), or UnsafeUrl."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UnsafeUrl("The URL is not valid.") from None
    allowed = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeUrl("The URL must start with https://.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("The URL must not carry credentials (user:password@).")
    if any(ord(char) < 33 for char in url.strip()):
        raise UnsafeUrl("The URL must not contain spaces or control characters.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default_port = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default_port, path)


def address_refusal(address: IPAddress) -> str | None:
    """Why a webhook may not go to `address` (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if any(address in network for network in _allowed_networks()):
        return None
    if address in METADATA:
        return "a cloud metadata address"
    for kind, flag in (
        ("an unspecified", address.is_unspecified),
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
    ):
        if flag:
            return f"{kind} address"
    if not address.is_global:
        return "not a public address"
    return None


def webhook_resolve(target: Target, *, timeout_s: float) -> str:
    """The first address of `target.host` that a webhook may reach, or UnsafeUrl saying why not
    (the name does not resolve, or only to refused addresses)."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        candidates = [literal]
    else:
        future = _resolver.submit(
            socket.getaddrinfo, target.host, target.port, type=socket.SOCK_STREAM
        )
        try:
            infos = future.result(timeout=max(timeout_s, 0.01))
        except concurrent.futures.TimeoutError:
            raise UnsafeUrl(f"The host {target.host} did not resolve in time.") from None
        except (OSError, UnicodeError):
            raise UnsafeUrl(f"The host {target.host} does not resolve.") from None
        candidates = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    refusals = []
    for address in candidates:
        refusal = address_refusal(address)
        if refusal is None:
            return str(address)
        refusals.append(f"{address} is {refusal}")
    if literal is not None:
        raise UnsafeUrl(f"Webhooks may not be sent to {refusals[0]}.")
    raise UnsafeUrl(
        f"The host {target.host} resolves only to addresses webhooks may not reach: "
        + "; ".join(dict.fromkeys(refusals))
        + "."
    )


def webhook_url_validate(url: str) -> str:
    """The URL, stripped, if it is acceptable now (scheme, host, resolution); else UnsafeUrl."""
    webhook_resolve(webhook_url_parse(url), timeout_s=settings.WEBHOOK_TIMEOUT_S)
    return url.strip()


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in settings.WEBHOOK_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"WEBHOOK_ALLOWED_NETWORKS: {entry!r} is not an address or a CIDR network"
            ) from None
    return networks
