"""Audit reports: history of an entity, activity of a user, the per-student accounting of
disclosures (HIPAA 45 CFR 164.528 / FERPA 34 CFR 99.32) and statistics.

Every report is ``(conn, ctx, ...) -> Result``, binds every value, returns typed attrs rows and
pages unbounded results with a keyset cursor over ``(created_at, seq)``. Reading the audit trail
is itself a disclosure: each report writes a READ record of ``AuditLog`` through the ordinary
record machinery, in the same transaction as the query (or on lane 2 when that transaction is
read-only or later rolls back). Only audit readers (admins and the system role) may run them;
a refusal is recorded as ACCESS_DENIED on lane 2.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Generic, TypeVar
from uuid import UUID

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from returns.result import Failure, Result, Success

from wxdata.audit.lanes import write_detached
from wxdata.audit.record import (
    AuditAction,
    AuditRecord,
    ComplianceType,
    fields_named,
    severity_of,
)
from wxdata.audit.sql import record_insert
from wxdata.config import settings
from wxdata.context import ExecutionContext, Role
from wxdata.errors import DataError, Forbidden, InvalidQuery
from wxdata.errors import from_db_error as _db_error
from wxdata.tx.decorators import UNRECORDED
from wxdata.tx.scope import DisclosureNotRecorded, current_scope, unit_of_work

Conn = psycopg.Connection[Any]
T = TypeVar("T")

#: The audit log as an entity name in audit records about the audit log itself.
AUDIT_ENTITY = "AuditLog"
#: Roles that may read the audit trail.
AUDIT_READERS = frozenset({Role.ADMIN, Role.DISTRICT_ADMIN, Role.SCHOOL_ADMIN, Role.SYSTEM})
#: Audit readers whose reading is held to their school scope: the records of a student, and a
#: row's history, only for students their scope shows. ADMIN (the organisation's privacy officer)
#: and SYSTEM read the whole trail.
SCOPED_AUDIT_READERS = frozenset({Role.DISTRICT_ADMIN, Role.SCHOOL_ADMIN})
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@attrs.frozen(slots=True)
class AuditEntry:
    """One audit record as reports show it (values already redacted at write time)."""

    seq: int
    id: UUID
    created_at: datetime
    action: str
    entity_type: str
    entity_id: UUID | None
    subject_student_id: UUID | None
    user_id: str | None
    user_name: str | None
    user_role: str | None
    purpose: str | None
    fields: tuple[str, ...]
    changes: Any
    success: bool
    severity: str
    compliance_type: str
    is_phi: bool
    ip_address: str | None
    request_id: str | None
    break_glass_reason: str | None
    error_message: str | None


@attrs.frozen(slots=True)
class Disclosure:
    """One line of an accounting of disclosures: who saw or changed what of the student, when, why."""

    seq: int
    created_at: datetime
    user_id: str | None
    user_name: str | None
    user_role: str | None
    action: str
    entity_type: str
    entity_id: UUID | None
    purpose: str | None
    fields: tuple[str, ...]
    success: bool
    break_glass_reason: str | None
    request_id: str | None
    ip_address: str | None
    #: ``ACCESS`` (use inside the organisation), ``DISCLOSURE`` (to an outside party) or
    #: ``REQUEST`` (a party asked for the records), from :mod:`wxdata.audit.disclosures`.
    kind: str = "ACCESS"
    #: Who received (or requested) the information: the outside party, else the user.
    recipient: str | None = None
    recipient_address: str | None = None
    #: Why the disclosure was lawful (a :class:`wxdata.audit.disclosures.LegalBasis` value).
    legal_basis: str | None = None
    #: What was disclosed, in words (no values).
    description: str = ""


@attrs.frozen(slots=True)
class AuditPage(Generic[T]):
    """A page of report rows and the cursor of the next page (None on the last page)."""

    rows: tuple[T, ...]
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


@attrs.frozen(slots=True)
class AuditStatistics:
    """Counts of audit records in a window, by action, entity, severity and (top) user."""

    since: datetime | None
    until: datetime | None
    total: int
    failures: int
    phi: int
    users: int
    by_action: tuple[tuple[str, int], ...]
    by_entity: tuple[tuple[str, int], ...]
    by_severity: tuple[tuple[str, int], ...]
    by_user: tuple[tuple[str, int], ...]


# --- shared plumbing ---------------------------------------------------------------------------


_FIELDS = sql.SQL(  # a whole fragment: literal braces
    "COALESCE(NULLIF(a.fields_disclosed, '{}'), CASE WHEN jsonb_typeof(a.changes) = 'object' "
    "THEN ARRAY(SELECT jsonb_object_keys(a.changes) ORDER BY 1) ELSE '{}'::text[] END)"
)
#: The select lists of the reports, as text (they key the statement cache and :data:`_CREATED`).
_ENTRY_COLS = sql.SQL(
    "a.seq, a.id, a.created_at, a.action, a.entity_type, a.entity_id, a.subject_student_id, "
    "a.user_id, a.user_name, a.user_role, a.purpose, {fields}, a.changes, a.success, "
    "a.severity, a.compliance_type, a.is_phi, a.ip_address, a.request_id, a.break_glass_reason, "
    "a.error_message"
).format(fields=_FIELDS).as_string()
_DISCLOSURE_COLS = sql.SQL(
    "a.seq, a.created_at, a.user_id, a.user_name, a.user_role, a.action, a.entity_type, "
    "a.entity_id, a.purpose, {fields}, a.success, a.break_glass_reason, a.request_id, "
    "a.ip_address, a.metadata->'disclosure'"
).format(fields=_FIELDS).as_string()


def _entry(r: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                      fields_named(r[4], r[11]), r[12], r[13], r[14], r[15], r[16], r[17], r[18],
                      r[19], r[20])


def _disclosure(r: tuple[Any, ...]) -> Disclosure:
    fields = fields_named(r[6], r[9])
    extra = r[14] if isinstance(r[14], dict) else {}
    described = f"{r[5].lower()} of {r[6]}" + (f" ({', '.join(fields)})" if fields else "")
    return Disclosure(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], fields,
                      r[10], r[11], r[12], r[13],
                      kind=str(extra.get("kind", "ACCESS")),
                      recipient=extra.get("recipient") or r[3] or r[2],
                      recipient_address=extra.get("recipient_address"),
                      legal_basis=extra.get("legal_basis"),
                      description=str(extra.get("description") or described))


def make_cursor(created_at: datetime, seq: int) -> str:
    """The opaque keyset cursor after ``(created_at, seq)`` (no record content)."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{seq}".encode()).decode()


def read_cursor(cursor: str) -> Result[tuple[datetime, int], DataError]:
    """Decode a cursor made by :func:`make_cursor`."""
    bad = Failure(InvalidQuery(field="cursor", rule="is not a valid audit report cursor"))
    if not isinstance(cursor, str) or len(cursor) > 200:
        return bad
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        stamp, seq = text.split("|")
        when = datetime.fromisoformat(stamp)
        number = int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return bad
    if when.tzinfo is None:
        return bad
    return Success((when, number))


def _check_limit(limit: int) -> DataError | None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return InvalidQuery(field="limit", rule=f"must be between 1 and {MAX_LIMIT}")
    return None


def _check_window(since: datetime | None, until: datetime | None) -> DataError | None:
    for name, value in (("since", since), ("until", until)):
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            return InvalidQuery(field=name, rule="must be a timezone-aware datetime")
    if since is not None and until is not None and until < since:
        return InvalidQuery(field="until", rule="must not be before since")
    return None


#: To a scoped audit reader (:data:`SCOPED_AUDIT_READERS`) a record is shown when its school
#: scope shows every student the record names (row security on ``students`` decides, under the
#: reader's signed scope) or bypasses schools (break-glass); a record naming no student is shown.
SHOWN_TO_SCOPE = ("((SELECT public.wxdata_scope_bypass()) OR NOT EXISTS (SELECT 1 FROM "
          "unnest(a.subject_ids) AS named(id) WHERE NOT EXISTS (SELECT 1 FROM students s "
          "WHERE s.id = named.id)))")


@lru_cache(maxsize=64)
def _window_sql(columns: str, where: str, since: bool, until: bool, after: bool,
                scoped: bool) -> str:
    """One report statement shape; every value is a bound parameter. ``scoped``: only records
    whose students the reader's scope shows (:data:`SHOWN_TO_SCOPE`)."""
    parts = [sql.SQL(where), *((sql.SQL(SHOWN_TO_SCOPE),) if scoped else ())]
    if since:
        parts.append(sql.SQL("a.created_at >= %(since)s"))
    if until:
        parts.append(sql.SQL("a.created_at < %(until)s"))
    if after:
        parts.append(sql.SQL("(a.created_at, a.seq) > (%(after_t)s, %(after_s)s)"))
    return _WINDOW.format(columns=sql.SQL(columns), where=sql.SQL(" AND ").join(parts)).as_string()


_WINDOW = sql.SQL(
    "SELECT {columns} FROM audit_log a WHERE {where} ORDER BY a.created_at, a.seq LIMIT %(limit)s")


def _report_record(
    ctx: ExecutionContext, action: AuditAction, report: str, *, subject: UUID | None = None,
    phi: bool = True, metadata: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """The record of reading (or exporting) the audit trail."""
    return AuditRecord(
        action=action,
        entity_type=AUDIT_ENTITY,
        subject_student_id=subject,
        subject_ids=(subject,) if subject is not None else (),
        is_phi=phi,
        compliance_type=ComplianceType.HIPAA if phi else ComplianceType.GENERAL,
        severity=severity_of(action, None, ctx, True),
        metadata={"report": report, **(metadata or {})},
        tags=("audit-report",),
    )


def denial(ctx: ExecutionContext, report: str) -> tuple[AuditRecord, Failure[DataError]] | None:
    """None for an audit reader; else the ACCESS_DENIED record to keep and the refusal."""
    if ctx.role in AUDIT_READERS:
        return None
    record = AuditRecord(
        action=AuditAction.ACCESS_DENIED, entity_type=AUDIT_ENTITY, success=False,
        severity=severity_of(AuditAction.ACCESS_DENIED, None, ctx, False),
        error_message=Forbidden.code, metadata={"report": report}, tags=("audit-report",),
    )
    return record, Failure(Forbidden(entity=AUDIT_ENTITY, reason="role may not read the audit trail"))


def deny(conn: Conn, ctx: ExecutionContext, report: str) -> Failure[DataError] | None:
    """Refuse (and record on lane 2) a caller whose role may not read the audit trail."""
    refused = denial(ctx, report)
    if refused is None:
        return None
    write_detached(conn, ctx, refused[0])
    return refused[1]


def disclose(conn: Conn, ctx: ExecutionContext, work: Callable[[], T],
             record_of: Callable[[T], AuditRecord]) -> T:
    """Run ``work`` and write its disclosure record in the same transaction.

    In a read-only unit of work the record goes to lane 2 (and :class:`DisclosureNotRecorded` is
    raised, the result withheld, when it cannot be committed); inside a caller's unit of work it is
    replayed on lane 2 should that unit roll back (the disclosure happened all the same).
    """
    nested = current_scope(conn) is not None
    with unit_of_work(conn, ctx) as scope:
        out = work()
        record = record_of(out)
        if scope.read_only:
            if not write_detached(conn, ctx, record):
                raise DisclosureNotRecorded("audit lane 2 unavailable")  # no record, no data
        else:
            conn.execute(*record_insert(ctx, record), prepare=settings().prepare)
            if nested:
                scope.replay_on_rollback(lambda: write_detached(conn, ctx, record))
    return out


@attrs.frozen(slots=True, kw_only=True)
class ReportSpec(Generic[T]):
    """One paged report with its arguments checked: which rows, how they are shaped, recorded."""

    report: str
    columns: str
    where: str
    params: Mapping[str, Any]
    make: Callable[[tuple[Any, ...]], T]
    subject: UUID | None
    metadata: Mapping[str, Any]


@attrs.frozen(slots=True, kw_only=True)
class PagePlan(Generic[T]):
    """A page to read: the statement and its values, then how rows become the page and its record.

    Pure, shared by the sync and the async reports: the shells run :attr:`sql` with :attr:`bound`
    and hand the rows to :meth:`page`, then write :meth:`record` in the same transaction.
    """

    spec: ReportSpec[T]
    ctx: ExecutionContext
    sql: str
    bound: Mapping[str, Any]
    limit: int

    def page(self, rows: list[tuple[Any, ...]]) -> AuditPage[T]:
        """The page (``limit`` rows) and the cursor of the next one (one row more was asked for)."""
        more = len(rows) > self.limit
        rows = rows[:self.limit]
        nxt = make_cursor(rows[-1][_CREATED[self.spec.columns]], rows[-1][0]) if more else None
        return AuditPage(tuple(self.spec.make(r) for r in rows), nxt)

    def record(self, page: AuditPage[T]) -> AuditRecord:
        """The READ record of the audit trail for this page."""
        return _report_record(self.ctx, AuditAction.READ, self.spec.report,
                              subject=self.spec.subject,
                              metadata={**self.spec.metadata, "rows": len(page.rows)})


def plan_page(ctx: ExecutionContext, spec: ReportSpec[T], *, since: datetime | None,
              until: datetime | None, cursor: str | None, limit: int
              ) -> Result[PagePlan[T], DataError]:
    """Check the limit, window and cursor of a page of ``spec`` and build its statement."""
    problem = _check_limit(limit) or _check_window(since, until)
    if problem is not None:
        return Failure(problem)
    sql = _window_sql(spec.columns, spec.where, since is not None, until is not None,
                      cursor is not None, ctx.role in SCOPED_AUDIT_READERS)
    return _after(cursor).map(lambda after: PagePlan(
        spec=spec, ctx=ctx, sql=sql,
        bound={**spec.params, "since": since, "until": until, "limit": limit + 1, **after},
        limit=limit))


def _after(cursor: str | None) -> Result[dict[str, Any], DataError]:
    """The keyset values of ``cursor`` (none without one)."""
    if cursor is None:
        return Success({})
    return read_cursor(cursor).map(lambda at: {"after_t": at[0], "after_s": at[1]})


def disclosed(conn: Conn, ctx: ExecutionContext, work: Callable[[], T],
              record_of: Callable[[T], AuditRecord]) -> Result[T, DataError]:
    """:func:`disclose` as a Result: a database error, or a disclosure left unrecorded, fails."""
    try:
        return Success(disclose(conn, ctx, work, record_of))
    except psycopg.Error as exc:
        return Failure(_db_error(exc, AUDIT_ENTITY))
    except DisclosureNotRecorded:
        return Failure(UNRECORDED)


def _page(
    conn: Conn, ctx: ExecutionContext, spec: ReportSpec[T], *, since: datetime | None,
    until: datetime | None, cursor: str | None, limit: int,
) -> Result[AuditPage[T], DataError]:
    denied = deny(conn, ctx, spec.report)
    if denied is not None:
        return denied
    return plan_page(ctx, spec, since=since, until=until, cursor=cursor, limit=limit).bind(
        lambda plan: disclosed(conn, ctx, lambda: _read_page(conn, plan), plan.record))


def _read_page(conn: Conn, plan: PagePlan[T]) -> AuditPage[T]:
    cur = conn.cursor(row_factory=tuple_row)
    return plan.page(cur.execute(plan.sql, plan.bound, prepare=settings().prepare).fetchall())


#: Index of ``created_at`` in each column list (for the cursor).
_CREATED = {_ENTRY_COLS: 2, _DISCLOSURE_COLS: 1}


def _uuid(value: UUID | str, field: str) -> Result[UUID, DataError]:
    if isinstance(value, UUID):
        return Success(value)
    try:
        return Success(UUID(str(value)))
    except ValueError:
        return Failure(InvalidQuery(field=field, rule="must be a UUID"))


# --- reports -----------------------------------------------------------------------------------


def names_row(param: str) -> str:
    """The condition "the record names the row whose id is ``%(param)s``", in the form the log's
    indexes serve: the row listed in ``entity_ids`` (its GIN index), or named by ``entity_id`` alone
    without being listed (a record not written by wxdata; the partial index that holds only those).
    """
    return (f"(a.entity_ids @> ARRAY[%({param})s]::uuid[] OR (a.entity_id = %({param})s "
            "AND NOT (a.entity_ids @> ARRAY[a.entity_id])))")


def entity_history_spec(entity_type: str, entity_id: UUID | str
                        ) -> Result[ReportSpec[AuditEntry], DataError]:
    """Check the arguments of :func:`entity_history`."""
    def spec(key: UUID) -> Result[ReportSpec[AuditEntry], DataError]:
        if not isinstance(entity_type, str) or not 1 <= len(entity_type) <= 100:
            return Failure(InvalidQuery(field="entity_type", rule="must be 1-100 characters"))
        return Success(ReportSpec(
            report="entity_history", columns=_ENTRY_COLS,
            where="a.entity_type = %(entity_type)s AND a.entity_id = %(entity_id)s AND "
                  + names_row("entity_id"),
            params={"entity_type": entity_type, "entity_id": key}, make=_entry, subject=None,
            metadata={"entity_type": entity_type, "entity_id": str(key)},
        ))

    return _uuid(entity_id, "entity_id").bind(spec)


def user_activity_spec(user_id: str) -> Result[ReportSpec[AuditEntry], DataError]:
    """Check the arguments of :func:`user_activity`."""
    if not isinstance(user_id, str) or not 1 <= len(user_id) <= 128:
        return Failure(InvalidQuery(field="user_id", rule="must be 1-128 characters"))
    return Success(ReportSpec(
        report="user_activity", columns=_ENTRY_COLS, where="a.user_id = %(user_id)s",
        params={"user_id": user_id}, make=_entry, subject=None, metadata={"user_id": user_id},
    ))


def accounting_spec(student_id: UUID | str, since: datetime | None, until: datetime | None,
                    include_failures: bool) -> Result[ReportSpec[Disclosure], DataError]:
    """Check the arguments of :func:`accounting_of_disclosures`."""
    where = "a.subject_ids @> ARRAY[%(student_id)s]::uuid[]"
    if not include_failures:
        where += " AND a.success"
    return _uuid(student_id, "student_id").map(lambda key: ReportSpec(
        report="accounting_of_disclosures", columns=_DISCLOSURE_COLS, where=where,
        params={"student_id": key}, make=_disclosure, subject=key,
        metadata={"since": since.isoformat() if since else None,
                  "until": until.isoformat() if until else None},
    ))


def entity_history(
    conn: Conn, ctx: ExecutionContext, entity_type: str, entity_id: UUID | str, *,
    since: datetime | None = None, until: datetime | None = None, cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Result[AuditPage[AuditEntry], DataError]:
    """Every record about one row (single-row reads and every write), oldest first."""
    return entity_history_spec(entity_type, entity_id).bind(
        lambda spec: _page(conn, ctx, spec, since=since, until=until, cursor=cursor, limit=limit))


def user_activity(
    conn: Conn, ctx: ExecutionContext, user_id: str, since: datetime | None = None,
    until: datetime | None = None, *, cursor: str | None = None, limit: int = DEFAULT_LIMIT,
) -> Result[AuditPage[AuditEntry], DataError]:
    """Everything one user did in the window, oldest first."""
    return user_activity_spec(user_id).bind(
        lambda spec: _page(conn, ctx, spec, since=since, until=until, cursor=cursor, limit=limit))


def accounting_of_disclosures(
    conn: Conn, ctx: ExecutionContext, student_id: UUID | str, since: datetime | None = None,
    until: datetime | None = None, *, cursor: str | None = None, limit: int = DEFAULT_LIMIT,
    include_failures: bool = True,
) -> Result[AuditPage[Disclosure], DataError]:
    """Who read or changed which record of the student, when, why, which fields, oldest first.

    Serves both the HIPAA accounting (164.528) and the FERPA record of disclosures (99.32):
    every audit record naming the student as a subject (the ``subject_ids`` GIN index), reads of
    lists and bulk operations included, attempts that failed or were denied included unless
    ``include_failures`` is False.
    """
    return accounting_spec(student_id, since, until, include_failures).bind(
        lambda spec: _page(conn, ctx, spec, since=since, until=until, cursor=cursor, limit=limit))


STATS_SQL = (
    "SELECT GROUPING(a.action), GROUPING(a.entity_type), GROUPING(a.severity), a.action, "
    "a.entity_type, a.severity, count(*), count(*) FILTER (WHERE NOT a.success), "
    "count(*) FILTER (WHERE a.is_phi), count(DISTINCT a.user_id) "
    "FROM audit_log a WHERE a.created_at >= COALESCE(%(since)s, '-infinity'::timestamptz) "
    "AND a.created_at < COALESCE(%(until)s, 'infinity'::timestamptz) "
    "GROUP BY GROUPING SETS ((a.action), (a.entity_type), (a.severity), ())"
)
USERS_SQL = (
    "SELECT COALESCE(a.user_id, ''), count(*) FROM audit_log a "
    "WHERE a.created_at >= COALESCE(%(since)s, '-infinity'::timestamptz) "
    "AND a.created_at < COALESCE(%(until)s, 'infinity'::timestamptz) "
    "GROUP BY a.user_id ORDER BY count(*) DESC, 1 LIMIT %(top)s"
)


def _ordered(items: list[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(items, key=lambda kv: (-kv[1], kv[0])))


def check_statistics(since: datetime | None, until: datetime | None, top_users: int
                     ) -> Result[dict[str, Any], DataError]:
    """Check the window and ``top_users`` of :func:`statistics`; the statements' values."""
    problem = _check_window(since, until) or _check_limit(top_users)
    if problem is not None:
        return Failure(problem)
    return Success({"since": since, "until": until, "top": top_users})


def statistics_of(groups: list[tuple[Any, ...]], users: list[tuple[Any, ...]],
                  since: datetime | None, until: datetime | None) -> AuditStatistics:
    """The statistics from the rows of the grouping-sets and the top-users statements."""
    total = failures = phi = distinct = 0
    by: dict[str, list[tuple[str, int]]] = {"action": [], "entity": [], "severity": []}
    for g_a, g_e, g_s, action, entity, severity, n, failed, phi_n, users_n in groups:
        if g_a and g_e and g_s:
            total, failures, phi, distinct = int(n), int(failed), int(phi_n), int(users_n)
        elif not g_a:
            by["action"].append((action, int(n)))
        elif not g_e:
            by["entity"].append((entity, int(n)))
        else:
            by["severity"].append((severity, int(n)))
    return AuditStatistics(
        since, until, total, failures, phi, distinct, _ordered(by["action"]),
        _ordered(by["entity"]), _ordered(by["severity"]),
        tuple((str(u), int(n)) for u, n in users),
    )


def statistics_record(ctx: ExecutionContext, since: datetime | None, until: datetime | None
                      ) -> AuditRecord:
    """The READ record of the statistics (no PHI: counts only)."""
    return _report_record(ctx, AuditAction.READ, "statistics", phi=False,
                          metadata={"since": since.isoformat() if since else None,
                                    "until": until.isoformat() if until else None})


def statistics(
    conn: Conn, ctx: ExecutionContext, since: datetime | None = None,
    until: datetime | None = None, *, top_users: int = 20,
) -> Result[AuditStatistics, DataError]:
    """Counts in the window by action, entity type, severity and the ``top_users`` busiest users."""
    denied = deny(conn, ctx, "statistics")
    if denied is not None:
        return denied

    def work(bound: dict[str, Any]) -> AuditStatistics:
        cur = conn.cursor(row_factory=tuple_row)
        groups = cur.execute(STATS_SQL, bound, prepare=settings().prepare).fetchall()
        users = cur.execute(USERS_SQL, bound, prepare=settings().prepare).fetchall()
        return statistics_of(groups, users, since, until)

    return check_statistics(since, until, top_users).bind(lambda bound: disclosed(
        conn, ctx, lambda: work(bound), lambda _: statistics_record(ctx, since, until)))


__all__ = [
    "AUDIT_ENTITY",
    "AUDIT_READERS",
    "SCOPED_AUDIT_READERS",
    "SHOWN_TO_SCOPE",
    "AuditEntry",
    "AuditPage",
    "AuditStatistics",
    "Disclosure",
    "PagePlan",
    "ReportSpec",
    "accounting_of_disclosures",
    "denial",
    "deny",
    "disclose",
    "disclosed",
    "entity_history",
    "statistics",
    "user_activity",
]
