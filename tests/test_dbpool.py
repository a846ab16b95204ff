"""The pool's check (infra/dbpool.py): a connection PostgreSQL closed is caught before use, a
healthy idle one is handed out without a round trip."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from infra.dbpool import pool_check

SERVER = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/moverz")
# Any database of the server will do: the tests only run SELECT pg_backend_pid().
DSN = SERVER.rsplit("/", 1)[0] + "/postgres"


def _pid(connection: psycopg.Connection) -> int:
    row = connection.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_whose_backend_was_terminated_is_replaced() -> None:
    with ConnectionPool(
        DSN, min_size=1, max_size=1, check=pool_check, kwargs={"autocommit": True}
    ) as pool:
        with pool.connection() as connection:
            first = _pid(connection)
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", [first])  # waits for the exit
        with pool.connection() as connection:
            second = _pid(connection)

    assert second != first


def test_a_healthy_idle_connection_passes_without_a_round_trip() -> None:
    with psycopg.connect(DSN, autocommit=True) as connection:
        _pid(connection)
        with tempfile.TemporaryDirectory() as folder:
            trace = Path(folder) / "trace"
            with trace.open("w") as sink:
                connection.pgconn.trace(sink.fileno())
                pool_check(connection)
                connection.pgconn.untrace()
            assert trace.read_text() == ""  # nothing sent, nothing received


def test_a_connection_left_in_a_transaction_fails_the_check() -> None:
    with psycopg.connect(DSN) as connection:
        _pid(connection)  # opens a transaction (autocommit is off)
        with pytest.raises(psycopg.Error):
            pool_check(connection)


def test_a_closed_connection_fails_the_check() -> None:
    connection = psycopg.connect(DSN, autocommit=True)
    connection.close()
    with pytest.raises(psycopg.OperationalError):
        pool_check(connection)
