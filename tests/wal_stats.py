"""The server's WAL write count, read the same way by the read-commit tests and benchmark."""

from __future__ import annotations

from typing import Any

import psycopg


def wal_writes_sql(server_version: int) -> str:
    """The statement counting the server's WAL writes: ``pg_stat_wal.wal_write`` before
    PostgreSQL 18, which moved the count to ``pg_stat_io`` (object ``wal``)."""
    if server_version >= 180000:
        return "SELECT sum(writes) FROM pg_stat_io WHERE object = 'wal' AND context = 'normal'"
    return "SELECT wal_write FROM pg_stat_wal"


def wal_writes(work: psycopg.Connection[Any], admin: psycopg.Connection[Any]) -> int:
    """The server's WAL write count, read on ``admin`` once ``work``'s backend has published its
    own statistics (a backend publishes them when it goes idle; the forced flush makes it do so
    at the next idle moment, which the second statement provides)."""
    work.execute("SELECT pg_stat_force_next_flush()")
    work.execute("SELECT 1")
    row = admin.execute(wal_writes_sql(admin.info.server_version)).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("the server reported no WAL write count")
    return int(row[0])
