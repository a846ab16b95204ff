"""The connection pool's check before it hands out a connection (settings.DATABASES, "pool")."""

from __future__ import annotations

import select

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool


def pool_check(connection: psycopg.Connection) -> None:
    """Raise if `connection` is not fit for use, like psycopg_pool's `check_connection`, but
    without its round trip when nothing says it is needed.

    An idle connection that PostgreSQL closed (backend terminated, server restarted) has
    something to read: the server's FATAL message or the end of the stream. Only then, or when
    the connection is not idle, is the server asked (an empty query, psycopg_pool's check), and
    the pool replaces a connection that fails it. A healthy idle connection has nothing to read,
    so a healthy connection costs no round trip at each request or worker checkout.
    """
    if connection.closed:
        raise psycopg.OperationalError("the connection is closed")
    try:
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
    except (OSError, ValueError):
        readable = [True]
    if readable or connection.info.transaction_status != TransactionStatus.IDLE:
        ConnectionPool.check_connection(connection)
