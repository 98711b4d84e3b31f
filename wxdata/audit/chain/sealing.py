"""Sealing: chain the committed, not yet sealed audit records into ``audit_seal``, in ``seq`` order.

A run takes ``pg_try_advisory_xact_lock(SEAL_LOCK)`` (a second sealer skips instead of waiting),
records its snapshot and the audit sequence's high-water mark (MACed) in ``audit_seal_run``, and
reads only records whose ``transaction_id`` is at least the previous run's snapshot ``xmin``.
:func:`head` gives the MACed newest ``(position, hash)`` to keep outside the database.
"""

from __future__ import annotations

import time

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from returns.result import Failure, Result, Success

from wxdata.audit.chain.canonical_form import row_encoder
from wxdata.audit.chain.columns import (
    LAST_SEAL_SQL,
    PIN_SQL,
    SEAL_BATCH,
    SEAL_LOCK,
    Conn,
    outside_scope,
    select_list,
)
from wxdata.audit.chain.macs import GENESIS, ChainHead, link_hash, require_key, run_mac
from wxdata.audit.chain.reports import SealReport
from wxdata.context import system_context
from wxdata.errors import DataError, one_row
from wxdata.errors import from_db_error as _db_error
from wxdata.tx.scope import RollbackScope, unit_of_work

_LOCK_SQL = sql.SQL("SELECT pg_try_advisory_xact_lock({})").format(sql.Literal(SEAL_LOCK))

# The snapshot recorded for a run is taken before the candidate query's own (newer) one:
# everything visible in it is visible to the query and so sealed by the run.
_SNAPSHOT_SQL = sql.SQL(
    "SELECT pg_current_snapshot()::text, "
    "COALESCE(pg_sequence_last_value(pg_get_serial_sequence('audit_log', 'seq')::regclass), 0),"
    " now()"
)
_LAST_RUN_SQL = sql.SQL(
    "SELECT pg_snapshot_xmin(snapshot)::text, seq_hwm FROM audit_seal_run "
    "ORDER BY run_id DESC LIMIT 1"
)
_CANDIDATES_SQL = sql.SQL(
    "SELECT a.id, a.seq, {select} FROM audit_log a "
    "WHERE a.transaction_id >= %(floor)s::xid8 "
    # OFFSET 0 keeps the anti-join a per-candidate index probe: a hash over every seal
    # would make each run proportional to the chain, not to what is new.
    "AND NOT EXISTS (SELECT 1 FROM audit_seal s WHERE s.audit_id = a.id OFFSET 0) "
    "ORDER BY a.seq"
)
_COPY_SQL = sql.SQL("COPY audit_seal (position, audit_id, audit_seq, prev_hash, hash) FROM STDIN")
_RUN_SQL = sql.SQL(
    "INSERT INTO audit_seal_run (snapshot, seq_hwm, first_position, last_position, sealed,"
    " started_at, mac) VALUES (%s::pg_snapshot, %s, %s, %s, %s, %s, %s) RETURNING run_id"
)

_SKIPPED = SealReport(0, None, None, 0, None, True, 0.0)
_NOTHING = SealReport(0, None, None, 0, None, False, 0.0)


def seal(conn: Conn, key: bytes, *, batch_size: int = SEAL_BATCH) -> Result[SealReport, DataError]:
    """Chain every committed, not yet sealed audit record into ``audit_seal``, in ``seq`` order.

    Skips (``skipped=True``) when another sealer holds the lock. Never blocks audit writers.
    """
    started = time.perf_counter()
    return (
        outside_scope(conn, "seal")
        .bind(lambda _: require_key(key))
        .bind(lambda k: _run(conn, k, batch_size))
        .map(lambda report: attrs.evolve(report, seconds=time.perf_counter() - started))
    )


def _run(conn: Conn, key: bytes, batch_size: int) -> Result[SealReport, DataError]:
    """One sealing transaction under the lock; rolled back untouched when the lock is busy."""
    report = _SKIPPED
    try:
        with unit_of_work(conn, system_context("audit-seal")):
            got = conn.execute(_LOCK_SQL).fetchone()
            if not (got and got[0]):
                raise RollbackScope
            report = _seal_locked(conn, key, batch_size)
    except psycopg.Error as exc:
        return Failure(_db_error(exc, "AuditSeal"))
    return Success(report)


def _seal_locked(conn: Conn, key: bytes, batch_size: int) -> SealReport:
    conn.execute(PIN_SQL)
    names, select = select_list(conn)
    encode = row_encoder(names)
    snapshot, seq_hwm, run_started = one_row(conn.execute(_SNAPSHOT_SQL).fetchone())
    last = conn.execute(LAST_SEAL_SQL).fetchone()
    position, prev = (int(last[0]), bytes(last[1])) if last else (0, GENESIS)
    run = conn.execute(_LAST_RUN_SQL).fetchone()
    floor, prev_hwm = (run[0], int(run[1])) if run else ("0", 0)
    first = position + 1
    late = 0
    writer = conn.cursor()
    with conn.cursor(name=f"wx_seal_{position}", row_factory=tuple_row) as cur:
        cur.itersize = batch_size
        cur.execute(_CANDIDATES_SQL.format(select=select), {"floor": floor})
        while batch := cur.fetchmany(batch_size):
            out = []
            for row in batch:
                position += 1
                hash_ = link_hash(key, prev, position, encode(row[2:]))
                if row[1] <= prev_hwm:
                    late += 1
                out.append((position, row[0], row[1], prev, hash_))
                prev = hash_
            with writer.copy(_COPY_SQL) as copy:
                for values in out:
                    copy.write_row(values)
    sealed = position - first + 1
    if sealed == 0:
        return _NOTHING
    run_row = one_row(conn.execute(
        _RUN_SQL,
        (snapshot, seq_hwm, first, position, sealed, run_started,
         run_mac(key, snapshot, int(seq_hwm), first, position, sealed)),
    ).fetchone())
    return SealReport(sealed, first, position, late, int(run_row[0]), False, 0.0)


def head(conn: Conn, key: bytes) -> Result[ChainHead, DataError]:
    """The chain's newest ``(position, hash)`` with a MAC: print it and keep it off the database."""
    return require_key(key).bind(lambda k: _head(conn, k))


def _head(conn: Conn, key: bytes) -> Result[ChainHead, DataError]:
    try:
        row = conn.execute(LAST_SEAL_SQL).fetchone()
    except psycopg.Error as exc:
        return Failure(_db_error(exc, "AuditSeal"))
    if row is None:
        return Success(ChainHead.make(key, 0, GENESIS))
    return Success(ChainHead.make(key, int(row[0]), bytes(row[1])))


__all__ = ["head", "seal"]
