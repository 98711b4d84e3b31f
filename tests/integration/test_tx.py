"""Units of work against the real PostgreSQL: BEGIN options, savepoints, retries, hooks, context,
thread ownership, and the edge cases where a naive implementation reports a commit that never was."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from tests.conftest import student_values
from tests.shells import parametrise
from wxdata import ExecutionContext, Purpose, Role
from wxdata.db import connect_kwargs
from wxdata.domains import students
from wxdata.errors import Conflict, DataError, Internal, Retryable, Unavailable, ValidationFailed
from wxdata.testing import assert_audited
from wxdata.tx import (
    ConcurrentUseError,
    Isolation,
    RollbackScope,
    ScopeError,
    after_commit,
    current_scope,
    on_rollback,
    run_in_scope,
    transactional,
    unit_of_work,
)

parametrise(globals())

Conn = psycopg.Connection[Any]


@pytest.fixture
def probe(admin_conn: Conn) -> Iterator[str]:
    """A throw-away table ``(id serial, k text, v int)`` for this test only (created by the owner,
    usable by the application role)."""
    name = f"tx_probe_{uuid.uuid4().hex[:10]}"
    admin_conn.execute(
        f"CREATE TABLE {name} (id serial PRIMARY KEY, k text NOT NULL, v int NOT NULL)")
    admin_conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO wxdata_app")
    admin_conn.execute(f"GRANT USAGE ON SEQUENCE {name}_id_seq TO wxdata_app")
    yield name
    admin_conn.execute(f"DROP TABLE IF EXISTS {name}")


def _count(conn: Conn, table: str, k: str | None = None) -> int:
    if k is None:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    else:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE k = %s", (k,)).fetchone()
    assert row is not None
    return int(row[0])


def _audit_count(conn: Conn, request_id: str, action: str | None = None) -> int:
    sql = "SELECT count(*) FROM audit_log WHERE request_id = %s"
    args: tuple[Any, ...] = (request_id,)
    if action:
        sql += " AND action = %s"
        args += (action,)
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def _no_sleep(_: float) -> None:
    return None


# --- BEGIN options and the context ------------------------------------------------------------


@pytest.mark.parametrize(
    ("isolation", "shown"),
    [(None, "read committed"), (Isolation.READ_COMMITTED, "read committed"),
     (Isolation.REPEATABLE_READ, "repeatable read"), (Isolation.SERIALIZABLE, "serializable")],
)
def test_isolation_is_applied_at_begin(conn, ctx, isolation, shown) -> None:
    with unit_of_work(conn, ctx, isolation=isolation) as scope:
        row = conn.execute("SHOW transaction_isolation").fetchone()
        assert row == (shown,)
        assert scope.depth == 1
        with unit_of_work(conn, ctx):  # a savepoint keeps the transaction's isolation
            assert conn.execute("SHOW transaction_isolation").fetchone() == (shown,)
    assert conn.execute("SHOW transaction_isolation").fetchone() == ("read committed",)


def test_read_only_and_deferrable_are_applied(conn, ctx) -> None:
    with unit_of_work(conn, ctx, isolation=Isolation.SERIALIZABLE, read_only=True,
                      deferrable=True):
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW transaction_deferrable").fetchone() == ("on",)
    assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)


def test_read_only_scope_rejects_writes_and_records_the_failure(conn, ctx, school) -> None:
    values = student_values(school)

    @transactional(read_only=True)
    def sneaky(c: Conn, x: ExecutionContext) -> Result[Any, DataError]:
        return students.create(c, x, values)

    result = sneaky(conn, ctx)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), Internal) and result.failure().sqlstate == "25006"
    assert students.count(conn, ctx, {"student_number": values["student_number"]}) == Success(0)
    failed = conn.execute(
        "SELECT action, success FROM audit_log WHERE request_id = %s", (ctx.request_id,)
    ).fetchall()
    assert failed == [("CREATE", False)]  # lane 2: the failure survives the rollback


def test_context_is_local_to_the_transaction(conn, ctx) -> None:
    setting = "SELECT current_setting('app.user_id', true), current_setting('app.request_id', true)"
    with unit_of_work(conn, ctx):
        assert conn.execute(setting).fetchone() == (ctx.user_id, ctx.request_id)
    after = conn.execute(setting).fetchone()
    assert after is not None and after[0] in ("", None) and after[1] in ("", None)
    other = ExecutionContext(user_id="u-other", role=Role.VIEWER, purpose=Purpose.OPERATIONS,
                             request_id="req-other")
    with unit_of_work(conn, other):
        assert conn.execute(setting).fetchone() == ("u-other", "req-other")
    row = conn.execute(
        "SELECT setting FROM pg_settings WHERE name = 'app.user_id'").fetchone()
    assert row is None or row[0] in ("", None)  # never a session-level SET


def test_context_is_gone_after_a_rollback_too(conn, ctx) -> None:
    with unit_of_work(conn, ctx):
        raise RollbackScope
    row = conn.execute("SELECT current_setting('app.user_id', true)").fetchone()
    assert row is not None and row[0] in ("", None)


def test_nested_scope_cannot_strengthen_isolation(conn, ctx) -> None:
    with unit_of_work(conn, ctx, isolation=Isolation.REPEATABLE_READ):
        with pytest.raises(ScopeError), unit_of_work(conn, ctx, isolation=Isolation.SERIALIZABLE):
            pass  # pragma: no cover - never entered
        with unit_of_work(conn, ctx, isolation=Isolation.READ_COMMITTED):  # weaker: fine
            pass
    assert current_scope(conn) is None


def test_foreign_transaction_and_non_autocommit_are_refused(conn, ctx, db_url) -> None:
    conn.execute("BEGIN")
    try:
        with pytest.raises(ScopeError), unit_of_work(conn, ctx):
            pass  # pragma: no cover - never entered
    finally:
        conn.execute("ROLLBACK")
    with psycopg.connect(db_url) as manual, pytest.raises(ScopeError), unit_of_work(manual, ctx):
        pass  # pragma: no cover - never entered


# --- savepoints -------------------------------------------------------------------------------


def test_inner_rollback_drops_inner_rows_records_and_hooks(conn, ctx, school) -> None:
    outer_values, inner_values = student_values(school), student_values(school)
    ran: list[str] = []
    with unit_of_work(conn, ctx) as scope:
        outer = students.create(conn, ctx, outer_values).unwrap()
        scope.after_commit(lambda: ran.append("outer"))
        with unit_of_work(conn, ctx) as inner_scope:
            assert inner_scope.depth == 2
            inner = students.create(conn, ctx, inner_values).unwrap()
            inner_scope.after_commit(lambda: ran.append("inner"))
            inner_scope.on_rollback(lambda: ran.append("inner rolled back"))
            raise RollbackScope
    assert ran == ["inner rolled back", "outer"]
    assert students.find_by_id(conn, ctx, outer.id).unwrap().id == outer.id
    assert students.find_by_id(conn, ctx, inner.id).failure().code == "NOT_FOUND"
    created = assert_audited(conn, action="CREATE", request_id=ctx.request_id, count=1)
    assert created[0].entity_id == outer.id


def test_inner_failure_with_transactional_rolls_back_that_level_only(conn, ctx, probe) -> None:
    @transactional()
    def inner(c: Conn, x: ExecutionContext) -> Result[None, DataError]:
        c.execute(f"INSERT INTO {probe} (k, v) VALUES ('inner', 1)")
        return Failure(Conflict(entity="Probe", reason="test"))

    @transactional()
    def outer(c: Conn, x: ExecutionContext) -> Result[str, DataError]:
        c.execute(f"INSERT INTO {probe} (k, v) VALUES ('outer', 1)")
        assert isinstance(inner(c, x), Failure)
        return Success("ok")

    assert outer(conn, ctx) == Success("ok")
    assert _count(conn, probe, "outer") == 1 and _count(conn, probe, "inner") == 0


def test_sql_error_inside_a_savepoint_leaves_the_transaction_usable(conn, ctx, probe) -> None:
    with unit_of_work(conn, ctx):
        conn.execute(f"INSERT INTO {probe} (k, v) VALUES ('before', 1)")
        with pytest.raises(psycopg.errors.DivisionByZero), unit_of_work(conn, ctx):
            conn.execute("SELECT 1/0")
        conn.execute(f"INSERT INTO {probe} (k, v) VALUES ('after', 1)")
    assert _count(conn, probe) == 2


def test_savepoint_names_are_unique_under_deep_and_repeated_nesting(conn, ctx) -> None:
    names: list[str] = []

    def dive(depth: int) -> None:
        if depth == 0:
            return
        with unit_of_work(conn, ctx) as scope:
            savepoint = scope.frames[-1].savepoint
            assert savepoint is not None
            names.append(savepoint)
            dive(depth - 1)
            if depth % 3 == 0:
                raise RollbackScope

    with unit_of_work(conn, ctx):
        for _ in range(4):
            dive(12)
    assert len(names) == 48 and len(set(names)) == 48


Tree = tuple[bool, list[Any]]  # (commits?, children)
trees: st.SearchStrategy[Tree] = st.recursive(
    st.tuples(st.booleans(), st.just([])),
    lambda kids: st.tuples(st.booleans(), st.lists(kids, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees, outer_commits=st.booleans())
def test_random_scope_trees_keep_exactly_the_committed_rows(conn, ctx, probe, tree, outer_commits) -> None:
    """Every level inserts a row and registers hooks; a row (and its after-commit hook) survives
    exactly when its level and every enclosing level committed; rollback hooks run otherwise."""
    expected: set[str] = set()
    committed_hooks: list[str] = []
    rolled_hooks: list[str] = []
    marker = uuid.uuid4().hex[:8]

    def run(node: Tree, path: str, alive: bool) -> None:
        commits, children = node
        with unit_of_work(conn, ctx) as scope:
            key = f"{marker}:{path}"
            conn.execute(f"INSERT INTO {probe} (k, v) VALUES (%s, 0)", (key,))
            scope.after_commit(lambda: committed_hooks.append(key))
            scope.on_rollback(lambda: rolled_hooks.append(key))
            for i, child in enumerate(children):
                run(child, f"{path}.{i}", alive and commits and outer_commits)
            if alive and commits and outer_commits:
                expected.add(key)
            if not commits:
                raise RollbackScope

    with unit_of_work(conn, ctx):
        run(tree, "0", True)
        if not outer_commits:
            raise RollbackScope
    rows = {r[0] for r in conn.execute(f"SELECT k FROM {probe} WHERE k LIKE %s",
                                       (marker + ":%",)).fetchall()}
    assert rows == expected
    assert set(committed_hooks) == expected and len(committed_hooks) == len(expected)
    assert set(rolled_hooks).isdisjoint(expected)
    assert len(rolled_hooks) == len(set(rolled_hooks))
    inserted = 0

    def size(node: Tree) -> int:
        return 1 + sum(size(c) for c in node[1])

    inserted = size(tree)
    assert len(rolled_hooks) + len(committed_hooks) == inserted
    assert current_scope(conn) is None


# --- retries ----------------------------------------------------------------------------------


def test_retry_on_a_real_serialization_failure_at_a_statement(conn, ctx, probe, db_url) -> None:
    attempts: list[int] = []
    sleeps: list[float] = []

    def body() -> Result[int, DataError]:
        attempts.append(1)
        conn.execute(f"SELECT count(*) FROM {probe} WHERE k = 'A'").fetchone()
        if len(attempts) == 1:  # a concurrent transaction reads B, writes A, commits
            with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as other:
                other.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
                other.execute(f"SELECT count(*) FROM {probe} WHERE k = 'B'").fetchone()
                other.execute(f"INSERT INTO {probe} (k, v) VALUES ('A', 2)")
                other.execute("COMMIT")
        conn.execute(f"INSERT INTO {probe} (k, v) VALUES ('B', 1)")
        return Success(len(attempts))

    result = run_in_scope(conn, ctx, body, isolation=Isolation.SERIALIZABLE, retries=3,
                          sleep=sleeps.append)
    assert result == Success(2)
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 0.01
    assert _count(conn, probe, "A") == 1 and _count(conn, probe, "B") == 1


def test_serialization_failure_at_commit_is_retried(conn, ctx, probe, db_url) -> None:
    attempts: list[int] = []
    rolled: list[int] = []

    def body() -> Result[int, DataError]:
        attempts.append(1)
        scope = current_scope(conn)
        assert scope is not None
        scope.on_rollback(lambda: rolled.append(len(attempts)))
        conn.execute(f"SELECT count(*) FROM {probe} WHERE k = 'A'").fetchone()
        if len(attempts) == 1:  # both write, the other commits first: we fail at COMMIT
            other = psycopg.connect(db_url, autocommit=True, **connect_kwargs())
            other.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            other.execute(f"SELECT count(*) FROM {probe} WHERE k = 'B'").fetchone()
            other.execute(f"INSERT INTO {probe} (k, v) VALUES ('A', 2)")
            conn.execute(f"INSERT INTO {probe} (k, v) VALUES ('B', 1)")
            other.execute("COMMIT")
            other.close()
        else:
            conn.execute(f"INSERT INTO {probe} (k, v) VALUES ('B', 1)")
        return Success(len(attempts))

    result = run_in_scope(conn, ctx, body, isolation=Isolation.SERIALIZABLE, sleep=_no_sleep)
    assert result == Success(2)
    assert rolled == [1]  # the failed COMMIT ran the rollback hooks of attempt 1
    assert _count(conn, probe, "B") == 1


def test_retries_are_bounded(conn, ctx) -> None:
    attempts: list[int] = []

    def body() -> Result[None, DataError]:
        attempts.append(1)
        return Failure(Retryable(sqlstate="40P01"))

    result = run_in_scope(conn, ctx, body, retries=2, sleep=_no_sleep)
    assert result == Failure(Retryable(sqlstate="40P01"))
    assert len(attempts) == 3


@pytest.mark.parametrize(
    "outcome",
    [Failure(Conflict(entity="X", reason="dup")), Failure(Unavailable(reason="down")),
     "unique_violation", "value_error"],
)
def test_non_retryable_outcomes_never_retry(conn, ctx, probe, outcome) -> None:
    attempts: list[int] = []

    def body() -> Result[None, DataError]:
        attempts.append(1)
        if outcome == "unique_violation":
            conn.execute(f"INSERT INTO {probe} (id, k, v) VALUES (1, 'x', 1), (1, 'y', 1)")
        if outcome == "value_error":
            raise ValueError("a programming error")
        assert isinstance(outcome, Failure)
        return outcome

    if outcome == "value_error":
        with pytest.raises(ValueError, match="programming error"):
            run_in_scope(conn, ctx, body, sleep=_no_sleep)
    else:
        result = run_in_scope(conn, ctx, body, sleep=_no_sleep)
        assert isinstance(result, Failure) and not isinstance(result.failure(), Retryable)
    assert len(attempts) == 1
    assert current_scope(conn) is None


def test_nested_retryable_dooms_the_outermost_scope(conn, ctx, probe) -> None:
    attempts: list[int] = []

    @transactional()
    def flaky(c: Conn, x: ExecutionContext) -> Result[None, DataError]:
        return Failure(Retryable(sqlstate="40001"))

    def body() -> Result[str, DataError]:
        attempts.append(1)
        conn.execute(f"INSERT INTO {probe} (k, v) VALUES ('doomed', 1)")
        flaky(conn, ctx)  # the caller ignores the Failure: the transaction is condemned anyway
        return Success("swallowed")

    result = run_in_scope(conn, ctx, body, retries=1, sleep=_no_sleep)
    assert result == Failure(Retryable(sqlstate="40001"))
    assert len(attempts) == 2 and _count(conn, probe, "doomed") == 0


def test_deferred_constraint_failing_at_commit_is_a_failure_not_retried(conn, admin_conn, ctx
                                                                         ) -> None:
    table = f"tx_deferred_{uuid.uuid4().hex[:8]}"
    admin_conn.execute(f"CREATE TABLE {table} (k int, CONSTRAINT {table}_k_key UNIQUE (k) "
                       "DEFERRABLE INITIALLY DEFERRED)")
    admin_conn.execute(f"GRANT SELECT, INSERT ON {table} TO wxdata_app")
    attempts: list[int] = []
    hooks: list[str] = []
    try:
        def body() -> Result[None, DataError]:
            attempts.append(1)
            after_commit(conn, lambda: hooks.append("committed"))
            on_rollback(conn, lambda: hooks.append("rolled back"))
            conn.execute(f"INSERT INTO {table} VALUES (1), (1)")  # accepted until COMMIT
            return Success(None)

        result = run_in_scope(conn, ctx, body, sleep=_no_sleep)
        assert isinstance(result, Failure) and isinstance(result.failure(), Conflict)
        assert len(attempts) == 1 and hooks == ["rolled back"]
        assert _count(conn, table) == 0 and current_scope(conn) is None
    finally:
        admin_conn.execute(f"DROP TABLE {table}")


@pytest.fixture(params=["at commit", "at the statement"])
def refusing_audit(request: pytest.FixtureRequest, admin_conn: Conn) -> Iterator[str]:
    """A trigger on audit_log refusing every record whose request id starts with the prefix it
    yields: as the transaction commits (a deferred constraint trigger) or as the record is
    written."""
    name = f"tx_refuse_{uuid.uuid4().hex[:10]}"
    prefix = f"req-{name}-"
    kind = ("CONSTRAINT TRIGGER {n} AFTER INSERT ON audit_log DEFERRABLE INITIALLY DEFERRED"
            if request.param == "at commit" else "TRIGGER {n} AFTER INSERT ON audit_log")
    admin_conn.execute(
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.request_id LIKE '{prefix}%' THEN RAISE EXCEPTION 'record refused'; END IF;"
        " RETURN NULL; END $$")
    admin_conn.execute(f"CREATE {kind.format(n=name)} FOR EACH ROW EXECUTE FUNCTION {name}()")
    try:
        yield prefix
    finally:
        admin_conn.execute(f"DROP TRIGGER {name} ON audit_log")
        admin_conn.execute(f"DROP FUNCTION {name}()")


def test_a_read_whose_record_is_refused_fails_closed_and_leaves_the_connection_usable(
        conn, ctx, school, make_student, refusing_audit) -> None:
    s = make_student()
    refused = ExecutionContext(user_id="u-nurse-1", role=Role.NURSE, purpose=Purpose.TREATMENT,
                               request_id=f"{refusing_audit}{uuid.uuid4().hex[:8]}",
                               school_ids={school["school_id"]})
    backend = conn.info.backend_pid
    for call in (lambda c: students.find_by_id(conn, c, s.id),
                 lambda c: students.find_many(conn, c, {"school_id": school["school_id"]})):
        for _ in range(5):  # psycopg reads an error at the Sync in more than one way
            result = call(refused)
            assert isinstance(result, Failure), result
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        found = call(ctx)
        assert isinstance(found, Success) and found.unwrap(), found
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.info.backend_pid == backend  # the same connection served every call
    assert _audit_count(conn, refused.request_id) == 0


def test_an_aborted_transaction_is_never_reported_committed(conn, ctx, probe) -> None:
    hooks: list[str] = []

    def body() -> Result[str, DataError]:
        conn.execute(f"INSERT INTO {probe} (k, v) VALUES ('lost', 1)")
        after_commit(conn, lambda: hooks.append("committed"))
        with contextlib.suppress(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")  # swallowed: PostgreSQL would answer COMMIT with ROLLBACK
        return Success("looks fine")

    result = run_in_scope(conn, ctx, body, sleep=_no_sleep)
    assert result == Failure(Internal(sqlstate="25P02"))
    assert hooks == [] and _count(conn, probe, "lost") == 0

    def swallow_error() -> None:
        with contextlib.suppress(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")

    def nested_then_outer() -> None:
        with unit_of_work(conn, ctx):
            with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                run_nested(swallow_error)
            conn.execute(f"INSERT INTO {probe} (k, v) VALUES ('usable', 1)")  # savepoint restored
            swallow_error()  # swallowed again, now at the outermost level

    def run_nested(inside: Callable[[], None]) -> None:
        with unit_of_work(conn, ctx):
            inside()

    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        nested_then_outer()
    assert _count(conn, probe, "usable") == 0


# --- hooks ------------------------------------------------------------------------------------


def test_after_commit_hooks_run_after_commit_only(conn, ctx, probe, db_url) -> None:
    seen: list[int] = []
    observer = psycopg.connect(db_url, autocommit=True, **connect_kwargs())

    def visible() -> None:  # runs after COMMIT returned: another session sees the row
        seen.append(_count(observer, probe, "hooked"))

    try:
        with unit_of_work(conn, ctx):
            conn.execute(f"INSERT INTO {probe} (k, v) VALUES ('hooked', 1)")
            after_commit(conn, visible)
            assert seen == []
        assert seen == [1]
        with unit_of_work(conn, ctx):
            after_commit(conn, visible)
            raise RollbackScope
        assert seen == [1]
        after_commit(conn, visible)  # no unit of work: runs at once
        assert seen == [1, 1]
    finally:
        observer.close()


def test_a_failing_hook_does_not_change_the_outcome(conn, ctx, probe) -> None:
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("hook failed")

    with unit_of_work(conn, ctx):
        conn.execute(f"INSERT INTO {probe} (k, v) VALUES ('kept', 1)")
        after_commit(conn, boom)
        after_commit(conn, lambda: ran.append("second"))
    assert ran == ["second"] and _count(conn, probe, "kept") == 1


def test_transactional_composes_crud_in_one_transaction(conn, ctx, school) -> None:
    a_values, b_values = student_values(school), student_values(school)
    b_values["student_number"] = a_values["student_number"]  # the second create conflicts

    @transactional()
    def enroll_two(c: Conn, x: ExecutionContext) -> Result[Any, DataError]:
        return students.create(c, x, a_values).bind(lambda _: students.create(c, x, b_values))

    result = enroll_two(conn, ctx)
    assert isinstance(result, Failure) and isinstance(result.failure(), Conflict)
    assert students.count(conn, ctx, {"student_number": a_values["student_number"]}) == Success(0)
    rows = conn.execute("SELECT action, success FROM audit_log WHERE request_id = %s",
                        (ctx.request_id,)).fetchall()
    assert rows == [("CREATE", False)]  # the first create's record rolled back with it


def test_audit_option_records_commit_and_rollback(conn, ctx, probe) -> None:
    @transactional(audit=True)
    def work(c: Conn, x: ExecutionContext, fail: bool) -> Result[None, DataError]:
        c.execute(f"INSERT INTO {probe} (k, v) VALUES ('audited', 1)")
        return Failure(ValidationFailed(entity="Probe")) if fail else Success(None)

    assert work(conn, ctx, False) == Success(None)
    assert isinstance(work(conn, ctx, True), Failure)
    rows = conn.execute(
        "SELECT action, success, entity_id, metadata ? 'unit_id', transaction_id::text "
        "FROM audit_log WHERE request_id = %s ORDER BY seq", (ctx.request_id,)).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("TRANSACTION_COMMIT", True, None, True), ("TRANSACTION_ROLLBACK", False, None, True)]


# --- one connection, one thread ---------------------------------------------------------------


@pytest.mark.sync_only
def test_concurrent_use_from_another_thread_is_refused(conn, ctx, make_student) -> None:
    s = make_student()
    errors: list[BaseException] = []
    outcomes: list[Any] = []

    def intruder(action: Callable[[], Any]) -> None:
        try:
            outcomes.append(action())
        except BaseException as exc:
            errors.append(exc)

    def enter() -> None:
        with unit_of_work(conn, ctx):
            pass  # pragma: no cover - refused before

    with unit_of_work(conn, ctx):
        for action in (lambda: students.find_by_id(conn, ctx, s.id), enter,
                       lambda: students.count(conn, ctx)):
            t = threading.Thread(target=intruder, args=(action,))
            t.start()
            t.join()
    assert len(errors) == 3 and all(isinstance(e, ConcurrentUseError) for e in errors)
    assert outcomes == []
    t = threading.Thread(target=intruder, args=(lambda: students.count(conn, ctx),))
    t.start()
    t.join()
    assert len(errors) == 3 and len(outcomes) == 1  # once the scope is closed, any thread may


def test_scope_registry_is_cleaned_after_exceptions(conn, ctx) -> None:
    with pytest.raises(KeyError), unit_of_work(conn, ctx):
        raise KeyError("x")
    assert current_scope(conn) is None
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
