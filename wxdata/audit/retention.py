"""Retention of the audit trail: a policy with a hard floor, legal holds, and a guarded purge.

Policy: records about PHI or education records (``is_phi`` or compliance HIPAA/FERPA) are kept at
least 6 years (45 CFR 164.316(b)(2)(i)); other records at least 1 year. Both are configurable
upward only; the same floors are enforced again by a trigger in the database, whatever the caller.

Legal hold: a record is held when its own ``legal_hold`` flag is set, or an active hold in the
append-only ``audit_legal_hold`` table names its student, its entity (or entity type) or its user.
FERPA (34 CFR 99.32): a disclosure record is also held while any student it names still exists
(``audit_record_ferpa_kept``; a caller that cannot see every school cannot prove a student gone,
so for it such records always count as held). Held records are never eligible.

:func:`apply_retention` counts with ``COUNT`` (it never loads records). With ``dry_run=False`` it
purges, in one transaction under the sealer's lock: it writes a keyed checkpoint to
``audit_purge`` and a keyed marker per purged chain position to ``audit_purged`` (so
:func:`wxdata.audit.chain.verify` can tell a purge from a deletion), sets
``wxdata.retention_purge`` for that transaction only, deletes, and records a BULK_DELETE audit
record. Only sealed records are purged (seal first). Deleting needs the owner role: the
application role has no DELETE on ``audit_log``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from returns.result import Failure, Result, Success

from wxdata.audit.chain import SEAL_LOCK, AuditKeyMissing, purge_mac, purged_mac
from wxdata.audit.lanes import write_detached
from wxdata.audit.record import AuditAction, AuditRecord, ComplianceType, severity_of
from wxdata.audit.reports import AUDIT_ENTITY, deny, disclose
from wxdata.audit.sql import record_insert
from wxdata.context import ExecutionContext, Role
from wxdata.errors import (
    Conflict,
    DataError,
    FieldError,
    Forbidden,
    InvalidQuery,
    NotFound,
    ValidationFailed,
)
from wxdata.errors import from_db_error as _db_error
from wxdata.errors import one_row as _the_row
from wxdata.tx.scope import RollbackScope, current_scope, unit_of_work

Conn = psycopg.Connection[Any]
R = TypeVar("R")

#: HIPAA's six years: the floor for PHI / education-record audit records (cannot be lowered).
PHI_FLOOR_YEARS = 6
#: The floor for every other audit record.
OTHER_FLOOR_YEARS = 1
MAX_YEARS = 100
HOLD_ENTITY = "AuditLegalHold"
#: Roles that may place or release legal holds and purge.
HOLD_ROLES = frozenset({Role.ADMIN, Role.DISTRICT_ADMIN, Role.SYSTEM})
PURGE_BATCH = 5000


def _phi_years(_: Any, attribute: attrs.Attribute[int], value: int) -> None:
    _years(attribute.name, value, PHI_FLOOR_YEARS)


def _other_years(_: Any, attribute: attrs.Attribute[int], value: int) -> None:
    _years(attribute.name, value, OTHER_FLOOR_YEARS)


def _years(name: str, value: int, floor: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not floor <= value <= MAX_YEARS:
        raise ValueError(f"{name} must be an integer between {floor} and {MAX_YEARS}")


@attrs.frozen(slots=True)
class RetentionPolicy:
    """How long audit records are kept: ``phi_years`` >= 6, ``other_years`` >= 1."""

    phi_years: int = attrs.field(default=PHI_FLOOR_YEARS, validator=_phi_years)
    other_years: int = attrs.field(default=6, validator=_other_years)


def policy(phi_years: int = PHI_FLOOR_YEARS, other_years: int = 6
           ) -> Result[RetentionPolicy, DataError]:
    """A policy from configuration; a value under its floor is a ValidationFailed."""
    errors = []
    for name, value, floor in (("phi_years", phi_years, PHI_FLOOR_YEARS),
                               ("other_years", other_years, OTHER_FLOOR_YEARS)):
        try:
            _years(name, value, floor)
        except ValueError:
            errors.append(FieldError(name, f"must be an integer between {floor} and {MAX_YEARS}"))
    if errors:
        return Failure(ValidationFailed("RetentionPolicy", tuple(errors)))
    return Success(RetentionPolicy(phi_years, other_years))


@attrs.frozen(slots=True)
class RetentionReport:
    """Counts of records past their retention, and what a purge removed."""

    dry_run: bool
    phi_cutoff: datetime
    other_cutoff: datetime
    eligible: int
    held: int
    unsealed: int
    purged: int
    purge_id: int | None
    #: Of ``held``: disclosure records kept because a student they name still exists (FERPA).
    ferpa_kept: int = 0


@attrs.frozen(slots=True)
class LegalHold:
    """An active legal hold."""

    hold_id: int
    student_id: UUID | None
    entity_type: str | None
    entity_id: UUID | None
    user_id: str | None
    case_ref: str
    created_by: str
    created_at: datetime


_PROTECTED = sql.SQL("(a.is_phi OR a.compliance_type IN ('HIPAA', 'FERPA'))")
#: Records past the policy's cutoff for their class (index on created_at bounds the scan).
_PAST = sql.SQL(
    "a.created_at < GREATEST(%(phi_cut)s::timestamptz, %(other_cut)s::timestamptz) "
    "AND a.created_at < CASE WHEN {protected} THEN %(phi_cut)s::timestamptz "
    "ELSE %(other_cut)s::timestamptz END"
).format(protected=_PROTECTED)
_COUNT_SQL = sql.SQL(
    "SELECT count(*) FILTER (WHERE NOT held AND sealed), count(*) FILTER (WHERE held), "
    "count(*) FILTER (WHERE NOT held AND NOT sealed), count(*) FILTER (WHERE ferpa) FROM ("
    " SELECT audit_record_held(a) AS held, audit_record_ferpa_kept(a) AS ferpa,"
    " EXISTS (SELECT 1 FROM audit_seal s WHERE s.audit_id = a.id) AS sealed"
    " FROM audit_log a WHERE {past}) x"
).format(past=_PAST)
_ELIGIBLE_SQL = sql.SQL(
    "SELECT s.position, s.hash FROM audit_log a JOIN audit_seal s ON s.audit_id = a.id "
    "WHERE {past} AND NOT audit_record_held(a) ORDER BY s.position"
).format(past=_PAST)
_CUTOFF_SQL = (
    "SELECT now() - make_interval(years => %(phi)s), now() - make_interval(years => %(other)s)"
)


def apply_retention(
    conn: Conn,
    ctx: ExecutionContext,
    retention: RetentionPolicy | None = None,
    *,
    dry_run: bool = True,
    key: bytes | None = None,
) -> Result[RetentionReport, DataError]:
    """Count (dry run) or purge the audit records past retention that are sealed and not held."""
    return purge_request(conn, ctx, retention, dry_run=dry_run, key=key, what="retention",
                         operation="a purge").bind(lambda request: _retain(conn, ctx, request))


@attrs.frozen(slots=True)
class PurgeRequest:
    """A checked request to count or purge: the retention bounds, and the chain key (None: a
    dry run)."""

    bound: dict[str, Any]
    key: bytes | None


def purge_request(
    conn: Conn, ctx: ExecutionContext, retention: RetentionPolicy | None, *, dry_run: bool,
    key: bytes | None, what: str, operation: str,
) -> Result[PurgeRequest, DataError]:
    """The checks every purge of the trail makes first (the row purge and the month drop): the
    caller may manage retention (else an ACCESS_DENIED record and ``Forbidden``); a purge runs
    outside a unit of work and with the chain key."""
    denied = _deny_holds(conn, ctx, what)
    if denied is not None:
        return denied
    chosen = retention or RetentionPolicy()
    if not dry_run and current_scope(conn) is not None:
        return Failure(InvalidQuery(field="conn", rule=f"{operation} needs a connection outside "
                                                        "a unit of work"))
    if not dry_run and not key:
        return Failure(AuditKeyMissing())
    return Success(PurgeRequest({"phi": chosen.phi_years, "other": chosen.other_years},
                                None if dry_run else key))


def _retain(conn: Conn, ctx: ExecutionContext,
            request: PurgeRequest) -> Result[RetentionReport, DataError]:
    bound, key = request.bound, request.key
    try:
        if key is None:
            return Success(disclose(conn, ctx, lambda: _count(conn, bound),
                                    lambda r: _record(ctx, r, AuditAction.READ)))
        return purge_recorded(conn, ctx, lambda: _purge(conn, ctx, key, bound),
                              lambda r: _record(ctx, r, AuditAction.BULK_DELETE))
    except psycopg.Error as exc:
        return Failure(_db_error(exc, AUDIT_ENTITY))


def purge_recorded(conn: Conn, ctx: ExecutionContext, purge: Callable[[], Result[R, DataError]],
                   record_of: Callable[[R], AuditRecord]) -> Result[R, DataError]:
    """Run ``purge`` in a unit of work that also writes its record; a ``Failure`` of the purge
    rolls all of it back (nothing purged, nothing recorded). Database errors propagate."""
    outcome: Result[R, DataError] = Failure(_CHANGED)
    with unit_of_work(conn, ctx):
        outcome = purge()
        match outcome:
            case Success(report):
                conn.execute(*record_insert(ctx, record_of(report)))
            case _:
                raise RollbackScope
    return outcome


_CHANGED = Conflict(entity=AUDIT_ENTITY, reason="eligible records changed during the purge; "
                                                "run it again")


def one_row(conn: Conn, query: str | sql.Composed, params: Any = None) -> tuple[Any, ...]:
    """The single row of an aggregate query; none at all is a database error (caught as one)."""
    return tuple(_the_row(conn.cursor(row_factory=tuple_row).execute(query, params).fetchone()))


def cutoffs(conn: Conn, bound: dict[str, Any]) -> tuple[Any, Any]:
    """The PHI/education and the other records' retention cutoffs, computed by the server."""
    phi_cut, other_cut = one_row(conn, _CUTOFF_SQL, bound)
    return phi_cut, other_cut


def next_purge_id(conn: Conn) -> int:
    """The id of the next purge checkpoint."""
    return int(one_row(conn, "SELECT nextval(pg_get_serial_sequence('audit_purge', 'purge_id'))")[0])


def _count(conn: Conn, bound: dict[str, Any]) -> RetentionReport:
    phi_cut, other_cut = cutoffs(conn, bound)
    row = one_row(conn, _COUNT_SQL, {"phi_cut": phi_cut, "other_cut": other_cut})
    return RetentionReport(True, phi_cut, other_cut, int(row[0]), int(row[1]), int(row[2]), 0,
                           None, int(row[3]))


def _purge(conn: Conn, ctx: ExecutionContext, key: bytes, bound: dict[str, Any]
           ) -> Result[RetentionReport, DataError]:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SEAL_LOCK,))
    counted = _count(conn, bound)
    cuts = {"phi_cut": counted.phi_cutoff, "other_cut": counted.other_cutoff}
    purge_id = next_purge_id(conn)
    conn.execute(
        "INSERT INTO audit_purge (purge_id, phi_cutoff, other_cutoff, purged, held, user_id, mac) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (purge_id, counted.phi_cutoff, counted.other_cutoff, counted.eligible, counted.held,
         ctx.user_id, purge_mac(key, purge_id, counted.phi_cutoff, counted.other_cutoff,
                                counted.eligible, counted.held, ctx.user_id)),
    )
    marked = 0
    writer = conn.cursor()
    with conn.cursor(name=f"wx_purge_{purge_id}", row_factory=tuple_row) as cur:
        cur.itersize = PURGE_BATCH
        cur.execute(_ELIGIBLE_SQL, cuts)
        while batch := cur.fetchmany(PURGE_BATCH):
            with writer.copy("COPY audit_purged (position, purge_id, mac) FROM STDIN") as copy:
                for position, seal_hash in batch:
                    copy.write_row((position, purge_id,
                                    purged_mac(key, position, purge_id, bytes(seal_hash))))
            marked += len(batch)
    if marked != counted.eligible:
        return Failure(_CHANGED)
    conn.execute("SELECT set_config('wxdata.retention_purge', 'on', true)")
    deleted = conn.execute(
        "DELETE FROM audit_log a USING audit_seal s, audit_purged p "
        "WHERE p.purge_id = %s AND s.position = p.position AND a.id = s.audit_id",
        (purge_id,),
    ).rowcount
    conn.execute("SELECT set_config('wxdata.retention_purge', 'off', true)")
    if deleted != marked:
        return Failure(_CHANGED)
    return Success(attrs.evolve(counted, dry_run=False, purged=deleted, purge_id=purge_id))


def _record(ctx: ExecutionContext, report: RetentionReport, action: AuditAction) -> AuditRecord:
    return AuditRecord(
        action=action, entity_type=AUDIT_ENTITY, is_phi=False,
        compliance_type=ComplianceType.HIPAA, severity=severity_of(action, None, ctx, True),
        metadata={"report": "retention", "dry_run": report.dry_run, "eligible": report.eligible,
                  "held": report.held, "purged": report.purged, "purge_id": report.purge_id,
                  "phi_cutoff": report.phi_cutoff.isoformat(),
                  "other_cutoff": report.other_cutoff.isoformat()},
        tags=("audit-retention",),
    )


# --- legal holds ---------------------------------------------------------------------------------


def _deny_holds(conn: Conn, ctx: ExecutionContext, what: str) -> Failure[DataError] | None:
    if ctx.role in HOLD_ROLES:
        return None
    denied = deny(conn, ctx, what)
    if denied is not None:
        return denied
    record = AuditRecord(
        action=AuditAction.ACCESS_DENIED, entity_type=HOLD_ENTITY, success=False,
        severity=severity_of(AuditAction.ACCESS_DENIED, None, ctx, False),
        error_message=Forbidden.code, metadata={"operation": what},
    )
    write_detached(conn, ctx, record)
    return Failure(Forbidden(entity=HOLD_ENTITY, reason="role may not manage retention"))


def place_hold(
    conn: Conn, ctx: ExecutionContext, *, case_ref: str, student_id: UUID | None = None,
    entity_type: str | None = None, entity_id: UUID | None = None, user_id: str | None = None,
) -> Result[int, DataError]:
    """Hold every audit record of a student, an entity (or entity type) or a user; the hold id."""
    denied = _deny_holds(conn, ctx, "place_hold")
    if denied is not None:
        return denied
    errors = []
    if not isinstance(case_ref, str) or not 1 <= len(case_ref) <= 128:
        errors.append(FieldError("case_ref", "must be 1-128 characters"))
    if student_id is None and entity_type is None and user_id is None:
        errors.append(FieldError("scope", "name a student, an entity type or a user"))
    if entity_id is not None and entity_type is None:
        errors.append(FieldError("entity_type", "is required with entity_id"))
    if errors:
        return Failure(ValidationFailed(HOLD_ENTITY, tuple(errors)))
    try:
        with unit_of_work(conn, ctx):
            row = one_row(
                conn,
                "INSERT INTO audit_legal_hold (kind, student_id, entity_type, entity_id, user_id,"
                " case_ref, created_by) VALUES ('PLACE', %s, %s, %s, %s, %s, %s) RETURNING hold_id",
                (student_id, entity_type, entity_id, user_id, case_ref, ctx.user_id),
            )
            hold_id = int(row[0])
            conn.execute(*record_insert(ctx, AuditRecord(
                action=AuditAction.CREATE, entity_type=HOLD_ENTITY,
                subject_student_id=student_id, subject_ids=(student_id,) if student_id else (),
                compliance_type=ComplianceType.HIPAA,
                severity=severity_of(AuditAction.CREATE, None, ctx, True),
                metadata={"hold_id": hold_id, "case_ref": case_ref},
            )))
    except psycopg.Error as exc:
        return Failure(_db_error(exc, HOLD_ENTITY))
    return Success(hold_id)


def release_hold(conn: Conn, ctx: ExecutionContext, hold_id: int, *, case_ref: str
                 ) -> Result[None, DataError]:
    """Lift an active hold (by appending a RELEASE row; the PLACE row stays)."""
    denied = _deny_holds(conn, ctx, "release_hold")
    if denied is not None:
        return denied
    if not isinstance(case_ref, str) or not 1 <= len(case_ref) <= 128:
        return Failure(ValidationFailed(HOLD_ENTITY, (FieldError("case_ref",
                                                                 "must be 1-128 characters"),)))
    try:
        with unit_of_work(conn, ctx):
            row = conn.execute(
                "INSERT INTO audit_legal_hold (kind, releases, case_ref, created_by) "
                "SELECT 'RELEASE', h.hold_id, %s, %s FROM audit_legal_hold_active h "
                "WHERE h.hold_id = %s RETURNING hold_id",
                (case_ref, ctx.user_id, hold_id),
            ).fetchone()
            if row is None:
                return Failure(NotFound(entity=HOLD_ENTITY))
            conn.execute(*record_insert(ctx, AuditRecord(
                action=AuditAction.DELETE, entity_type=HOLD_ENTITY,
                compliance_type=ComplianceType.HIPAA,
                severity=severity_of(AuditAction.DELETE, None, ctx, True),
                metadata={"hold_id": hold_id, "case_ref": case_ref},
            )))
    except psycopg.Error as exc:
        return Failure(_db_error(exc, HOLD_ENTITY))
    return Success(None)


def active_holds(conn: Conn, ctx: ExecutionContext) -> Result[tuple[LegalHold, ...], DataError]:
    """Every active legal hold, oldest first."""
    denied = _deny_holds(conn, ctx, "active_holds")
    if denied is not None:
        return denied
    try:
        rows = conn.execute(
            "SELECT hold_id, student_id, entity_type, entity_id, user_id, case_ref, created_by,"
            " created_at FROM audit_legal_hold_active ORDER BY hold_id").fetchall()
    except psycopg.Error as exc:
        return Failure(_db_error(exc, HOLD_ENTITY))
    return Success(tuple(LegalHold(*r) for r in rows))


__all__ = [
    "OTHER_FLOOR_YEARS",
    "PHI_FLOOR_YEARS",
    "LegalHold",
    "RetentionPolicy",
    "RetentionReport",
    "active_holds",
    "apply_retention",
    "place_hold",
    "policy",
    "release_hold",
]
