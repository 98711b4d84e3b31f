"""Monthly partitions of ``audit_log``: created ahead, dropped whole once past retention.

``audit_log`` is range-partitioned by ``created_at`` (``sql/0212_audit_log_partitioned.sql``):
``audit_log_pYYYYMM`` holds one UTC month, ``audit_log_default`` whatever no month holds.
:func:`ensure_partitions` creates the months ahead (``wxdata audit partitions --ahead N``; every
``wxdata migrate`` creates three).

:func:`drop_expired_partitions` is retention by the month: a month whose end is before both
retention cutoffs (so every record in it is past its own class's retention, and past the hard
floors) is dropped whole, after the same keyed checkpoint and per-position purge markers as the
row purge of :mod:`wxdata.audit.retention`, so :func:`wxdata.audit.chain.verify` tells the dropped
records from deleted ones. A month is kept, untouched, when it holds any record that is under
legal hold, kept for FERPA (``audit_record_held``: for a caller that cannot see every school every
disclosure record counts as kept), or not yet sealed. New holds wait until the drop commits
(``audit_legal_hold`` is locked in SHARE mode), and the month is locked exclusively before it is
counted, so nothing changes between the check and the drop. The default partition is never
dropped (its records are purged row by row by ``apply_retention``). Dropping needs the owner role.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from returns.result import Failure, Result, Success

from wxdata.audit.chain import SEAL_LOCK, purge_mac, purged_mac
from wxdata.audit.record import AuditAction, AuditRecord, ComplianceType, severity_of
from wxdata.audit.reports import AUDIT_ENTITY, disclose
from wxdata.audit.retention import (
    PURGE_BATCH,
    PurgeRequest,
    RetentionPolicy,
    _deny_holds,
    cutoffs,
    next_purge_id,
    one_row,
    purge_recorded,
    purge_request,
)
from wxdata.audit.sql import record_insert
from wxdata.context import ExecutionContext
from wxdata.errors import Conflict, DataError, InvalidQuery
from wxdata.errors import from_db_error as _db_error
from wxdata.tx.scope import unit_of_work

Conn = psycopg.Connection[Any]

#: Months created ahead when nothing else is asked.
DEFAULT_AHEAD = 3
MAX_AHEAD = 120
DEFAULT_PARTITION = "audit_log_default"
_BOUND = re.compile(r"^FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)$")
_LIST_SQL = (
    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
    "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_log'::regclass "
    "ORDER BY c.relname"
)
_UTC_SQL = "SELECT set_config('TimeZone', 'UTC', true)"
_MONTH_COUNT_SQL = (
    "SELECT count(*), count(*) FILTER (WHERE audit_record_held(a)), "
    "count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM audit_seal s WHERE s.audit_id = a.id)) "
    "FROM audit_log a WHERE a.created_at >= %(lo)s AND a.created_at < %(hi)s"
)
_MONTH_SEALS_SQL = (
    "SELECT s.position, s.hash FROM audit_log a JOIN audit_seal s ON s.audit_id = a.id "
    "WHERE a.created_at >= %(lo)s AND a.created_at < %(hi)s ORDER BY s.position"
)


@attrs.frozen(slots=True)
class Partition:
    """One partition of ``audit_log``: its name and ``[lower, upper)`` (None for the default)."""

    name: str
    lower: datetime | None
    upper: datetime | None


@attrs.frozen(slots=True)
class MonthVerdict:
    """What retention decided for one month past the cutoff, with its record counts."""

    name: str
    records: int
    held: int
    unsealed: int

    @property
    def droppable(self) -> bool:
        """Whether every record is sealed and none is held (legal hold or FERPA)."""
        return self.held == 0 and self.unsealed == 0


@attrs.frozen(slots=True)
class PartitionRetentionReport:
    """Months past retention: dropped (or droppable, in a dry run) and kept, with counts."""

    dry_run: bool
    cutoff: datetime
    dropped: tuple[MonthVerdict, ...]
    kept: tuple[MonthVerdict, ...]
    purge_id: int | None

    @property
    def purged(self) -> int:
        """Records in the dropped (dry run: droppable) months."""
        return sum(m.records for m in self.dropped)


def _parse(name: str, bound: str) -> Partition:
    if bound == "DEFAULT":
        return Partition(name, None, None)
    match = _BOUND.match(bound)
    if match is None:
        raise ValueError(f"unexpected partition bound of {name}")
    return Partition(name, datetime.fromisoformat(match.group(1)),
                     datetime.fromisoformat(match.group(2)))


def _partitions(conn: Conn) -> tuple[Partition, ...]:
    conn.execute(_UTC_SQL)  # bounds render in the session time zone: pin it for this transaction
    return tuple(_parse(name, bound) for name, bound in conn.execute(_LIST_SQL).fetchall())


def list_partitions(conn: Conn) -> Result[tuple[Partition, ...], DataError]:
    """Every partition of ``audit_log`` with its bounds, by name (months in order, then default)."""
    try:
        with conn.transaction():
            return Success(_partitions(conn))
    except (psycopg.Error, ValueError) as exc:
        if isinstance(exc, psycopg.Error):
            return Failure(_db_error(exc, AUDIT_ENTITY))
        return Failure(InvalidQuery(field="audit_log", rule="has a partition that is not a month"))


def ensure_partitions(conn: Conn, ctx: ExecutionContext, ahead: int = DEFAULT_AHEAD
                      ) -> Result[tuple[str, ...], DataError]:
    """Create the months of ``audit_log`` from this month to ``ahead`` months on; names created.

    Recorded (CREATE on ``AuditLog``) in the same transaction. Needs the owner role.
    """
    denied = _deny_holds(conn, ctx, "partitions")
    if denied is not None:
        return denied
    if isinstance(ahead, bool) or not isinstance(ahead, int) or not 0 <= ahead <= MAX_AHEAD:
        return Failure(InvalidQuery(field="ahead", rule=f"must be between 0 and {MAX_AHEAD}"))
    try:
        with unit_of_work(conn, ctx):
            created = tuple(r[0] for r in conn.execute(
                "SELECT * FROM audit_log_ensure_partitions(%s)", (ahead,)).fetchall())
            conn.execute(*record_insert(ctx, AuditRecord(
                action=AuditAction.CREATE, entity_type=AUDIT_ENTITY,
                compliance_type=ComplianceType.HIPAA,
                severity=severity_of(AuditAction.CREATE, None, ctx, True),
                metadata={"operation": "partitions", "ahead": ahead, "created": list(created)},
                tags=("audit-partitions",),
            )))
    except psycopg.Error as exc:
        return Failure(_db_error(exc, AUDIT_ENTITY))
    return Success(created)


def drop_expired_partitions(
    conn: Conn,
    ctx: ExecutionContext,
    retention: RetentionPolicy | None = None,
    *,
    dry_run: bool = True,
    key: bytes | None = None,
) -> Result[PartitionRetentionReport, DataError]:
    """Count (dry run) or drop the months of ``audit_log`` past retention holding nothing kept."""
    return purge_request(conn, ctx, retention, dry_run=dry_run, key=key, what="partitions",
                         operation="dropping partitions").bind(
        lambda request: _drop_months(conn, ctx, request))


def _drop_months(conn: Conn, ctx: ExecutionContext,
                 request: PurgeRequest) -> Result[PartitionRetentionReport, DataError]:
    bound, key = request.bound, request.key
    try:
        if key is None:
            return Success(disclose(conn, ctx, lambda: _judge(conn, bound, lock=False)[0],
                                    lambda r: _record(ctx, r, AuditAction.READ)))
        return purge_recorded(conn, ctx, lambda: _drop(conn, ctx, key, bound),
                              lambda r: _record(ctx, r, AuditAction.BULK_DELETE))
    except psycopg.Error as exc:
        return Failure(_db_error(exc, AUDIT_ENTITY))
    except ValueError:
        return Failure(InvalidQuery(field="audit_log", rule="has a partition that is not a month"))


_MONTH_CHANGED = Conflict(entity=AUDIT_ENTITY, reason="a month changed during the drop; run it again")


def _judge(conn: Conn, bound: dict[str, Any], *, lock: bool
           ) -> tuple[PartitionRetentionReport, dict[str, Partition]]:
    """Every month ending before both cutoffs, judged; locks them exclusively when ``lock``."""
    cutoff = min(cutoffs(conn, bound))
    months = {p.name: p for p in _partitions(conn)
              if p.upper is not None and p.lower is not None and p.upper <= cutoff}
    dropped: list[MonthVerdict] = []
    kept: list[MonthVerdict] = []
    for name, month in months.items():
        if lock:
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(name)))
        row = one_row(conn, _MONTH_COUNT_SQL, {"lo": month.lower, "hi": month.upper})
        verdict = MonthVerdict(name, int(row[0]), int(row[1]), int(row[2]))
        (dropped if verdict.droppable else kept).append(verdict)
    return PartitionRetentionReport(True, cutoff, tuple(dropped), tuple(kept), None), months


def _drop(conn: Conn, ctx: ExecutionContext, key: bytes, bound: dict[str, Any]
          ) -> Result[PartitionRetentionReport, DataError]:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SEAL_LOCK,))
    conn.execute("LOCK TABLE audit_legal_hold IN SHARE MODE")  # no hold placed until we commit
    judged, months = _judge(conn, bound, lock=True)
    purge_id = next_purge_id(conn)
    held = sum(m.held for m in judged.kept)
    conn.execute(
        "INSERT INTO audit_purge (purge_id, phi_cutoff, other_cutoff, purged, held, user_id, mac) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (purge_id, judged.cutoff, judged.cutoff, judged.purged, held, ctx.user_id,
         purge_mac(key, purge_id, judged.cutoff, judged.cutoff, judged.purged, held,
                   ctx.user_id)),
    )
    writer = conn.cursor()
    for verdict in judged.dropped:  # markers first: audit writers are not blocked meanwhile
        month = months[verdict.name]
        marked = 0
        with conn.cursor(name=f"wx_drop_{verdict.name}", row_factory=tuple_row) as cur:
            cur.itersize = PURGE_BATCH
            cur.execute(_MONTH_SEALS_SQL, {"lo": month.lower, "hi": month.upper})
            while batch := cur.fetchmany(PURGE_BATCH):
                with writer.copy("COPY audit_purged (position, purge_id, mac) FROM STDIN") as copy:
                    for position, seal_hash in batch:
                        copy.write_row((position, purge_id,
                                        purged_mac(key, position, purge_id, bytes(seal_hash))))
                marked += len(batch)
        if marked != verdict.records:
            return Failure(_MONTH_CHANGED)
    for verdict in judged.dropped:  # then the short part that locks audit_log until commit
        name = sql.Identifier(verdict.name)
        conn.execute(sql.SQL("ALTER TABLE audit_log DETACH PARTITION {}").format(name))
        conn.execute(sql.SQL("DROP TABLE {}").format(name))
    return Success(attrs.evolve(judged, dry_run=False, purge_id=purge_id))


def _record(ctx: ExecutionContext, report: PartitionRetentionReport, action: AuditAction
            ) -> AuditRecord:
    return AuditRecord(
        action=action, entity_type=AUDIT_ENTITY, is_phi=False,
        compliance_type=ComplianceType.HIPAA, severity=severity_of(action, None, ctx, True),
        metadata={"report": "partition-retention", "dry_run": report.dry_run,
                  "cutoff": report.cutoff.isoformat(), "purged": report.purged,
                  "purge_id": report.purge_id,
                  "dropped": [m.name for m in report.dropped],
                  "kept": [m.name for m in report.kept]},
        tags=("audit-retention",),
    )


__all__ = [
    "DEFAULT_AHEAD",
    "DEFAULT_PARTITION",
    "MonthVerdict",
    "Partition",
    "PartitionRetentionReport",
    "drop_expired_partitions",
    "ensure_partitions",
    "list_partitions",
]
