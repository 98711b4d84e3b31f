"""No PHI in logs: every logger at DEBUG over a workload that makes every kind of failure happen.

A sentinel value is seeded into student rows (student number, first name) and into the text of
exceptions raised by hooks and listeners. PostgreSQL quotes it back in its errors (``DETAIL: Key
(student_number)=(...) already exists``, ``Failing row contains (...)``); the workload checks that
it does, so the test attacks for real. Then no log record of any logger (wxdata's, psycopg's,
psycopg_pool's) may contain it: not in the message, the arguments, ``exc_text`` or a formatted
traceback. The guard on the libraries' loggers alone is checked in
``tests/unit/test_phi_safe_logging.py``.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import attrs
import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from returns.result import Failure, Success

from tests.conftest import student_values
from tests.log_capture import Capture, capture_all, texts
from wxdata import ExecutionContext, Purpose, Role
from wxdata import config as wx_config
from wxdata.audit.lanes import close_lanes, route_lane
from wxdata.cache.factory import build_cache
from wxdata.cache.invalidation import unsubscribe
from wxdata.db import create_pool
from wxdata.domains import students
from wxdata.observability import QueryLog
from wxdata.safelog import describe
from wxdata.tx import Isolation, current_scope, run_in_scope, unit_of_work
from wxdata.tx.events import add_write_listener, remove_write_listener


@pytest.fixture
def captured() -> Iterator[Capture]:
    """Root and the libraries' loggers at DEBUG, every record kept."""
    with capture_all() as handler:
        yield handler


def _raise(exc: BaseException) -> None:
    raise exc


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_failure_kind_logs_no_phi(
    captured: Capture, db_url: str, conn: psycopg.Connection[Any],
    admin_conn: psycopg.Connection[Any], sys_ctx: ExecutionContext,
    school: dict[str, uuid.UUID],
) -> None:
    """The full workload (see the module docstring); then no record holds the sentinel."""
    sentinel = f"ZQPHI{uuid.uuid4().hex[:12].upper()}"
    ctx = ExecutionContext(user_id="u-nurse-log", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           request_id="req-log", school_ids={school["school_id"]})
    seeded = students.create(conn, sys_ctx, student_values(
        school, student_number=sentinel, first_name=sentinel)).unwrap()
    raw_insert = (
        "INSERT INTO students (student_number, first_name, last_name, date_of_birth, grade, "
        "gender, enrollment_date, school_id, district_id) "
        "VALUES (%s, %s, 'L', %s, %s, %s, %s, %s, %s)"
    )

    def insert(c: psycopg.Connection[Any], number: str, gender: str = "FEMALE",
               school_id: Any = None, grade: str | None = "5") -> None:
        c.execute(raw_insert, (number, sentinel, date(2014, 1, 1), grade, gender,
                               date(2020, 9, 1), school_id or school["school_id"],
                               school["district_id"]))

    def fresh() -> str:
        return f"N-{uuid.uuid4().hex[:10]}"

    # 0. The attack is real: PostgreSQL quotes the sentinel in the errors it raises (asked as
    #    the owner: the application role's bare INSERT is refused by row security first).
    with pytest.raises(psycopg.errors.UniqueViolation) as unique:
        insert(admin_conn, sentinel)
    with pytest.raises(psycopg.errors.NotNullViolation) as missing:  # "Failing row contains"
        insert(admin_conn, fresh(), grade=None)
    assert sentinel in str(unique.value) and sentinel in str(missing.value)
    assert sentinel not in describe(unique.value) + describe(missing.value)

    # 1. Unique violations through the generic functions, inside and outside a unit of work,
    #    on a traced pool that logs every failed statement.
    duplicate = student_values(school, student_number=sentinel, first_name=sentinel)
    assert students.create(conn, sys_ctx, duplicate).failure().code == "CONFLICT"
    traced = create_pool(db_url, min_size=0, max_size=1, query_log=QueryLog(slow_ms=0.0))
    try:
        with traced.connection() as c:
            inside = run_in_scope(c, sys_ctx, lambda: students.create(c, sys_ctx, duplicate))
            assert inside.failure().code == "CONFLICT"
            bad = students.create(c, sys_ctx, student_values(school, first_name=sentinel,
                                                             school_id=uuid.uuid4()))
            assert isinstance(bad, Failure)
    finally:
        traced.close()

    # 2. Failing after-commit hooks: unique, not-null, check and FK violations, an exception
    #    quoting PHI
    #    (the hooks' bare INSERTs go through the owner, whose errors quote the values).
    with unit_of_work(conn, sys_ctx) as scope:
        scope.after_commit(lambda: insert(admin_conn, sentinel))
        scope.after_commit(lambda: insert(admin_conn, fresh(), grade=None))
        scope.after_commit(lambda: insert(admin_conn, fresh(), gender="X"))
        scope.after_commit(lambda: insert(admin_conn, fresh(), school_id=uuid.uuid4()))
        scope.after_commit(lambda: _raise(ValueError(f"student {sentinel} failed")))

    # 3. Failing rollback hooks (one chains a database error quoting PHI).
    def rollback_body() -> Any:
        unit = current_scope(conn)
        assert unit is not None
        unit.on_rollback(lambda: _raise(KeyError(sentinel)))

        def chained() -> None:
            try:
                insert(admin_conn, sentinel)
            except psycopg.Error as exc:
                raise RuntimeError(sentinel) from exc

        unit.on_rollback(chained)
        return Failure(ValueError("rolled back on purpose"))

    assert isinstance(run_in_scope(conn, sys_ctx, rollback_body), Failure)

    # 4. A failing write listener and a failing cache invalidation.
    def listener(event: Any) -> None:
        raise RuntimeError(f"listener saw {sentinel}")

    cache = build_cache(attrs.evolve(wx_config.settings(), cache_enabled=True,
                                     cache_backend="memory"))
    assert cache is not None

    def broken_invalidate(tag_ids: Any) -> int:
        raise RuntimeError(f"cannot invalidate {sentinel}")

    cache.invalidate = broken_invalidate  # type: ignore[method-assign]
    add_write_listener(listener)
    try:
        made = students.create(conn, sys_ctx, student_values(school, first_name=sentinel))
        assert isinstance(made, Success)
    finally:
        remove_write_listener(listener)
        unsubscribe(cache)

    # 5. Serialization failures, retried (two connections, write skew under SERIALIZABLE).
    attempts = [0]
    with psycopg.connect(db_url, autocommit=True) as other:
        def first() -> Any:
            attempts[0] += 1
            students.count(conn, sys_ctx, {"last_name": sentinel})
            if attempts[0] == 1:
                def second() -> Any:
                    students.count(other, sys_ctx, {"last_name": sentinel})
                    return students.create(other, sys_ctx, student_values(
                        school, last_name=sentinel, first_name=sentinel))

                assert isinstance(run_in_scope(other, sys_ctx, second,
                                               isolation=Isolation.SERIALIZABLE), Success)
            return students.create(conn, sys_ctx, student_values(
                school, last_name=sentinel, first_name=sentinel))

        retried = run_in_scope(conn, sys_ctx, first, isolation=Isolation.SERIALIZABLE,
                               retries=2, sleep=lambda _: None)
    assert isinstance(retried, Success)
    assert attempts[0] == 2  # the first attempt met a serialization failure and was retried

    # 6. Lane 2 unreachable: a refused disclosure and a lost failure record.
    previous = wx_config.configure(attrs.evolve(wx_config.settings(), audit_lane_timeout=0.3))
    try:
        with psycopg.connect(db_url, autocommit=True) as lonely:
            route_lane(lonely, make_conninfo(db_url, host="127.0.0.1", port=str(_dead_port())))
            refused = run_in_scope(lonely, ctx, lambda: students.find_by_id(lonely, ctx, seeded.id),
                                   read_only=True)
            assert refused.failure().code == "UNAVAILABLE"
            assert students.create(lonely, sys_ctx, duplicate).failure().code == "CONFLICT"
    finally:
        wx_config.configure(previous)
        close_lanes()

    # Every kind of failure was logged ...
    messages = [r.getMessage() for r in captured.records]
    for expected in ("transaction hook failed", "write listener failed",
                     "cache invalidation failed", "audit lane 2 record not written",
                     "query failed"):
        assert any(expected in m for m in messages), expected
    hooks = [m for m in messages if "transaction hook failed" in m]
    assert len(hooks) >= 6
    assert any("sqlstate=23505" in m and "constraint=" in m for m in hooks)
    assert any("sqlstate=23514" in m for m in hooks)
    assert any("sqlstate=23503" in m for m in hooks)
    assert any(r.name.startswith("psycopg") for r in captured.records)
    # ... and no record of any logger holds the sentinel.
    leaks = [(r.name, r.levelname) for r in captured.records
             if any(sentinel in t for t in texts(r))]
    assert leaks == []
