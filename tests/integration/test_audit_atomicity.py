"""A committed change always has its audit record; a rolled-back change leaves none (A2); failures,
denials and disclosures survive a rollback on lane 2 (A3, A1). Real PostgreSQL, real rollbacks,
a real killed backend, and a randomised stateful workload."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from returns.result import Failure, Result, Success

from tests.conftest import student_values
from tests.shells import parametrise
from wxdata import ExecutionContext, Purpose, Role
from wxdata.db import connect_kwargs
from wxdata.domains import health_records, students
from wxdata.errors import Conflict, DataError, Unavailable, ValidationFailed
from wxdata.tx import RollbackScope, current_scope, run_in_scope, transactional, unit_of_work

parametrise(globals())

Conn = psycopg.Connection[Any]
WRITES = ("CREATE", "UPDATE", "DELETE", "RESTORE")


def records(conn: Conn, ctx: ExecutionContext) -> list[tuple[Any, ...]]:
    """(action, entity_id, success, error_message) of the context's records, oldest first."""
    return conn.execute(
        "SELECT action, entity_id, success, error_message FROM audit_log WHERE request_id = %s "
        "ORDER BY seq", (ctx.request_id,)).fetchall()


def fresh_ctx(school: dict[str, uuid.UUID], **kw: Any) -> ExecutionContext:
    """A nurse of ``school`` with a request id of her own."""
    base: dict[str, Any] = dict(user_id="u-nurse-7", role=Role.NURSE, purpose=Purpose.TREATMENT,
                                request_id=f"req-{uuid.uuid4().hex[:12]}",
                                school_ids={school["school_id"]})
    base.update(kw)
    return ExecutionContext(**base)


def _exists(admin: Conn, number: str) -> bool:
    """Whether a student with ``number`` exists in any school (asked as the superuser)."""
    row = admin.execute("SELECT count(*) FROM students WHERE student_number = %s", (number,)).fetchone()
    return bool(row and row[0])


# --- a rolled-back change leaves nothing ------------------------------------------------------


def test_exception_after_a_write_leaves_neither_row_nor_record(conn, admin_conn, ctx, school
                                                                ) -> None:
    values = student_values(school)

    def crash() -> None:
        with unit_of_work(conn, ctx):
            assert isinstance(students.create(conn, ctx, values), Success)
            raise RuntimeError("crash after the write")

    with pytest.raises(RuntimeError):
        crash()
    assert not _exists(admin_conn, values["student_number"])
    assert records(conn, ctx) == []


@pytest.mark.parametrize("where", ["outermost", "savepoint"])
def test_failure_after_writes_leaves_neither_rows_nor_records(conn, admin_conn, ctx, make_student,
                                                             where) -> None:
    s = make_student()
    values = {"student_id": s.id, "record_type": "ILLNESS", "title": "Flu", "description": "fever",
              "record_date": date(2024, 1, 5)}

    @transactional()
    def work(c: Conn, x: ExecutionContext) -> Result[None, DataError]:
        rec = health_records.create(c, x, values).unwrap()
        students.update(c, x, s.id, {"grade": "9"}).unwrap()
        health_records.delete(c, x, rec.id).unwrap()
        return Failure(Conflict(entity="Workflow", reason="changed my mind"))

    if where == "outermost":
        assert isinstance(work(conn, ctx), Failure)
    else:
        with unit_of_work(conn, ctx):
            assert isinstance(work(conn, ctx), Failure)
    assert students.find_by_id(conn, ctx, s.id).unwrap().grade == s.grade
    assert admin_conn.execute("SELECT count(*) FROM health_records WHERE student_id = %s",
                              (s.id,)).fetchone() == (0,)
    assert [r for r in records(conn, ctx) if r[0] in WRITES] == []


def _server_pid(conn: psycopg.Connection[Any]) -> int:
    """The server process running the open transaction (behind a pooler, not the client's key)."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.sync_only
def test_killed_connection_mid_transaction_leaves_no_partial_state(db_url, conn, admin_conn, school
                                                                   ) -> None:
    ctx = fresh_ctx(school)
    values = student_values(school)
    victim = psycopg.connect(db_url, autocommit=True, **connect_kwargs())
    created: list[uuid.UUID] = []

    def body() -> Result[Any, DataError]:
        created.append(students.create(victim, ctx, values).unwrap().id)
        admin_conn.execute("SELECT pg_terminate_backend(%s)", (_server_pid(victim),))
        return students.update(victim, ctx, created[0], {"grade": "6"})

    try:
        result = run_in_scope(victim, ctx, body)
        assert isinstance(result, Failure) and isinstance(result.failure(), Unavailable)
        assert current_scope(victim) is None and victim.closed
    finally:
        victim.close()
    assert not _exists(admin_conn, values["student_number"])
    assert [r for r in records(conn, ctx) if r[2]] == []  # no success record for the lost work
    assert conn.execute("SELECT count(*) FROM audit_log WHERE %s = ANY(entity_ids) AND success",
                        (created[0],)).fetchone() == (0,)


@pytest.mark.sync_only  # kills its own sync connection's backend; async: test_aio.py
def test_killed_connection_inside_a_plain_unit_of_work(db_url, conn, admin_conn, school) -> None:
    ctx = fresh_ctx(school)
    values = student_values(school)
    victim = psycopg.connect(db_url, autocommit=True, **connect_kwargs())

    def work() -> None:
        with unit_of_work(victim, ctx), unit_of_work(victim, ctx):
            students.create(victim, ctx, values).unwrap()
            admin_conn.execute("SELECT pg_terminate_backend(%s)", (_server_pid(victim),))
            victim.execute("SELECT 1")

    try:
        with pytest.raises(psycopg.OperationalError):
            work()
        assert current_scope(victim) is None
    finally:
        victim.close()
    assert not _exists(admin_conn, values["student_number"])
    assert records(conn, ctx) == []


# --- lane 2 survives the rollback -------------------------------------------------------------


def test_failed_write_is_recorded_although_its_transaction_rolled_back(conn, school) -> None:
    ctx = fresh_ctx(school)
    first = student_values(school)
    with unit_of_work(conn, ctx):
        ok = students.create(conn, ctx, first).unwrap()
        dup = students.create(conn, ctx, student_values(school, student_number=first["student_number"]))
        assert isinstance(dup.failure(), Conflict)
        bad = students.update(conn, ctx, ok.id, {"grade": 7})
        assert isinstance(bad.failure(), ValidationFailed)
        raise RollbackScope
    assert records(conn, ctx) == [("CREATE", None, False, "CONFLICT"),
                                  ("UPDATE", ok.id, False, "VALIDATION_FAILED")]


def test_denied_write_is_recorded_as_access_denied(db_url, conn, admin_conn, sys_ctx) -> None:
    tag = uuid.uuid4().hex[:8]
    d = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                     (f"AD-{tag}",)).fetchone()
    own = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) "
                       "RETURNING id", (f"AS-{tag}", d[0])).fetchone()
    other = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) "
                         "RETURNING id", (f"AO-{tag}", d[0])).fetchone()
    ctx = fresh_ctx({"school_id": own[0]})
    with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as app:
        values = student_values({"school_id": other[0], "district_id": d[0]})
        with unit_of_work(app, ctx):
            result = students.create(app, ctx, values)
            assert result.failure().code == "FORBIDDEN"
            raise RollbackScope  # the failed statement aborted the transaction
        assert students.create(app, ctx, values).failure().code == "FORBIDDEN"  # no scope
    assert records(conn, ctx) == [("ACCESS_DENIED", None, False, "FORBIDDEN")] * 2
    assert not _exists(admin_conn, values["student_number"])


@pytest.mark.parametrize("how", ["rolled back", "savepoint rolled back", "committed", "read only"])
def test_phi_read_is_recorded_exactly_once_whatever_the_transaction_does(conn, school, make_student,
                                                                          how) -> None:
    ctx = fresh_ctx(school)
    s = make_student()
    if how == "rolled back":
        with unit_of_work(conn, ctx):
            assert students.find_by_id(conn, ctx, s.id).unwrap().id == s.id
            raise RollbackScope
    elif how == "savepoint rolled back":
        with unit_of_work(conn, ctx), unit_of_work(conn, ctx):
            students.find_by_id(conn, ctx, s.id).unwrap()
            raise RollbackScope
    elif how == "committed":
        with unit_of_work(conn, ctx):
            students.find_by_id(conn, ctx, s.id).unwrap()
    else:
        with unit_of_work(conn, ctx, read_only=True):
            students.find_by_id(conn, ctx, s.id).unwrap()
    assert records(conn, ctx) == [("READ", s.id, True, None)]


def test_read_replayed_when_the_commit_itself_fails(conn, admin_conn, school, make_student) -> None:
    ctx = fresh_ctx(school)
    s = make_student()
    table = f"aud_deferred_{uuid.uuid4().hex[:8]}"
    admin_conn.execute(f"CREATE TABLE {table} (k int, CONSTRAINT {table}_k UNIQUE (k) "
                       "DEFERRABLE INITIALLY DEFERRED)")
    admin_conn.execute(f"GRANT INSERT ON {table} TO wxdata_app")
    try:
        def body() -> Result[Any, DataError]:
            conn.execute(f"INSERT INTO {table} VALUES (1), (1)")
            return students.find_by_id(conn, ctx, s.id)

        assert isinstance(run_in_scope(conn, ctx, body), Failure)
    finally:
        admin_conn.execute(f"DROP TABLE {table}")
    assert records(conn, ctx) == [("READ", s.id, True, None)]


# --- a randomised workload --------------------------------------------------------------------

MODES = ("autocommit", "commit", "rollback", "savepoint commit", "savepoint rollback",
         "failure after")


class AuditedWorkload(RuleBasedStateMachine):
    """Creates, updates, deletes and restores in committed and rolled-back units of work and
    savepoints; after every step, each committed change has exactly one success record
    (entity id + action) and rolled-back changes have none."""

    conn: Conn
    school: dict[str, uuid.UUID]

    def __init__(self) -> None:
        super().__init__()
        self.ctx = fresh_ctx(self.school)
        self.expected: Counter[tuple[uuid.UUID, str]] = Counter()
        self.live: dict[uuid.UUID, str] = {}  # id -> entity kind, live rows
        self.deleted: dict[uuid.UUID, str] = {}
        anchor = students.create(self.conn, self.ctx, student_values(self.school)).unwrap()
        self.anchor = anchor.id
        self.expected[(anchor.id, "CREATE")] += 1

    def _apply(self, mode: str, ops: list[Any]) -> bool:
        """Run ``ops`` (callables -> Result) in ``mode``; True when their effects committed."""
        conn, ctx = self.conn, self.ctx

        def run_all() -> Result[Any, DataError]:
            for op in ops:
                result = op()
                assert isinstance(result, Success), result
            return Success(None)

        if mode == "autocommit":
            run_all()
            return True
        if mode == "failure after":
            def body() -> Result[Any, DataError]:
                run_all()
                return Failure(Conflict(entity="Workload", reason="abandon"))
            assert isinstance(run_in_scope(conn, ctx, body), Failure)
            return False
        with unit_of_work(conn, ctx):
            if mode.startswith("savepoint"):
                with unit_of_work(conn, ctx):
                    run_all()
                    if mode == "savepoint rollback":
                        raise RollbackScope
            else:
                run_all()
                if mode == "rollback":
                    raise RollbackScope
        return mode in ("commit", "savepoint commit")

    @rule(mode=st.sampled_from(MODES), kinds=st.lists(st.sampled_from(["student", "record"]),
                                                     min_size=1, max_size=3))
    def create(self, mode: str, kinds: list[str]) -> None:
        made: list[tuple[uuid.UUID, str]] = []

        def op(kind: str) -> Any:
            def run() -> Result[Any, DataError]:
                if kind == "student":
                    r = students.create(self.conn, self.ctx, student_values(self.school))
                else:
                    r = health_records.create(self.conn, self.ctx, {
                        "student_id": self.anchor, "record_type": "CHECKUP", "title": "t",
                        "description": "d", "record_date": date(2024, 1, 2)})
                if isinstance(r, Success):
                    made.append((r.unwrap().id, kind))
                return r
            return run

        if self._apply(mode, [op(k) for k in kinds]):
            for rid, kind in made:
                self.live[rid] = kind
                self.expected[(rid, "CREATE")] += 1

    def _pick(self, pool: dict[uuid.UUID, str], data: st.DataObject) -> tuple[uuid.UUID, str]:
        rid = data.draw(st.sampled_from(list(pool)))  # insertion order: same choices, same row
        return rid, pool[rid]

    @precondition(lambda self: self.live)
    @rule(mode=st.sampled_from(MODES), data=st.data())
    def update(self, mode: str, data: st.DataObject) -> None:
        rid, kind = self._pick(self.live, data)
        if kind == "student":
            grade = data.draw(st.sampled_from(["1", "2", "3", "K"]))
            op = lambda: students.update(self.conn, self.ctx, rid, {"grade": grade})  # noqa: E731
        else:
            title = data.draw(st.sampled_from(["a", "b", "c"]))
            op = lambda: health_records.update(self.conn, self.ctx, rid, {"title": title})  # noqa: E731
        if self._apply(mode, [op]):
            self.expected[(rid, "UPDATE")] += 1

    @precondition(lambda self: self.live)
    @rule(mode=st.sampled_from(MODES), data=st.data())
    def delete(self, mode: str, data: st.DataObject) -> None:
        rid, kind = self._pick(self.live, data)
        ops = students if kind == "student" else health_records
        if self._apply(mode, [lambda: ops.delete(self.conn, self.ctx, rid)]):
            del self.live[rid]
            self.deleted[rid] = kind
            self.expected[(rid, "DELETE")] += 1

    @precondition(lambda self: self.deleted)
    @rule(mode=st.sampled_from(MODES), data=st.data())
    def restore(self, mode: str, data: st.DataObject) -> None:
        rid, kind = self._pick(self.deleted, data)
        ops = students if kind == "student" else health_records
        if self._apply(mode, [lambda: ops.restore(self.conn, self.ctx, rid)]):
            del self.deleted[rid]
            self.live[rid] = kind
            self.expected[(rid, "RESTORE")] += 1

    @invariant()
    def every_committed_change_has_exactly_one_record(self) -> None:
        rows = self.conn.execute(
            "SELECT entity_id, action FROM audit_log WHERE request_id = %s AND success "
            "AND action = ANY(%s)", (self.ctx.request_id, list(WRITES))).fetchall()
        assert Counter((r[0], r[1]) for r in rows) == self.expected
        failures = self.conn.execute(
            "SELECT count(*) FROM audit_log WHERE request_id = %s AND NOT success",
            (self.ctx.request_id,)).fetchone()
        assert failures == (0,)
        assert current_scope(self.conn) is None


@pytest.fixture
def workload(conn: Conn, school: dict[str, uuid.UUID]) -> type[AuditedWorkload]:
    AuditedWorkload.conn = conn
    AuditedWorkload.school = school
    return AuditedWorkload


def test_randomised_workload_keeps_audit_and_data_in_step(workload) -> None:
    run_state_machine_as_test(
        workload,
        settings=settings(max_examples=12, stateful_step_count=10, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow]),
    )


_KINDS = ("live", "soft-deleted", "other school", "absent")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(reads=st.lists(st.tuples(st.sampled_from(_KINDS), st.booleans()), min_size=1,
                      max_size=6))
def test_a_by_id_read_records_exactly_the_row_it_returns(conn, sys_ctx, school, reads) -> None:
    """A by-id read's record rides in its statement: whatever the row (live, soft-deleted, in
    another school, absent) and ``include_deleted``, a READ record names the row's id and its
    student exactly when the row is returned, and none is written when it is not."""
    other = {"school_id": None, "district_id": school["district_id"]}
    other["school_id"] = conn.execute(
        "INSERT INTO schools (name, code, district_id) VALUES (%s, %s, %s) RETURNING id",
        (f"Other {uuid.uuid4().hex[:8]}", f"O-{uuid.uuid4().hex[:8]}", school["district_id"]),
    ).fetchone()[0]
    mine = students.create(conn, sys_ctx, student_values(school)).unwrap()
    theirs = students.create(conn, sys_ctx, student_values(other)).unwrap()

    def record(student_id: uuid.UUID) -> uuid.UUID:
        return health_records.create(conn, sys_ctx, {
            "student_id": student_id, "record_type": "ILLNESS", "title": "Flu",
            "description": "fever", "record_date": date(2024, 1, 2)}).unwrap().id

    rows = {"live": record(mine.id), "soft-deleted": record(mine.id),
            "other school": record(theirs.id), "absent": uuid.uuid4()}
    health_records.delete(conn, sys_ctx, rows["soft-deleted"]).unwrap()
    ctx = fresh_ctx(school)
    expected = []
    for kind, include_deleted in reads:
        got = health_records.find_by_id(conn, ctx, rows[kind], include_deleted=include_deleted)
        returned = kind == "live" or (kind == "soft-deleted" and include_deleted)
        assert isinstance(got, Success) == returned, (kind, include_deleted)
        if returned:
            assert got.unwrap().id == rows[kind] and got.unwrap().student_id == mine.id
            expected.append((rows[kind], [rows[kind]], mine.id, [mine.id]))
    assert conn.execute(
        "SELECT entity_id, entity_ids, subject_student_id, subject_ids FROM audit_log "
        "WHERE request_id = %s AND action = 'READ' ORDER BY seq", (ctx.request_id,)
    ).fetchall() == expected
