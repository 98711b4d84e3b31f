"""Health records: every generic operation on ``health_records`` at module level, and finders."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import attrs
from pypika import Order, Table
from pypika import PostgreSQLQuery as Query
from pypika import functions as fn
from pypika.terms import Criterion
from returns.result import Failure, Result

from wxdata.audit.record import AuditAction
from wxdata.cache import register_value_type
from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import finder
from wxdata.errors import DataError, InvalidQuery
from wxdata.query.compiler import param
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.health_records import HEALTH_RECORDS, HealthRecord, RecordType
from wxdata.tx.scope import AnyConn

ENTITY = HEALTH_RECORDS
ops = bind_entity(ENTITY)
find_by_id = ops.find_by_id
find_one = ops.find_one
find_many = ops.find_many
find_projected = ops.find_projected
find_after = ops.find_after
count = ops.count
exists = ops.exists
create = ops.create
update = ops.update
delete = ops.delete
restore = ops.restore
bulk_create = ops.bulk_create
update_where = ops.update_where
update_ids = ops.update_ids
stream = ops.stream
record_disclosure = ops.record_disclosure

_NEWEST = (("record_date", "desc"),)


@finder(HEALTH_RECORDS)
def find_by_student(
    conn: AnyConn, ctx: ExecutionContext, student_id: UUID | str, *, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Plan[Result[Page[HealthRecord], DataError]]:
    """A student's records, newest first."""
    return plans.find_many(conn, ctx, HEALTH_RECORDS, {"student_id": student_id},
                           order_by=_NEWEST, page=page, limit=limit)


@finder(HEALTH_RECORDS)
def find_by_type(
    conn: AnyConn, ctx: ExecutionContext, record_type: str, *,
    student_id: UUID | str | None = None, page: int = 1, limit: int = DEFAULT_LIMIT,
) -> Plan[Result[Page[HealthRecord], DataError]]:
    """Records of one type (optionally for one student), newest first."""
    where: dict[str, object] = {"record_type": record_type}
    if student_id is not None:
        where["student_id"] = student_id
    return plans.find_many(conn, ctx, HEALTH_RECORDS, where, order_by=_NEWEST, page=page,
                           limit=limit)


@finder(HEALTH_RECORDS)
def find_by_date_range(
    conn: AnyConn, ctx: ExecutionContext, student_id: UUID | str, start: date, end: date, *,
    page: int = 1, limit: int = DEFAULT_LIMIT,
) -> Plan[Result[Page[HealthRecord], DataError]]:
    """A student's records dated within [start, end], newest first."""
    if start > end:
        return Failure(InvalidQuery("start", "must not be after end"))
    return (yield from plans.find_many(
        conn, ctx, HEALTH_RECORDS,
        {"student_id": student_id, "record_date": {"between": [start, end]}},
        order_by=_NEWEST, page=page, limit=limit))


@finder(HEALTH_RECORDS)
def find_requiring_follow_up(
    conn: AnyConn, ctx: ExecutionContext, *, due_by: date | None = None, page: int = 1,
    limit: int = DEFAULT_LIMIT,
) -> Plan[Result[Page[HealthRecord], DataError]]:
    """Open follow-ups (required, not completed), soonest first; only those due by ``due_by``."""
    where: dict[str, object] = {"follow_up_required": True, "follow_up_completed": False}
    if due_by is not None:
        where["follow_up_date"] = {"lte": due_by}
    return plans.find_many(conn, ctx, HEALTH_RECORDS, where,
                           order_by=(("follow_up_date", "asc"),), page=page, limit=limit)


@register_value_type
@attrs.frozen(slots=True)
class TypeSummary:
    """Counts of one record type for a student."""

    record_type: str
    records: int
    latest: date
    open_follow_ups: int


@register_value_type
@attrs.frozen(slots=True)
class HealthSummary:
    """A student's health-record summary, computed in SQL."""

    student_id: UUID
    total: int
    open_follow_ups: int
    latest: date | None
    by_type: tuple[TypeSummary, ...]


def _summary_sql() -> str:
    t = Table(HEALTH_RECORDS.table)
    open_follow_up = Criterion.all([t.follow_up_required, t.follow_up_completed.negate()])
    q = (
        Query.from_(t)
        .select(t.record_type, fn.Count("*"), fn.Max(t.record_date),
                fn.Sum(fn.Cast(open_follow_up, "integer")))  # type: ignore[no-untyped-call]
        .where((t.student_id == param("sid")) & t.deleted_at.isnull())
        .groupby(t.record_type)
        .orderby(t.record_type, order=Order.asc)
    )
    return str(q.get_sql())


_SUMMARY_SQL = _summary_sql()


def _summary(sid: UUID, rows: list[tuple[Any, ...]]) -> HealthSummary:
    by_type = tuple(TypeSummary(r[0], int(r[1]), r[2], int(r[3] or 0)) for r in rows)
    return HealthSummary(
        student_id=sid,
        total=sum(t.records for t in by_type),
        open_follow_ups=sum(t.open_follow_ups for t in by_type),
        latest=max((t.latest for t in by_type), default=None),
        by_type=by_type,
    )


@finder(HEALTH_RECORDS, cache=True)
def student_health_summary(
    conn: AnyConn, ctx: ExecutionContext, student_id: UUID | str
) -> Plan[Result[HealthSummary, DataError]]:
    """Totals by record type, open follow-ups and latest date for one student (audited READ)."""
    try:
        sid = student_id if isinstance(student_id, UUID) else UUID(str(student_id))
    except ValueError:
        return Failure(InvalidQuery("student_id", "must be a UUID"))
    rows = yield from plans.fetch(conn, ctx, _SUMMARY_SQL, {"sid": sid}, entity=HEALTH_RECORDS,
                                  recorded=True)  # recorded below, after the summary is built
    summary = rows.map(lambda found: _summary(sid, found))
    if not summary.map(lambda s: bool(s.by_type)).value_or(False):
        return summary
    disclosed = yield from plans.record_disclosure(
        conn, ctx, HEALTH_RECORDS, AuditAction.READ, subjects=(sid,),
        fields=("record_type", "record_date", "follow_up_required", "follow_up_completed"),
        metadata={"summary": True},
    )
    return disclosed.bind(lambda _: summary)

__all__ = [
    "ENTITY",
    "HealthRecord",
    "HealthSummary",
    "RecordType",
    "TypeSummary",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_date_range",
    "find_by_id",
    "find_by_student",
    "find_by_type",
    "find_many",
    "find_one",
    "find_projected",
    "find_requiring_follow_up",
    "ops",
    "record_disclosure",
    "restore",
    "stream",
    "student_health_summary",
    "update",
    "update_ids",
    "update_where",
]
