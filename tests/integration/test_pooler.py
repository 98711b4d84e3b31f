"""Behind a transaction pooler (PgBouncer ``pool_mode=transaction``) wxdata keeps no session state.

Consecutive transactions of one client connection may run on different server connections, and
one server connection serves many clients in turn. A named prepared statement would then be
missing, mismatched or, worst, another client's statement of the same shape answering with the
other client's query; a startup ``options`` parameter is refused outright; a session setting
would leak into other clients. Every test here runs against a real PgBouncer in front of the real
test server (the ``pgbouncer`` fixture), whatever ``WXDATA_TEST_POOLER`` says. The settings alone
(``DB_POOLER``, what each mode sends) are checked in ``tests/unit/test_connection_settings.py``.
"""

from __future__ import annotations

import functools
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import attrs
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from returns.result import Failure, Result, Success

from tests.conftest import student_values
from tests.pgbouncer import PgBouncer
from wxdata import ExecutionContext, Purpose, Role, system_context
from wxdata.audit import lanes
from wxdata.audit.decorator import audited
from wxdata.audit.record import AuditAction
from wxdata.config import Settings, configure, load_settings, settings
from wxdata.db import connect, connect_kwargs, conninfo, create_pool
from wxdata.domains import students
from wxdata.errors import DataError, Unavailable
from wxdata.replicas import Router, RouterConfig
from wxdata.tx import unit_of_work
from wxdata.tx.scope import ScopeError, context_statement

Conn = psycopg.Connection[Any]


# --- settings ---------------------------------------------------------------------------------


def test_no_startup_options_behind_a_pooler_and_timeouts_ride_the_context(ctx) -> None:
    direct = load_settings({"DATABASE_URL": "postgresql://app@db/wx"})
    pooled = attrs.evolve(direct, pooler="transaction")
    assert "statement_timeout=30000" in conninfo_to_dict(conninfo(config=direct))["options"]
    assert "options" not in conninfo_to_dict(conninfo(config=pooled))
    applied = {}
    for mode in (direct, pooled):
        previous = configure(mode)
        try:
            sql, params = context_statement(ctx)
        finally:
            configure(previous)
        names = re.findall(r"set_config\('([^']+)', %s, true\)", sql)
        assert len(names) == sql.count("set_config") == len(params)
        applied[mode.pooler] = dict(zip(names, params, strict=True))
    assert {"statement_timeout": "30000", "idle_in_transaction_session_timeout": "30000"}.items() \
        <= applied["transaction"].items()
    assert "statement_timeout" not in applied["none"]  # direct: they are startup options


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def pooled() -> Iterator[Settings]:
    """wxdata configured for a transaction pooler for the duration of one test."""
    previous = configure(attrs.evolve(settings(), pooler="transaction"))
    try:
        yield settings()
    finally:
        configure(previous)


@pytest.fixture
def direct() -> Iterator[Settings]:
    """wxdata configured for a direct server for the duration of one test."""
    previous = configure(attrs.evolve(settings(), pooler="none"))
    try:
        yield settings()
    finally:
        configure(previous)


@pytest.fixture
def pooled_url(pgbouncer: PgBouncer, direct_db_url: str) -> str:
    """The test database through the test PgBouncer (transaction pooling)."""
    return pgbouncer.url(direct_db_url)


@pytest.fixture
def admin(server_url: str, direct_db_url: str) -> Iterator[Conn]:
    """A direct superuser connection to the test database (set-up and checks only)."""
    url = make_conninfo(server_url, dbname=conninfo_to_dict(direct_db_url)["dbname"])
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as c:
        yield c


def _school(admin: Conn) -> dict[str, uuid.UUID]:
    tag = uuid.uuid4().hex[:8]
    district = admin.execute("INSERT INTO districts (name, code) VALUES (%s, %s) RETURNING id",
                             (f"District {tag}", f"PD-{tag}")).fetchone()
    assert district is not None
    school = admin.execute(
        "INSERT INTO schools (name, code, district_id) VALUES (%s, %s, %s) RETURNING id",
        (f"School {tag}", f"PS-{tag}", district[0])).fetchone()
    assert school is not None
    return {"district_id": district[0], "school_id": school[0]}


def _nurse(school: dict[str, uuid.UUID], tag: str) -> ExecutionContext:
    return ExecutionContext(
        user_id=f"u-nurse-{tag}", role=Role.NURSE, purpose=Purpose.TREATMENT,
        school_ids=frozenset({school["school_id"]}), request_id=f"req-{uuid.uuid4().hex[:12]}",
    )


# --- what PgBouncer refuses, and what wxdata sends --------------------------------------------


def test_pgbouncer_refuses_the_direct_mode_startup_options(pooled_url: str) -> None:
    """A direct-mode configuration behind PgBouncer fails at connect, loudly, never half-works."""
    direct_config = load_settings({"DATABASE_URL": pooled_url})
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(conninfo(config=direct_config), autocommit=True,
                        **connect_kwargs(direct_config)).close()
    assert "unsupported startup parameter" in str(caught.value)
    pooled_config = attrs.evolve(direct_config, pooler="transaction")
    with connect(pooled_url, config=pooled_config) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_connect_honours_an_explicit_prepare_threshold(direct_db_url: str, direct) -> None:
    with connect(direct_db_url, prepare_threshold=None) as c:
        assert c.prepare_threshold is None  # once silently dropped into the conninfo
    with connect(direct_db_url, prepare_threshold=2) as c:
        assert c.prepare_threshold == 2


def test_connect_refuses_a_prepare_threshold_behind_a_pooler(pooled_url: str, pooled) -> None:
    with pytest.raises(ValueError, match="prepare_threshold must be None"):
        connect(pooled_url, prepare_threshold=5)
    with connect(pooled_url) as c:
        assert c.prepare_threshold is None and c.autocommit


#: An update of seven columns: its audited statement is past the length psycopg caches its parse
#: of, so wxdata sends it numbered, through a raw cursor.
_WIDE = {"first_name": "Grace", "last_name": "Hopper", "grade": "8", "gender": "OTHER",
         "photo": "p.png", "is_active": False, "enrollment_date": date(2021, 9, 1)}


def _exercise(conn: Conn, admin: Conn, rounds: int = 8) -> None:
    """Every statement shape wxdata prepares: reads, writes, units of work, audit records on both
    lanes, the audited decorator, a statement sent numbered."""
    school = _school(admin)
    ctx = _nurse(school, "x")
    sys_ctx = system_context("tests")
    for _ in range(rounds):
        made = students.create(conn, sys_ctx, student_values(school)).unwrap()
        assert students.find_by_id(conn, ctx, made.id).unwrap() == made
        assert isinstance(students.update(conn, ctx, made.id, {"grade": "6"},
                                          expected_version=99), Failure)  # lane 2 record
        with unit_of_work(conn, ctx):
            students.update(conn, ctx, made.id, {"grade": "7"}).unwrap()
            assert students.find_many(conn, ctx, {"id": made.id}).unwrap().total == 1
        assert _read_chart(conn, ctx, made.id).unwrap().grade == "7"
        assert students.update(conn, ctx, made.id, _WIDE).unwrap().grade == "8"


@audited(students.ENTITY, AuditAction.READ)
def _read_chart(conn: Conn, ctx: ExecutionContext, sid: uuid.UUID) -> Result[Any, DataError]:
    return students.find_by_id(conn, ctx, sid)


def _named_statements(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert row is not None
    return int(row[0])


def test_no_statement_is_ever_named_in_pooler_mode(direct_db_url: str, admin: Conn, pooled) -> None:
    """Checked on a direct connection, where ``pg_prepared_statements`` is the session's own list."""
    with connect(direct_db_url) as conn:
        _exercise(conn, admin)
        assert _named_statements(conn) == 0


def test_a_connection_that_may_name_statements_is_refused_in_pooler_mode(
    direct_db_url: str, admin: Conn, pooled
) -> None:
    """psycopg's defaults name any statement run 5 times, BEGIN and COMMIT included: wxdata
    refuses such a connection (typed Failure, ScopeError for a unit of work) before sending
    anything, rather than let a name reach another client's server connection."""
    school = _school(admin)
    ctx = _nurse(school, "f")
    made = students.create(admin, system_context("tests"), student_values(school)).unwrap()
    with psycopg.connect(direct_db_url, autocommit=True) as conn:
        for _ in range(6):
            result = students.find_by_id(conn, ctx, made.id)
            assert isinstance(result, Failure) and isinstance(result.failure(), Unavailable)
            assert "connect_kwargs" in result.failure().reason
            with pytest.raises(ScopeError), unit_of_work(conn, ctx):
                pass
        assert students.update(conn, ctx, made.id, {"grade": "8"}).failure().code == "UNAVAILABLE"
        assert _named_statements(conn) == 0
    with psycopg.connect(direct_db_url, autocommit=True, prepare_threshold=None) as app:
        assert students.find_by_id(app, ctx, made.id).unwrap() == made


def test_direct_mode_still_prepares(direct_db_url: str, admin: Conn, direct) -> None:
    """The control: the same exercise direct to the server names its hot statements."""
    with connect(direct_db_url) as conn:
        _exercise(conn, admin)
        assert _named_statements(conn) > 0


def test_pools_and_the_router_do_not_prepare(pooled_url: str, admin: Conn, pooled) -> None:
    with create_pool(pooled_url, min_size=0, max_size=2) as pool, pool.connection() as c:
        assert c.prepare_threshold is None
        _exercise(c, admin, rounds=2)
    ctx = _nurse(_school(admin), "r")
    router = Router.open(pooled_url, (), settings=settings(), min_size=0, max_size=2,
                         config=RouterConfig.from_settings(settings(), monitor=False),
                         initial_check=False)
    try:
        for _ in range(8):  # the probe repeats one statement: psycopg would name it by the 5th
            assert router.check_all().primary_up
        with router.connection(ctx, write=True) as c:
            assert c.prepare_threshold is None
    finally:
        router.close()


# --- timeouts per transaction -----------------------------------------------------------------


def _show(conn: Conn, name: str) -> str:
    row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    assert row is not None
    return str(row[0])


def test_timeouts_hold_inside_every_unit_of_work_and_nowhere_else(
    pooled_url: str, admin: Conn, pooled
) -> None:
    configure(attrs.evolve(pooled, statement_timeout_ms=250, idle_in_transaction_timeout_ms=4000))
    ctx = _nurse(_school(admin), "t")
    with connect(pooled_url) as conn:
        outside = _show(conn, "statement_timeout")
        for _ in range(3):
            with unit_of_work(conn, ctx):
                assert _show(conn, "statement_timeout") == "250ms"
                assert _show(conn, "idle_in_transaction_session_timeout") == "4s"
        with pytest.raises(psycopg.errors.QueryCanceled), unit_of_work(conn, ctx):
            conn.execute("SELECT pg_sleep(5)")
        assert _show(conn, "statement_timeout") == outside != "250ms"  # no session setting left


def test_statement_timeout_holds_for_a_single_crud_statement(
    pooled_url: str, admin: Conn, pooled
) -> None:
    """A single CRUD statement (no unit of work) blocked on a row lock is cancelled by the
    configured timeout, as the startup option would have done direct."""
    configure(attrs.evolve(pooled, statement_timeout_ms=300))
    school = _school(admin)
    made = students.create(admin, system_context("tests"), student_values(school)).unwrap()
    with psycopg.connect(admin.info.dsn, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("SET LOCAL idle_in_transaction_session_timeout = '10s'")  # safety net
        blocker.execute("SELECT 1 FROM students WHERE id = %s FOR UPDATE", (made.id,))
        with connect(pooled_url) as conn:
            result = students.update(conn, _nurse(school, "l"), made.id, {"grade": "9"})
        blocker.execute("ROLLBACK")
    assert isinstance(result, Failure)
    assert students.find_by_id(admin, system_context("tests"), made.id).unwrap().grade == made.grade


# --- 16 threads, two clients, through PgBouncer -----------------------------------------------


@attrs.define
class Tally:
    """What a workload did and what went wrong (by kind; never a value)."""

    ops: Counter[str] = attrs.field(factory=Counter)
    errors: Counter[str] = attrs.field(factory=Counter)
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def ok(self, kind: str) -> None:
        with self.lock:
            self.ops[kind] += 1

    def bad(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1


def _check(tally: Tally, kind: str, fn: Callable[[], bool]) -> None:
    try:
        good = fn()
    except Exception as exc:  # any error counts as a failure of the workload
        tally.bad(f"{kind}:{type(exc).__name__}")
        return
    if good:
        tally.ok(kind)
    else:
        tally.bad(f"{kind}:wrong")


@attrs.frozen
class Step:
    """One operation's inputs: the thread's connection, the client's context, school and seed."""

    conn: Conn
    ctx: ExecutionContext
    school: dict[str, uuid.UUID]
    seed: Any
    round: int


def _read(step: Step) -> bool:
    return students.find_by_id(step.conn, step.ctx, step.seed.id) == Success(step.seed)


def _audited_read(step: Step) -> bool:
    return _read_chart(step.conn, step.ctx, step.seed.id) == Success(step.seed)


def _create(step: Step) -> bool:
    values = student_values(step.school)
    made = students.create(step.conn, step.ctx, values).unwrap()
    return (made.student_number == values["student_number"]
            and students.find_by_id(step.conn, step.ctx, made.id) == Success(made))


def _update(step: Step, current: dict[int, Any], key: int) -> bool:
    before = current[key]
    grade = str(step.round % 9 + 1)
    after = students.update(step.conn, step.ctx, before.id, {"grade": grade},
                            expected_version=before.version).unwrap()
    current[key] = after
    return after.id == before.id and after.version == before.version + 1 and after.grade == grade


def _conflict(step: Step, current: dict[int, Any], key: int) -> bool:
    """A stale update: Conflict, recorded on audit lane 2 (checked against the trail later)."""
    result = students.update(step.conn, step.ctx, current[key].id, {"grade": "4"},
                             expected_version=10**6)
    return isinstance(result, Failure) and result.failure().code == "CONFLICT"


def _unit(step: Step) -> bool:
    values = student_values(step.school)
    with unit_of_work(step.conn, step.ctx):
        made = students.create(step.conn, step.ctx, values).unwrap()
        page = students.find_many(
            step.conn, step.ctx, {"student_number": values["student_number"]}).unwrap()
        changed = students.update(step.conn, step.ctx, made.id, {"grade": "3"}).unwrap()
    return ([s.id for s in page.data] == [made.id] and changed.grade == "3"
            and students.find_by_id(step.conn, step.ctx, made.id) == Success(changed))


def run_workload(
    url: str, admin: Conn, *, threads: int = 16, rounds: int = 25
) -> tuple[Tally, dict[str, int], dict[str, int]]:
    """Reads, audited reads, creates, updates, stale updates and units of work, as two clients
    (schools and contexts), each result checked against the expected row; returns the tally and
    the creates and conflicts per request id (to compare with the audit trail)."""
    sys_ctx = system_context("tests")
    clients = []
    for _ in range(2):
        school = _school(admin)
        seeds = [students.create(admin, sys_ctx, student_values(school)).unwrap() for _ in range(4)]
        clients.append((school, seeds))
    targets = {
        (t, c): students.create(admin, sys_ctx, student_values(clients[c][0])).unwrap()
        for t in range(threads) for c in (0, 1)
    }
    tally = Tally()
    creates: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    start = threading.Barrier(threads)

    def worker(t: int) -> None:
        ctxs = [_nurse(clients[c][0], f"{t}-{c}") for c in (0, 1)]
        current = {c: targets[(t, c)] for c in (0, 1)}
        try:
            conn = connect(url)
        except psycopg.Error as exc:
            tally.bad(f"connect:{type(exc).__name__}")
            return
        with conn:
            start.wait()
            for r in range(rounds):
                c = (t + r) % 2
                school, seeds = clients[c]
                step = Step(conn=conn, ctx=ctxs[c], school=school, seed=seeds[r % len(seeds)],
                            round=r)
                ops: tuple[tuple[str, Callable[[], bool]], ...] = (
                    ("read", functools.partial(_read, step)),
                    ("audited", functools.partial(_audited_read, step)),
                    ("create", functools.partial(_create, step)),
                    ("update", functools.partial(_update, step, current, c)),
                    ("conflict", functools.partial(_conflict, step, current, c)),
                    ("unit_of_work", functools.partial(_unit, step)),
                )
                for kind, fn in ops:
                    _check(tally, kind, fn)
                    if kind in ("create", "unit_of_work"):
                        with tally.lock:
                            creates[ctxs[c].request_id or ""] += 1
                    if kind == "conflict":
                        with tally.lock:
                            conflicts[ctxs[c].request_id or ""] += 1

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return tally, dict(creates), dict(conflicts)


def assert_workload_right(url: str, admin: Conn) -> None:
    """:func:`run_workload` through ``url``: no error, every result right, and every create and
    every stale update recorded exactly once in the audit trail."""
    tally, creates, conflicts = run_workload(url, admin)
    assert dict(tally.errors) == {}
    assert sum(tally.ops.values()) == 16 * 25 * 6
    ids = list(creates)
    recorded = dict(admin.execute(
        "SELECT request_id, count(*) FROM audit_log WHERE action = 'CREATE' AND success "
        "AND request_id = ANY(%s) GROUP BY request_id", (ids,)).fetchall())
    assert recorded == creates  # every create has its record (lane 1), none twice, none lost
    failed = dict(admin.execute(
        "SELECT request_id, count(*) FROM audit_log WHERE action = 'UPDATE' AND NOT success "
        "AND request_id = ANY(%s) GROUP BY request_id", (ids,)).fetchall())
    assert failed == conflicts  # every stale update has its lane-2 record


def test_sixteen_threads_two_clients_through_pgbouncer_zero_errors_every_row_right(
    pooled_url: str, admin: Conn, pooled
) -> None:
    lanes.close_lanes()  # lanes opened under another test's settings
    assert_workload_right(pooled_url, admin)
