"""The ``audited`` decorator on hand-written queries: one record per call in the contract order
audited -> (cache) -> transactional -> query, subjects found in every result shape, failures on
lane 2, changes atomic with their record, and the lanes chosen by the connection's state."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

import attrs
import psycopg
import pytest
from returns.result import Failure, Result, Success

from tests.conftest import student_values
from tests.shells import parametrise
from wxdata import ExecutionContext, Page, Purpose, Role, crud
from wxdata.audit import AuditAction, audited, extract, log_access_denied, log_bulk, log_read
from wxdata.config import configure, settings
from wxdata.domains import health_records, students
from wxdata.errors import DataError, Forbidden, NotFound, Retryable
from wxdata.query.paging import KeysetPage
from wxdata.schema import HEALTH_RECORDS, STUDENTS, HealthRecord
from wxdata.tx import Isolation, RollbackScope, current_scope, transactional, unit_of_work

parametrise(globals())

Conn = psycopg.Connection[Any]


_SCHOOLS: list[uuid.UUID] = []  # the school of the running test (see ``_test_school``)


@pytest.fixture(autouse=True)
def _test_school(school: dict[str, uuid.UUID]) -> None:
    """Every test works in the ``school`` fixture's school (the one ``make_student`` uses)."""
    _SCHOOLS[:] = [school["school_id"]]


def fresh_ctx() -> ExecutionContext:
    """A nurse of the test's school with a request id of her own."""
    return ExecutionContext(user_id="u-nurse-9", role=Role.NURSE, purpose=Purpose.TREATMENT,
                            ip_address="10.0.0.9", request_id=f"req-{uuid.uuid4().hex[:12]}",
                            school_ids=set(_SCHOOLS))


def records(conn: Conn, ctx: ExecutionContext) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT action, entity_type, entity_id, entity_ids, subject_student_id, subject_ids, "
        "fields_disclosed, success, error_message, metadata, is_phi, transaction_id::text AS txid "
        "FROM audit_log WHERE request_id = %s ORDER BY seq", (ctx.request_id,))
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def memo() -> Callable[[Callable[..., Result[Any, DataError]]], Callable[..., Result[Any, DataError]]]:
    """A stand-in for ``@cached``: Success values memoised per argument, wraps like the real one."""
    def decorate(fn: Callable[..., Result[Any, DataError]]) -> Callable[..., Result[Any, DataError]]:
        store: dict[tuple[Any, ...], Result[Any, DataError]] = {}

        @functools.wraps(fn)
        def wrapper(conn: Conn, ctx: ExecutionContext, *args: Any) -> Result[Any, DataError]:
            if args in store:
                return store[args]
            result = fn(conn, ctx, *args)
            if isinstance(result, Success):
                store[args] = result
            return result

        return wrapper
    return decorate


def _records_of(conn: Conn, student_id: UUID) -> list[HealthRecord]:
    cur = conn.execute(
        f"SELECT {', '.join(HEALTH_RECORDS.column_names)} FROM health_records "
        "WHERE student_id = %s AND deleted_at IS NULL ORDER BY record_date", (student_id,))
    return [HealthRecord(*r) for r in cur.fetchall()]


def _new_record(conn: Conn, ctx: ExecutionContext, student_id: UUID, day: int = 1) -> HealthRecord:
    return health_records.create(conn, ctx, {
        "student_id": student_id, "record_type": "ILLNESS", "title": "Flu",
        "description": "fever", "record_date": date(2024, 1, day)}).unwrap()


# --- the order contract -----------------------------------------------------------------------


def test_contract_order_one_record_per_call_cache_hits_included(conn, sys_ctx, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()
    recs = [_new_record(conn, sys_ctx, s.id, d) for d in (1, 2)]
    queries: list[int] = []

    @audited(entity=HEALTH_RECORDS, action=AuditAction.READ)
    @memo()
    @transactional(isolation=Isolation.REPEATABLE_READ)
    def recent_visits(c: Conn, x: ExecutionContext, sid: UUID) -> Result[list[HealthRecord], DataError]:
        queries.append(1)
        assert current_scope(c) is not None  # the query runs inside the unit of work
        return Success(_records_of(c, sid))

    for _ in range(3):
        assert [r.id for r in recent_visits(conn, ctx, s.id).unwrap()] == [r.id for r in recs]
    assert len(queries) == 1  # two cache hits
    got = records(conn, ctx)
    assert len(got) == 3  # one disclosure record per call, hits included
    for r in got:
        assert (r["action"], r["entity_type"], r["success"], r["is_phi"]) == (
            "READ", "HealthRecord", True, True)
        assert sorted(r["entity_ids"]) == sorted(x.id for x in recs)
        assert r["subject_student_id"] == s.id and r["subject_ids"] == [s.id]
        # whole rows: every readable column, stored as the read's own record stores it
        assert r["fields_disclosed"] == ["*"]
        assert r["metadata"]["operation"].endswith("recent_visits")


@pytest.mark.sync_only
def test_contract_order_with_the_real_cache(conn, sys_ctx, make_student) -> None:
    cache_mod = pytest.importorskip("wxdata.cache")
    from wxdata.cache.keys import KeyBuilder

    ctx = fresh_ctx()
    s = make_student()
    rec = _new_record(conn, sys_ctx, s.id)
    backend = cache_mod.MemoryCache(KeyBuilder(b"k" * 32, prefix="wx-test-audit"), max_size=100)
    queries: list[int] = []

    @audited(HEALTH_RECORDS)
    @cache_mod.cached(HEALTH_RECORDS, cache=backend, unkeyed=("queries",))
    @transactional()
    def visits(c: Conn, x: ExecutionContext, sid: UUID) -> Result[list[HealthRecord], DataError]:
        queries.append(1)
        return Success(_records_of(c, sid))

    for _ in range(3):
        assert [r.id for r in visits(conn, ctx, s.id).unwrap()] == [rec.id]
    got = records(conn, ctx)
    assert len(queries) == 1 and len(got) == 3  # hits are disclosures, recorded once each
    assert all(r["action"] == "READ" and r["entity_ids"] == [rec.id] for r in got)


def test_crud_reads_beneath_are_not_recorded_twice(conn, make_student) -> None:
    ctx = fresh_ctx()
    a, b = make_student(), make_student()

    @audited(STUDENTS)
    def pair(c: Conn, x: ExecutionContext) -> Result[tuple[Any, Any], DataError]:
        return students.find_by_id(c, x, a.id).bind(
            lambda sa: students.find_by_id(c, x, b.id).map(lambda sb: (sa, sb)))

    pair(conn, ctx).unwrap()
    got = records(conn, ctx)
    assert len(got) == 1 and sorted(got[0]["subject_ids"]) == sorted([a.id, b.id])


def test_failure_is_recorded_on_lane_2_and_returned_unchanged(conn, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()
    denied = Failure(Forbidden(entity="HealthRecord", reason="not your school"))
    missing = Failure(NotFound(entity="HealthRecord"))

    @audited(HEALTH_RECORDS)
    @transactional()
    def lookup(c: Conn, x: ExecutionContext, what: str) -> Result[Any, DataError]:
        c.execute("SELECT 1")
        return denied if what == "denied" else missing

    with unit_of_work(conn, ctx):  # the caller's transaction rolls back: lane 2 survives
        assert lookup(conn, ctx, "denied") is denied
        assert lookup(conn, ctx, "missing") is missing
        raise RollbackScope
    got = records(conn, ctx)
    assert [(r["action"], r["success"], r["error_message"]) for r in got] == [
        ("ACCESS_DENIED", False, "FORBIDDEN"), ("READ", False, "NOT_FOUND")]
    assert got[0]["metadata"]["attempted"] == "READ"
    assert s.id not in (got[0]["subject_ids"] or [])


# --- subjects from every result shape ----------------------------------------------------------


@attrs.frozen
class VisitCount:
    """A hand-written aggregate row."""

    student_id: UUID
    visits: int


def test_hand_written_sql_gets_subjects_right(conn, sys_ctx, make_student) -> None:
    s1, s2 = make_student(), make_student()
    r1, r2 = _new_record(conn, sys_ctx, s1.id), _new_record(conn, sys_ctx, s2.id)
    both = [s1.id, s2.id]
    sql = (f"SELECT {', '.join(HEALTH_RECORDS.column_names)} FROM health_records "
           "WHERE student_id = ANY(%s) ORDER BY student_id")

    @audited(HEALTH_RECORDS)
    @transactional()  # applies the nurse's school scope to the hand-written SQL
    def as_rows(c: Conn, x: ExecutionContext) -> Result[list[HealthRecord], DataError]:
        return Success([HealthRecord(*r) for r in c.execute(sql, (both,)).fetchall()])

    @audited(HEALTH_RECORDS)
    @transactional()  # applies the nurse's school scope to the hand-written SQL
    def as_dicts(c: Conn, x: ExecutionContext) -> Result[list[dict[str, Any]], DataError]:
        cur = c.execute("SELECT id, student_id, title FROM health_records WHERE student_id = ANY(%s)",
                        (both,))
        return Success([{"id": r[0], "student_id": r[1], "title": r[2]} for r in cur.fetchall()])

    @audited(HEALTH_RECORDS)
    @transactional()  # applies the nurse's school scope to the hand-written SQL
    def as_page(c: Conn, x: ExecutionContext) -> Result[Page[HealthRecord], DataError]:
        rows = [HealthRecord(*r) for r in c.execute(sql, (both,)).fetchall()]
        return Success(Page.of(rows, 1, 20, len(rows)))

    @audited(HEALTH_RECORDS)
    @transactional()  # applies the nurse's school scope to the hand-written SQL
    def as_keyset(c: Conn, x: ExecutionContext) -> Result[KeysetPage[HealthRecord], DataError]:
        rows = [HealthRecord(*r) for r in c.execute(sql, (both,)).fetchall()]
        return Success(KeysetPage(tuple(rows), None))

    @audited(HEALTH_RECORDS)
    @transactional()  # applies the nurse's school scope to the hand-written SQL
    def as_aggregate(c: Conn, x: ExecutionContext) -> Result[list[VisitCount], DataError]:
        cur = c.execute("SELECT student_id, count(*) FROM health_records WHERE student_id = ANY(%s) "
                        "GROUP BY student_id", (both,))
        return Success([VisitCount(r[0], r[1]) for r in cur.fetchall()])

    @audited(HEALTH_RECORDS, subjects=lambda rows: [r[1] for r in rows],
             ids=lambda rows: [r[0] for r in rows])
    @transactional()  # applies the nurse's school scope to the hand-written SQL
    def as_tuples(c: Conn, x: ExecutionContext) -> Result[list[tuple[Any, ...]], DataError]:
        return Success(c.execute("SELECT id, student_id FROM health_records WHERE student_id = ANY(%s)",
                                 (both,)).fetchall())

    @audited(HEALTH_RECORDS)
    @transactional()  # applies the nurse's school scope to the hand-written SQL
    def with_student(c: Conn, x: ExecutionContext) -> Result[tuple[Any, list[HealthRecord]], DataError]:
        return students.find_by_id(c, x, s1.id).map(lambda st: (st, _records_of(c, s1.id)))

    expected = {
        as_rows: ({r1.id, r2.id}, set(both)), as_dicts: ({r1.id, r2.id}, set(both)),
        as_page: ({r1.id, r2.id}, set(both)), as_keyset: ({r1.id, r2.id}, set(both)),
        as_aggregate: (set(), set(both)), as_tuples: ({r1.id, r2.id}, set(both)),
        with_student: ({r1.id}, {s1.id}),  # the Student row names its student, not a record id
    }
    for fn, (ids, subjects) in expected.items():
        ctx = fresh_ctx()
        fn(conn, ctx).unwrap()
        (got,) = records(conn, ctx)
        assert set(got["entity_ids"]) == ids, fn.__name__
        assert set(got["subject_ids"]) == subjects, fn.__name__
        assert got["subject_student_id"] == (next(iter(subjects)) if len(subjects) == 1 else None)
    ctx = fresh_ctx()
    as_dicts(conn, ctx).unwrap()
    assert records(conn, ctx)[0]["fields_disclosed"] == ["id", "student_id", "title"]


def test_empty_results_disclose_nothing(conn) -> None:
    ctx = fresh_ctx()

    @audited(HEALTH_RECORDS)
    def nothing(c: Conn, x: ExecutionContext) -> Result[list[HealthRecord], DataError]:
        return Success(_records_of(c, uuid.uuid4()))

    assert nothing(conn, ctx) == Success([])
    assert records(conn, ctx) == []


def test_extract_is_pure_and_handles_odd_values() -> None:
    from collections import namedtuple
    from dataclasses import dataclass

    sid = uuid.uuid4()
    Row = namedtuple("Row", ["id", "grade"])

    @dataclass
    class Summary:
        id: UUID
        visits: int

    assert extract(STUDENTS, [Row(sid, "5")]).ids == (sid,)
    assert extract(STUDENTS, (Summary(sid, 2),)).subjects == (sid,)
    assert extract(STUDENTS, [Row(sid, "5")]).fields == ("id", "grade")
    found = extract(STUDENTS, [{"id": sid, "grade": "5"}, None, 3, "text"])
    assert found.ids == (sid,) and found.subjects == (sid,) and found.fields == ("id", "grade")
    assert not extract(STUDENTS, None).anything and not extract(STUDENTS, Page.of([], 1, 20, 0)).anything
    assert extract(STUDENTS, 42).anything  # a scalar about students is still a disclosure


def test_non_phi_entity_reads_are_not_owned(conn, school) -> None:
    from wxdata.schema import SCHOOLS

    ctx = fresh_ctx()

    @audited(SCHOOLS)
    def school_and_students(c: Conn, x: ExecutionContext) -> Result[Any, DataError]:
        return students.find_many(c, x, {"school_id": school["school_id"]})

    school_and_students(conn, ctx).unwrap()
    assert records(conn, ctx) == []  # nothing disclosed (no students yet), nothing owned
    sctx = fresh_ctx()
    students.create(conn, sctx, student_values(school)).unwrap()
    school_and_students(conn, ctx).unwrap()
    assert [(r["action"], r["entity_type"]) for r in records(conn, ctx)] == [("READ", "Student")]


# --- lanes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["outside", "committed", "rolled back", "read only"])
def test_disclosure_lanes(conn, make_student, how) -> None:
    ctx = fresh_ctx()
    s = make_student()

    @audited(STUDENTS)
    def raw(c: Conn, x: ExecutionContext) -> Result[list[dict[str, Any]], DataError]:
        # crud.fetch applies the context to the hand-written statement, in or out of a unit of work
        return crud.fetch(c, x, "SELECT id FROM students WHERE id = %(id)s", {"id": s.id}).map(
            lambda rows: [{"id": r[0]} for r in rows])

    if how == "outside":
        raw(conn, ctx).unwrap()
    else:
        with unit_of_work(conn, ctx, read_only=how == "read only") as scope:
            raw(conn, ctx).unwrap()
            txid = conn.execute("SELECT pg_current_xact_id_if_assigned()::text").fetchone()
            if how == "rolled back":
                raise RollbackScope
        assert scope is not None
    got = records(conn, ctx)
    assert [(r["action"], r["entity_id"]) for r in got] == [("READ", s.id)]
    if how == "committed":
        assert txid is not None and got[0]["txid"] == txid[0]  # lane 1: the same transaction
    if how in ("rolled back", "read only"):
        assert txid is None or got[0]["txid"] != txid[0]  # lane 2


def test_fail_closed_when_the_disclosure_cannot_be_recorded(conn, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()
    cache = {"row": {"id": s.id}}

    @audited(STUDENTS)
    def from_memory(c: Conn, x: ExecutionContext) -> Result[dict[str, Any], DataError]:
        return Success(cache["row"])  # e.g. a cache hit: no statement of its own

    with unit_of_work(conn, ctx):
        with contextlib.suppress(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")  # the transaction is aborted: no INSERT can succeed
        result = from_memory(conn, ctx)
        assert isinstance(result, Failure)  # no record, no data
        raise RollbackScope


# --- changes ----------------------------------------------------------------------------------


def test_hand_written_change_and_its_record_commit_together(conn, admin_conn, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()
    seen: list[Any] = []

    @audited(STUDENTS, AuditAction.UPDATE)
    @transactional(isolation=Isolation.SERIALIZABLE)
    def rename(c: Conn, x: ExecutionContext, sid: UUID, name: str, fail: bool) -> Result[Any, DataError]:
        scope = current_scope(c)
        assert scope is not None
        seen.append((scope.depth, c.execute("SHOW transaction_isolation").fetchone()))
        row = c.execute("UPDATE students SET first_name = %s WHERE id = %s RETURNING id, version",
                        (name, sid)).fetchone()
        if fail:
            return Failure(NotFound(entity="Student"))
        return Success({"id": row[0], "version": row[1]})

    assert isinstance(rename(conn, ctx, s.id, "Grace", True), Failure)
    assert students.find_by_id(conn, fresh_ctx(), s.id).unwrap().first_name == s.first_name
    rename(conn, ctx, s.id, "Grace", False).unwrap()
    assert seen == [(1, ("serializable",))] * 2  # adopted: no savepoint, the declared isolation
    got = records(conn, ctx)
    assert [(r["action"], r["success"], r["entity_id"]) for r in got] == [
        ("UPDATE", False, None), ("UPDATE", True, s.id)]
    row = admin_conn.execute("SELECT xmin::text FROM students WHERE id = %s", (s.id,)).fetchone()
    assert row is not None and int(got[1]["txid"]) % 2**32 == int(row[0])  # same transaction


def test_crud_writes_beneath_are_not_recorded_twice(conn, school) -> None:
    ctx = fresh_ctx()

    @audited(STUDENTS, AuditAction.CREATE)
    def enroll(c: Conn, x: ExecutionContext) -> Result[Any, DataError]:
        return students.create(c, x, student_values(school)).bind(
            lambda st: health_records.create(c, x, {
                "student_id": st.id, "record_type": "CHECKUP", "title": "Intake",
                "description": "ok", "record_date": date(2024, 9, 1)}).map(lambda _: st))

    st = enroll(conn, ctx).unwrap()
    got = records(conn, ctx)
    assert [(r["action"], r["entity_type"]) for r in got] == [
        ("CREATE", "Student"), ("CREATE", "HealthRecord")]
    assert got[0]["entity_id"] == st.id


def test_failed_crud_write_beneath_is_recorded_once(conn, school) -> None:
    ctx = fresh_ctx()
    taken = students.create(conn, fresh_ctx(), student_values(school)).unwrap()

    @audited(STUDENTS, AuditAction.CREATE)
    def enroll(c: Conn, x: ExecutionContext) -> Result[Any, DataError]:
        return students.create(c, x, student_values(school, student_number=taken.student_number))

    assert enroll(conn, ctx).failure().code == "CONFLICT"
    assert [(r["action"], r["success"]) for r in records(conn, ctx)] == [("CREATE", False)]


def test_reads_beneath_a_change_record_themselves(conn, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()

    @audited(STUDENTS, AuditAction.UPDATE)
    def promote(c: Conn, x: ExecutionContext) -> Result[Any, DataError]:
        return students.find_by_id(c, x, s.id).bind(
            lambda st: students.update(c, x, st.id, {"grade": "6"}))

    promote(conn, ctx).unwrap()
    assert [r["action"] for r in records(conn, ctx)] == ["READ", "UPDATE"]


def test_change_retried_at_the_decorator_records_once(conn, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()
    attempts: list[int] = []

    @audited(STUDENTS, AuditAction.UPDATE)
    @transactional(isolation=Isolation.SERIALIZABLE, retries=2)
    def bump(c: Conn, x: ExecutionContext) -> Result[Any, DataError]:
        attempts.append(1)
        c.execute("UPDATE students SET grade = '7' WHERE id = %s", (s.id,))
        if len(attempts) == 1:
            return Failure(Retryable(sqlstate="40001"))
        return Success({"id": s.id})

    bump(conn, ctx).unwrap()
    assert len(attempts) == 2
    assert [(r["action"], r["success"]) for r in records(conn, ctx)] == [("UPDATE", True)]


def test_change_inside_a_rolled_back_unit_of_work_leaves_no_record(conn, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()

    @audited(STUDENTS, AuditAction.UPDATE)
    def touch(c: Conn, x: ExecutionContext) -> Result[Any, DataError]:
        c.execute("UPDATE students SET grade = '8' WHERE id = %s", (s.id,))
        return Success({"id": s.id})

    with unit_of_work(conn, ctx):
        touch(conn, ctx).unwrap()
        raise RollbackScope
    assert records(conn, ctx) == []


def test_audit_switches(conn, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()

    @audited(STUDENTS)
    def get(c: Conn, x: ExecutionContext) -> Result[Any, DataError]:
        return students.find_by_id(c, x, s.id)

    previous = configure(attrs.evolve(settings(), audit_phi_access=False))
    try:
        get(conn, ctx).unwrap()
        log_read(conn, ctx, STUDENTS, [s.id]).unwrap()
    finally:
        configure(previous)
    assert records(conn, ctx) == []
    get(conn, ctx).unwrap()
    assert len(records(conn, ctx)) == 1


# --- explicit log calls -----------------------------------------------------------------------


def test_log_calls_write_through_the_right_lanes(conn, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()
    ids = [uuid.uuid4(), uuid.uuid4()]
    with unit_of_work(conn, ctx):
        log_read(conn, ctx, STUDENTS, [s.id]).unwrap()  # disclosure: replayed
        log_bulk(conn, ctx, STUDENTS, AuditAction.BULK_CREATE, ids).unwrap()  # change: gone
        log_access_denied(conn, ctx, HEALTH_RECORDS, AuditAction.READ, entity_id=s.id).unwrap()
        raise RollbackScope
    got = records(conn, ctx)
    assert sorted((r["action"], r["success"]) for r in got) == [
        ("ACCESS_DENIED", False), ("READ", True)]
    log_bulk(conn, ctx, STUDENTS, AuditAction.BULK_CREATE, ids).unwrap()
    bulk = records(conn, ctx)[-1]
    assert bulk["action"] == "BULK_CREATE" and bulk["entity_ids"] == ids  # not BULK_UPDATE
    with pytest.raises(ValueError, match="BULK"):
        log_bulk(conn, ctx, STUDENTS, AuditAction.UPDATE, ids)


def test_crud_functions_still_record_their_own_reads_without_a_decorator(conn, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()
    crud.find_by_id(conn, ctx, STUDENTS, s.id).unwrap()
    assert [(r["action"], r["entity_id"]) for r in records(conn, ctx)] == [("READ", s.id)]


def test_a_break_glass_call_is_recorded_whatever_the_entity_and_the_switch(
        conn, school, make_student) -> None:
    """Emergency access is accounted for in full: a break-glass call under ``audited`` records its
    READ although schools are not PHI, and with ``AUDIT_PHI_ACCESS`` off an explicit ``log_read``
    and a read under the broken glass still record theirs; the same calls without it do not."""
    from wxdata.schema import SCHOOLS

    s = make_student()
    sid = school["school_id"]

    @audited(SCHOOLS)
    @transactional()
    def get(c: Conn, x: ExecutionContext) -> Result[Any, DataError]:
        row = c.execute("SELECT id, name FROM schools WHERE id = %s", (sid,)).fetchone()
        return Success({"id": row[0], "name": row[1]}) if row else Failure(NotFound("School"))

    plain = fresh_ctx()
    urgent = fresh_ctx().break_glass("Anaphylaxis in the gym, the school nurse is away")
    get(conn, plain).unwrap()
    get(conn, urgent).unwrap()
    assert records(conn, plain) == []
    assert [(r["action"], r["entity_id"]) for r in records(conn, urgent)] == [("READ", sid)]

    plain, urgent = fresh_ctx(), fresh_ctx().break_glass("Seizure in class, records needed now")
    previous = configure(attrs.evolve(settings(), audit_phi_access=False))
    try:
        for x in (plain, urgent):
            log_read(conn, x, STUDENTS, [s.id]).unwrap()
            students.find_by_id(conn, x, s.id).unwrap()
    finally:
        configure(previous)
    assert records(conn, plain) == []
    assert [(r["action"], r["entity_id"]) for r in records(conn, urgent)] == [("READ", s.id)] * 2
    severities = conn.execute("SELECT DISTINCT severity FROM audit_log WHERE request_id = %s",
                              (urgent.request_id,)).fetchall()
    assert severities == [("CRITICAL",)]
