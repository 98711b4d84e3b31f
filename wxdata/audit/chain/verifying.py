"""Verification: walk the chain in position order and name the first broken point, and why.

One ``REPEATABLE READ`` read-only transaction checks, in order: the retention purge checkpoints;
every seal (its link, its record's content, or the keyed marker excusing a purged record); the kept
head, when one is given; that the seal runs tile the chain and the last two are authentic; and that
every unsealed record is a late commit (pending) rather than one slipped in among sealed ones.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from returns.result import Failure, Result, Success

from wxdata.audit.chain.canonical_form import row_encoder
from wxdata.audit.chain.columns import PIN_SQL, VERIFY_BATCH, Conn, outside_scope, select_list
from wxdata.audit.chain.macs import (
    GENESIS,
    ChainHead,
    link_hash,
    purge_mac,
    purged_mac,
    require_key,
    run_mac,
)
from wxdata.audit.chain.reports import Break, BreakReason, VerifyReport
from wxdata.context import system_context
from wxdata.errors import DataError, InvalidQuery, one_row
from wxdata.errors import from_db_error as _db_error
from wxdata.tx.scope import Isolation, unit_of_work

_PURGES_SQL = sql.SQL(
    "SELECT purge_id, phi_cutoff, other_cutoff, purged, held, user_id, mac FROM audit_purge "
    "ORDER BY purge_id"
)
_SEALS_SQL = sql.SQL(
    "SELECT s.position, s.audit_id IS NULL, s.audit_seq, s.prev_hash, s.hash, p.purge_id, "
    "p.mac, a.seq, {select} FROM audit_seal s "
    "LEFT JOIN audit_log a ON a.id = s.audit_id "
    "LEFT JOIN audit_purged p ON p.position = s.position ORDER BY s.position"
)
_RUN_GAP_SQL = sql.SQL(
    "SELECT run_id FROM (SELECT run_id, first_position, "
    "lag(last_position) OVER (ORDER BY run_id) AS prev_last FROM audit_seal_run) r "
    "WHERE first_position <> COALESCE(prev_last, 0) + 1 ORDER BY run_id LIMIT 1"
)
_LAST_RUNS_SQL = sql.SQL(
    "SELECT run_id, snapshot::text, seq_hwm, first_position, last_position, sealed, mac "
    "FROM audit_seal_run ORDER BY run_id DESC LIMIT 2"
)
_UNSEALED_SQL = sql.SQL(
    "SELECT min(seq) FILTER (WHERE forged), count(*) FILTER (WHERE NOT forged) FROM ("
    " SELECT a.seq, COALESCE(pg_visible_in_snapshot(a.transaction_id, %(s)s::pg_snapshot)"
    "  OR (a.transaction_id >= pg_snapshot_xmax(%(s)s::pg_snapshot) AND a.seq <= %(h)s),"
    "  false) AS forged"
    " FROM audit_log a WHERE NOT EXISTS (SELECT 1 FROM audit_seal s WHERE s.audit_id = a.id)"
    ") u"
)


@attrs.define(slots=True)
class _Walk:
    """Mutable state of one verification walk (local to a call)."""

    seals: int = 0
    verified: int = 0
    purged: int = 0
    last_position: int = 0
    last_hash: bytes = GENESIS


def verify(
    conn: Conn, key: bytes, head: ChainHead | str | None = None, *, batch_size: int = VERIFY_BATCH
) -> Result[VerifyReport, DataError]:
    """Walk the chain in position order; report OK or the first broken record and why.

    With ``head`` (a string from :func:`~wxdata.audit.chain.head`, kept outside the database)
    also check that the chain still contains that head and extends it.
    """
    return (
        outside_scope(conn, "verify")
        .bind(lambda _: require_key(key))
        .bind(lambda k: _kept_head(k, head).bind(lambda wanted: _verify(conn, k, wanted,
                                                                         batch_size)))
    )


def _kept_head(key: bytes, head: ChainHead | str | None) -> Result[ChainHead | None, DataError]:
    """The kept head, parsed and authenticated with ``key`` (``None`` when none was given)."""
    if head is None:
        return Success(None)
    parsed = ChainHead.parse(head) if isinstance(head, str) else Success(head)
    return parsed.bind(
        lambda wanted: Success(wanted) if wanted.authentic(key)
        else Failure(InvalidQuery(field="head", rule="is not authentic for this key")))


def _verify(conn: Conn, key: bytes, wanted: ChainHead | None,
            batch_size: int) -> Result[VerifyReport, DataError]:
    started = time.perf_counter()
    walk = _Walk()
    pending = 0
    try:
        with unit_of_work(conn, system_context("audit-verify"), isolation=Isolation.REPEATABLE_READ,
                          read_only=True):
            conn.execute(PIN_SQL)
            broken = _walk(conn, key, wanted, walk, batch_size)
            if broken is None and wanted is not None and walk.last_position < wanted.position:
                broken = Break(BreakReason.TRUNCATED, walk.last_position + 1, None,
                               f"the chain ends at position {walk.last_position} but the kept "
                               f"head is at position {wanted.position}")
            runs: list[tuple[Any, ...]] = []
            if broken is None:
                broken, runs = _check_runs(conn, key, walk)
            if broken is None:
                broken, pending = _check_unsealed(conn, runs)
    except psycopg.Error as exc:
        return Failure(_db_error(exc, "AuditSeal"))
    return Success(VerifyReport(walk.seals, walk.verified, walk.purged, pending,
                                walk.last_position, walk.last_hash, broken,
                                time.perf_counter() - started))


def _purges(conn: Conn, key: bytes) -> tuple[dict[int, bool], Break | None]:
    """Every purge checkpoint and whether its MAC holds."""
    ok: dict[int, bool] = {}
    for purge_id, phi_cut, other_cut, purged, held, user_id, tag in conn.execute(_PURGES_SQL):
        good = hmac.compare_digest(
            bytes(tag), purge_mac(key, purge_id, phi_cut, other_cut, purged, held, user_id))
        ok[int(purge_id)] = good
        if not good:
            return ok, Break(BreakReason.FORGED, None, None,
                             f"retention purge checkpoint {purge_id} is not authentic")
    return ok, None


def _walk(conn: Conn, key: bytes, wanted: ChainHead | None, walk: _Walk,
          batch_size: int) -> Break | None:
    purges, broken = _purges(conn, key)
    if broken is not None:
        return broken
    names, select = select_list(conn)
    encode = row_encoder(names)
    expected = 1
    prev = GENESIS
    compare = hmac.compare_digest
    with conn.cursor(name="wx_verify", row_factory=tuple_row) as cur:
        cur.itersize = batch_size
        cur.execute(_SEALS_SQL.format(select=select))
        while batch := cur.fetchmany(batch_size):
            for row in batch:
                position, _unlinked, seal_seq, prev_hash, stored, purge_id, marker, rec_seq = row[:8]
                if position != expected:
                    return Break(BreakReason.DELETED, expected, None,
                                 f"seal positions {expected}..{position - 1} are missing")
                if not compare(prev_hash, prev):
                    return Break(BreakReason.REORDERED, position, seal_seq,
                                 "the seal does not link to its predecessor (seals removed, "
                                 "inserted or reordered)")
                if rec_seq is None:
                    # A missing record is excused only by an authentic purge checkpoint and a
                    # keyed marker for this very seal; whether the seal still names the record
                    # (a row purge) or not (seals written before the link lost its foreign key,
                    # whose purge set it to NULL) or its month was dropped makes no difference.
                    excused = (
                        purge_id is not None and purges.get(purge_id, False)
                        and compare(marker, purged_mac(key, position, purge_id, stored))
                    )
                    if not excused:
                        return Break(BreakReason.DELETED, position, seal_seq,
                                     "the sealed record is missing and no purge checkpoint covers it")
                    walk.purged += 1
                else:
                    if rec_seq != seal_seq:
                        return Break(BreakReason.REORDERED, position, seal_seq,
                                     f"the seal now points at the record with seq {rec_seq}")
                    computed = link_hash(key, prev, position, encode(row[8:]))
                    if not compare(computed, stored):
                        return Break(BreakReason.EDITED, position, seal_seq,
                                     "the record's content no longer matches its seal")
                    walk.verified += 1
                if wanted is not None and position == wanted.position and not compare(
                        stored, wanted.hash):
                    return Break(BreakReason.HEAD_MISMATCH, position, seal_seq,
                                 "the kept head's position now holds a different hash")
                prev = bytes(stored)
                walk.seals += 1
                walk.last_position = position
                walk.last_hash = prev
                expected += 1
    return None


def _check_runs(conn: Conn, key: bytes, walk: _Walk) -> tuple[Break | None, list[tuple[Any, ...]]]:
    """Seal runs must tile the chain contiguously; the last two (used below) must be authentic."""
    gap = conn.execute(_RUN_GAP_SQL).fetchone()
    if gap is not None:
        return Break(BreakReason.FORGED, None, None,
                     f"seal run {gap[0]} does not continue the previous run"), []
    runs = conn.execute(_LAST_RUNS_SQL).fetchall()
    last_run = int(runs[0][4]) if runs else 0
    if last_run != walk.last_position:
        return Break(BreakReason.FORGED, walk.last_position if walk.seals else None, None,
                     f"the seal runs end at position {last_run}, the seals at "
                     f"{walk.last_position}"), []
    for run_id, snapshot, hwm, first, last, sealed, tag in runs:
        if not hmac.compare_digest(bytes(tag), run_mac(key, snapshot, hwm, first, last, sealed)):
            return Break(BreakReason.FORGED, None, None,
                         f"seal run {run_id} is not authentic"), []
    return None, runs


def _check_unsealed(conn: Conn, runs: list[tuple[Any, ...]]) -> tuple[Break | None, int]:
    """Unsealed records: pending (committed after the last run could see them) or forged.

    Forged: its transaction had finished before the last run's snapshot (that run would have
    sealed it), or it started after that snapshot yet carries a ``seq`` allocated before the
    previous run (only an explicit ``OVERRIDING SYSTEM VALUE`` insert does that).
    """
    snapshot = runs[0][1] if runs else None
    prev_hwm = runs[1][2] if len(runs) > 1 else None
    forged_seq, pending = one_row(
        conn.execute(_UNSEALED_SQL, {"s": snapshot, "h": prev_hwm}).fetchone())
    if forged_seq is not None:
        return Break(BreakReason.FORGED, None, int(forged_seq),
                     "an unsealed record sits among sealed ones (it should have been sealed "
                     "already, or its seq predates the previous seal run)"), int(pending)
    return None, int(pending)


__all__ = ["verify"]
