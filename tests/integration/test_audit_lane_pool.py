"""Audit lane 2 as a bounded shared pool, and "no disclosure without a durable record".

A private PostgreSQL with ``max_connections = 20`` takes 200 threads x 10 PHI reads in read-only
units of work (every disclosure record goes to lane 2): each Success has exactly one record naming
its student, everything else is a typed Failure, and after the pool closes the server is back to
its baseline backends. With lane 2 routed to a port nobody listens on, every PHI read that needs it
answers ``Failure(Unavailable)`` and hands out no data; failed writes still return their own
Failure, and the loss is counted where ``wxdata health`` shows it.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo
from returns.result import Failure, Success

from tests import local_cluster as local
from tests.conftest import TEST_SCOPE_KEY, student_values
from wxdata import ExecutionContext, Purpose, Role, crud, system_context
from wxdata import config as wx_config
from wxdata.audit import log_read
from wxdata.audit.lanes import close_lanes, lane_health, route_lane
from wxdata.cache import cached
from wxdata.cache.factory import build_cache
from wxdata.cache.keys import by_id
from wxdata.config import ConfigError, load_settings
from wxdata.db import create_pool
from wxdata.domains import students
from wxdata.errors import DataError, Unavailable
from wxdata.migrate import migrate
from wxdata.pool_metrics import RouterHealth, to_prometheus, to_text
from wxdata.replicas import Router, RouterConfig
from wxdata.roles import ensure_app_role, install_scope_key
from wxdata.schema import STUDENTS
from wxdata.tx import DisclosureNotRecorded, RollbackScope, run_in_scope, unit_of_work

WAIT = 60.0  # generous deadline for eventual states (polling, never a timing assertion)
THREADS = 200
READS = 10


def _dead_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ctx(school_id: uuid.UUID, request_id: str) -> ExecutionContext:
    return ExecutionContext(
        user_id="u-nurse-lane", role=Role.NURSE, purpose=Purpose.TREATMENT,
        ip_address="10.0.0.7", request_id=request_id, school_ids={school_id},
    )


@pytest.fixture
def lane_settings() -> Iterator[Any]:
    """Settings with a small lane-2 pool; restored (and every lane closed) afterwards."""
    previous = wx_config.settings()
    close_lanes()
    new = attrs.evolve(previous, audit_lane_pool_max=3, audit_lane_timeout=30.0)
    wx_config.configure(new)
    try:
        yield new
    finally:
        wx_config.configure(previous)
        close_lanes()


# --- 200 threads against max_connections = 20 ---------------------------------------------------


@pytest.fixture(scope="module")
def small_server() -> Iterator[local.LocalCluster]:
    """A private primary with ``max_connections = 20`` and one streaming replica, migrated."""
    reason = local.missing()
    if reason is not None:
        pytest.fail(reason)  # the machine is expected to have the server binaries
    with local.LocalCluster.create(replicas=1, conf=("max_connections = 20",)) as c:
        with psycopg.connect(c.url("primary"), autocommit=True) as conn:
            migrate(conn)
            install_scope_key(conn, TEST_SCOPE_KEY)
            ensure_app_role(conn, APP_ROLE, APP_PASSWORD)
        c.wait_replayed("replica-1")
        yield c


APP_ROLE, APP_PASSWORD = "wxdata_lane_app", secrets.token_urlsafe(12)


def _app(url: str) -> str:
    """``url`` as the application role (row-level security applies, as in production)."""
    return make_conninfo(url, user=APP_ROLE, password=APP_PASSWORD)


def _backends(admin: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(application_name, state) of every client backend."""
    return sorted(admin.execute(
        "SELECT application_name, coalesce(state, '') FROM pg_stat_activity "
        "WHERE backend_type = 'client backend'"
    ).fetchall())


def test_200_threads_every_success_has_exactly_one_record(
    small_server: local.LocalCluster, lane_settings: Any
) -> None:
    url = small_server.url("primary")
    sys_ctx = system_context("tests")
    with psycopg.connect(url, autocommit=True) as admin:
        setting = admin.execute("SHOW max_connections").fetchone()
        assert setting is not None and setting[0] == "20"
        district = admin.execute(
            "INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
            (f"D-{uuid.uuid4().hex[:8]}",)).fetchone()
        assert district is not None
        school = admin.execute(
            "INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) RETURNING id",
            (f"S-{uuid.uuid4().hex[:8]}", district[0])).fetchone()
        assert school is not None
        where = {"school_id": school[0], "district_id": district[0]}
        ids = [students.create(admin, sys_ctx, student_values(where)).unwrap().id
               for _ in range(20)]
        baseline = _backends(admin)

        opened: list[psycopg.Connection[Any]] = []
        pool = create_pool(_app(url), min_size=0, max_size=8, config=lane_settings, timeout=600.0,
                           configure=opened.append)
        outcomes: dict[str, tuple[uuid.UUID, Any]] = {}
        errors: list[BaseException] = []
        lock = threading.Lock()

        def work(t: int) -> None:
            try:
                for i in range(READS):
                    request = f"lp-{t}-{i}"
                    ctx = _ctx(school[0], request)
                    sid = ids[(t * READS + i) % len(ids)]
                    with pool.connection() as conn:
                        result = run_in_scope(
                            conn, ctx, lambda c=conn, x=ctx, s=sid: students.find_by_id(c, x, s),
                            read_only=True,
                        )
                    with lock:
                        outcomes[request] = (sid, result)
            except BaseException as exc:  # surfaced below: the test fails, nothing is hidden
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert len(outcomes) == THREADS * READS
        lanes = lane_health()
        assert [p.max_size for p in lanes.pools] == [3]
        pool.close()

        rows = admin.execute(
            "SELECT request_id, subject_ids, action, success FROM audit_log "
            "WHERE request_id LIKE 'lp-%%'").fetchall()
        recorded: dict[str, list[Any]] = {}
        for request, subjects, action, success in rows:
            recorded.setdefault(request, []).append((subjects, action, success))
        successes = 0
        for request, (sid, result) in outcomes.items():
            if isinstance(result, Success):
                successes += 1
                assert result.unwrap().id == sid
                assert recorded.get(request) == [([sid], "READ", True)], request
            else:
                assert isinstance(result, Failure)
                assert isinstance(result.failure(), DataError)
                assert request not in recorded  # a refused read discloses nothing
        assert successes > 0
        assert len(rows) == successes  # no record without a returned read, none lost

        # Every connection (main pool and lane 2) is gone once the pool is closed.
        assert [c for c in opened if not c.closed] == []
        assert lane_health().pools == ()
        deadline = time.monotonic() + WAIT
        while _backends(admin) != baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _backends(admin) == baseline


def test_replica_read_without_its_lane_fails_closed_and_keeps_the_replica(
    small_server: local.LocalCluster, lane_settings: Any
) -> None:
    """A replica read's record goes to the primary on lane 2: unreachable, the read returns no
    data, and the replica is not taken for a failed server; with the lane, one record per read."""
    url, replica = small_server.url("primary"), small_server.url("replica-1")
    sys_ctx = system_context("tests")
    with psycopg.connect(url, autocommit=True) as admin:
        district = admin.execute(
            "INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
            (f"D-{uuid.uuid4().hex[:8]}",)).fetchone()
        assert district is not None
        school = admin.execute(
            "INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) RETURNING id",
            (f"S-{uuid.uuid4().hex[:8]}", district[0])).fetchone()
        assert school is not None
        student = students.create(admin, sys_ctx, student_values(
            {"school_id": school[0], "district_id": district[0]})).unwrap()
        small_server.wait_replayed("replica-1")
        config = attrs.evolve(lane_settings, audit_lane_timeout=0.3)
        router_config = RouterConfig.from_settings(config, monitor=False)
        dead = make_conninfo(url, port=str(_dead_port()))
        for lane, request in ((dead, f"rd-{uuid.uuid4().hex[:8]}"),
                              (None, f"rl-{uuid.uuid4().hex[:8]}")):
            router = Router.open(_app(url), [_app(replica)], settings=config, min_size=0, max_size=2,
                                 config=router_config, initial_check=False)
            try:
                if lane is not None:
                    router.lane_target = lane
                router.check_all()
                ctx = _ctx(school[0], request)
                result = router.read(ctx, students.find_by_id, student.id)
                health = router.health()
            finally:
                router.close()
            assert health.server("replica-1").reads == 1  # served by the replica
            assert health.server("replica-1").state == "up"
            records = _records(admin, request)
            if lane is None:
                assert isinstance(result, Success) and result.unwrap().id == student.id
                assert records == 1
            else:
                assert isinstance(result, Failure)
                assert isinstance(result.failure(), Unavailable)
                assert records == 0
                assert health.audit_lane.disclosures_refused >= 1


# --- lane 2 unreachable ---------------------------------------------------------------------------


@pytest.fixture
def dead_lane_pool(db_url: str, lane_settings: Any) -> Iterator[tuple[Any, str]]:
    """A pool on the test database whose connections' lane 2 points at a dead port."""
    config = attrs.evolve(lane_settings, audit_lane_timeout=0.3)
    wx_config.configure(config)
    dead = make_conninfo(db_url, host="127.0.0.1", port=str(_dead_port()),
                         application_name="wxdata-audit-lane2")
    pool = create_pool(db_url, min_size=0, max_size=2, config=config,
                       configure=lambda c: route_lane(c, dead))
    try:
        yield pool, db_url
    finally:
        pool.close()


def _records(conn: psycopg.Connection[Any], request: str) -> int:
    row = conn.execute("SELECT count(*) FROM audit_log WHERE request_id = %s", (request,)).fetchone()
    assert row is not None
    return int(row[0])


def test_dead_lane_read_only_reads_fail_closed(
    conn: psycopg.Connection[Any], make_student: Any, school: dict[str, uuid.UUID],
    dead_lane_pool: tuple[Any, str],
) -> None:
    pool, _ = dead_lane_pool
    student = make_student()
    request = f"dead-{uuid.uuid4().hex[:8]}"
    ctx = _ctx(school["school_id"], request)
    before = lane_health()
    with pool.connection() as c:
        by_id = run_in_scope(c, ctx, lambda: students.find_by_id(c, ctx, student.id),
                             read_only=True)
        many = run_in_scope(c, ctx, lambda: students.find_many(c, ctx, {"id": student.id}),
                            read_only=True)
        streamed = run_in_scope(
            c, ctx, lambda: students.stream(c, ctx, list, {"id": student.id}), read_only=True)
        explicit = run_in_scope(c, ctx, lambda: log_read(c, ctx, students.ENTITY, [student.id]),
                                read_only=True)
        hand = run_in_scope(
            c, ctx, lambda: crud.record_disclosure(c, ctx, students.ENTITY, ids=(student.id,),
                                                   subjects=(student.id,)),
            read_only=True)
        # Control: the same read without PHI auditing needs no lane and succeeds.
        absent = run_in_scope(c, ctx, lambda: students.find_by_id(c, ctx, uuid.uuid4()),
                              read_only=True)
    for result in (by_id, many, streamed, explicit, hand):
        assert isinstance(result, Failure)
        assert isinstance(result.failure(), Unavailable)
    assert isinstance(absent, Failure) and absent.failure().code == "NOT_FOUND"
    after = lane_health()
    assert after.disclosures_refused - before.disclosures_refused == 5
    assert _records(conn, request) == 0


def test_dead_lane_reads_in_a_transaction_wxdata_did_not_open_fail_closed(
    conn: psycopg.Connection[Any], make_student: Any, school: dict[str, uuid.UUID],
    dead_lane_pool: tuple[Any, str],
) -> None:
    """In the caller's own transaction a read's record must commit on lane 2 before the rows are
    returned; with lane 2 down the read fails and hands out nothing."""
    pool, _ = dead_lane_pool
    student = make_student()
    request = f"dead-tx-{uuid.uuid4().hex[:8]}"
    ctx = _ctx(school["school_id"], request)
    with pool.connection() as c, c.transaction(force_rollback=True):
        by_id = students.find_by_id(c, ctx, student.id)
        many = students.find_many(c, ctx, {"id": student.id})
        explicit = log_read(c, ctx, students.ENTITY, [student.id])
        hand = crud.fetch(c, ctx, "SELECT id, first_name FROM students WHERE id = %(id)s",
                          {"id": student.id})
    for result in (by_id, many, explicit, hand):
        assert isinstance(result, Failure) and isinstance(result.failure(), Unavailable), result
    assert _records(conn, request) == 0


def test_dead_lane_cached_phi_hit_fails_closed(
    conn: psycopg.Connection[Any], make_student: Any, school: dict[str, uuid.UUID],
    dead_lane_pool: tuple[Any, str],
) -> None:
    """A PHI cache hit is a disclosure: with no lane for its record, no cached data either."""
    pool, _ = dead_lane_pool
    student = make_student()
    ctx = _ctx(school["school_id"], f"ch-{uuid.uuid4().hex[:8]}")
    cache = build_cache(attrs.evolve(wx_config.settings(), cache_enabled=True,
                                     cache_backend="memory"), subscribe_writes=False)
    assert cache is not None
    calls = [0]

    @cached(STUDENTS, key=lambda c, x, sid: by_id(sid), cache=cache, unkeyed=("calls",))
    def get(c: psycopg.Connection[Any], x: ExecutionContext, sid: Any) -> Any:
        calls[0] += 1
        return students.find_by_id(c, x, sid)

    assert isinstance(get(conn, ctx, student.id), Success)  # primed (record rides lane 1)
    with pool.connection() as c:
        hit = run_in_scope(c, ctx, lambda: get(c, ctx, student.id), read_only=True)
    assert calls[0] == 1  # the second call was a cache hit
    assert isinstance(hit, Failure) and isinstance(hit.failure(), Unavailable)
    again = get(conn, ctx, student.id)  # control: a hit whose record can ride lane 1
    assert isinstance(again, Success) and calls[0] == 1


def test_dead_lane_rolled_back_read_write_unit_fails_closed(
    conn: psycopg.Connection[Any], make_student: Any, school: dict[str, uuid.UUID],
    dead_lane_pool: tuple[Any, str],
) -> None:
    """A read in a read-write unit that rolls back: its riding record is gone with the
    transaction, lane 2 cannot keep it, so the unit answers Failure(Unavailable), not data."""
    pool, _ = dead_lane_pool
    student = make_student()
    ctx = _ctx(school["school_id"], f"rw-{uuid.uuid4().hex[:8]}")
    seen: list[Any] = []

    def body(c: psycopg.Connection[Any]) -> Any:
        read = students.find_by_id(c, ctx, student.id)
        assert isinstance(read, Success)
        seen.append(read.unwrap())
        return Failure(Unavailable(reason="the caller gave up"))

    with pool.connection() as c:
        result = run_in_scope(c, ctx, lambda: body(c))
        assert isinstance(result, Failure)
        assert result.failure() == Unavailable(
            reason="audit lane 2 unavailable: a disclosure could not be recorded")
        # Raw unit of work: a quiet rollback becomes an exception, so nothing after it runs.
        def quiet_rollback() -> None:
            with unit_of_work(c, ctx):
                assert isinstance(students.find_by_id(c, ctx, student.id), Success)
                raise RollbackScope

        with pytest.raises(DisclosureNotRecorded):
            quiet_rollback()
        # A savepoint that rolls back loses its record: the whole unit cannot commit.
        def outer() -> Any:
            inner = run_in_scope(c, ctx, lambda: body(c))
            assert isinstance(inner, Failure)
            return Success("outer done")

        nested = run_in_scope(c, ctx, outer)
        assert isinstance(nested, Failure) and isinstance(nested.failure(), Unavailable)
        # Committed: the record rode in the transaction, no lane needed.
        committed = run_in_scope(c, ctx, lambda: students.find_by_id(c, ctx, student.id))
        assert isinstance(committed, Success)
    assert seen  # the attack ran: data was read inside the unit before it rolled back


def test_dead_lane_failed_write_keeps_its_own_failure_and_is_counted(
    conn: psycopg.Connection[Any], make_student: Any, school: dict[str, uuid.UUID],
    dead_lane_pool: tuple[Any, str],
) -> None:
    pool, _ = dead_lane_pool
    student = make_student()
    ctx = attrs.evolve(system_context("tests"), request_id=f"fw-{uuid.uuid4().hex[:8]}")
    before = lane_health()
    with pool.connection() as c:
        duplicate = students.create(
            c, ctx, student_values(school, student_number=student.student_number))
    assert isinstance(duplicate, Failure) and duplicate.failure().code == "CONFLICT"
    after = lane_health()
    assert after.failure_records_lost - before.failure_records_lost == 1
    text = to_text(RouterHealth(servers=(), audit_lane=after))
    assert f"failure_records_lost={after.failure_records_lost}" in text
    prom = to_prometheus(RouterHealth(servers=(), audit_lane=after))
    assert (f'wxdata_audit_lane_records_total{{outcome="failure_record_lost"}} '
            f"{after.failure_records_lost}") in prom


def test_lane_pools_close_with_their_pool(db_url: str, make_student: Any,
                                          school: dict[str, uuid.UUID], lane_settings: Any) -> None:
    student = make_student()
    ctx = _ctx(school["school_id"], f"cl-{uuid.uuid4().hex[:8]}")
    close_lanes()
    first = create_pool(db_url, min_size=0, max_size=2, config=lane_settings)
    second = create_pool(db_url, min_size=0, max_size=2, config=lane_settings)
    for pool in (first, second):
        with pool.connection() as c:
            result = run_in_scope(c, ctx, lambda c=c: students.find_by_id(c, ctx, student.id),
                                  read_only=True)
            assert isinstance(result, Success)
    assert len(lane_health().pools) == 1  # one shared lane pool per server
    lane_pool = lane_health().pools[0]
    assert lane_pool.max_size == 3
    first.close()
    assert len(lane_health().pools) == 1  # still used by the second pool
    second.close()
    assert lane_health().pools == ()


# --- settings -------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=12))
def test_lane_settings_are_validated_without_echoing_the_value(raw: str) -> None:
    for name in ("AUDIT_LANE_POOL_MAX", "AUDIT_LANE_TIMEOUT"):
        outcome: list[str] = []
        try:
            loaded = load_settings({name: raw})
        except ConfigError as exc:
            outcome.append(str(exc))
        if outcome:  # a fixed sentence naming the variable and the rule, never the value
            assert outcome[0] in {
                f"{name} must be an integer", f"{name} must be between 1 and 1000",
                f"{name} must be a number of seconds",
                f"{name} must be more than 0 and at most 300 seconds",
            }
            continue
        if name == "AUDIT_LANE_POOL_MAX":
            assert 1 <= loaded.audit_lane_pool_max <= 1000
        else:
            assert 0 < loaded.audit_lane_timeout <= 300


def test_lane_settings_defaults_and_bounds() -> None:
    loaded = load_settings({"AUDIT_LANE_POOL_MAX": "7", "AUDIT_LANE_TIMEOUT": "2.5"})
    assert (loaded.audit_lane_pool_max, loaded.audit_lane_timeout) == (7, 2.5)
    for bad in ({"AUDIT_LANE_POOL_MAX": "0"}, {"AUDIT_LANE_TIMEOUT": "0"},
                {"AUDIT_LANE_TIMEOUT": "nan"}, {"AUDIT_LANE_TIMEOUT": "301"}):
        with pytest.raises(ConfigError):
            load_settings(bad)


def test_a_connection_out_of_a_closed_pool_records_while_another_pool_keeps_its_lane(
    db_url: str, admin_conn: psycopg.Connection[Any], lane_settings: Any,
    school: dict[str, uuid.UUID],
) -> None:
    """A replica taken out of rotation closes its pool while reads are still in flight on it:
    their disclosures go to the primary's lane, which the primary's pool keeps open, so they are
    recorded; once no open pool keeps the lane, a disclosure fails closed (nothing reopens it)."""
    from wxdata.audit.lanes import write_detached
    from wxdata.audit.record import AuditAction, AuditRecord

    ctx = _ctx(school["school_id"], f"lk-{uuid.uuid4().hex[:8]}")
    record = AuditRecord(action=AuditAction.READ, entity_type="Student")
    keeper = create_pool(db_url, min_size=1, max_size=2)
    leaving = create_pool(db_url, min_size=1, max_size=2)
    conn = leaving.getconn()
    try:
        assert write_detached(conn, ctx, record)  # both pools now use the one lane
        with keeper.connection() as other:
            assert write_detached(other, ctx, record)
        leaving.close()  # out of rotation; ``conn`` is still out of it
        assert write_detached(conn, ctx, record)  # the keeper keeps the lane: recorded
        keeper.close()
        assert not write_detached(conn, ctx, record)  # no open pool keeps it: fails closed
        assert lane_health().pools == ()  # and the closed owners reopened nothing
    finally:
        conn.close()
        leaving.close()
        keeper.close()
    written = admin_conn.execute("SELECT count(*) FROM audit_log WHERE request_id = %s",
                                 (ctx.request_id,)).fetchone()
    assert written == (3,)


def test_a_replica_connections_lane_is_kept_by_the_primarys_pool(
    db_url: str, admin_conn: psycopg.Connection[Any], school: dict[str, uuid.UUID],
) -> None:
    """A replica's connection records on the primary's lane, which the primary's pool keeps even
    when none of its own connections ever used it (their reads' records ride in their
    statements): the replica's pool taken out of rotation while a read is in flight on it, that
    read's disclosure is still recorded; once the primary's pool is closed, it fails closed."""
    from wxdata.audit.lanes import write_detached
    from wxdata.audit.record import AuditAction, AuditRecord
    from wxdata.db import LANE_APPLICATION_NAME, conninfo

    ctx = _ctx(school["school_id"], f"rk-{uuid.uuid4().hex[:8]}")
    record = AuditRecord(action=AuditAction.READ, entity_type="Student")
    primary = create_pool(db_url, min_size=1, max_size=2)
    replica = create_pool(db_url, min_size=1, max_size=2)
    conn = replica.getconn()
    try:  # as the routers route a replica's connection
        route_lane(conn, conninfo(db_url, wx_config.settings(),
                                  application_name=LANE_APPLICATION_NAME), primary.lane)
        assert write_detached(conn, ctx, record)
        replica.close()  # out of rotation; ``conn`` is still out of it
        assert write_detached(conn, ctx, record)  # the primary's pool keeps the lane: recorded
        primary.close()
        assert not write_detached(conn, ctx, record)  # no open pool keeps it: fails closed
        assert lane_health().pools == ()
    finally:
        conn.close()
        replica.close()
        primary.close()
    written = admin_conn.execute("SELECT count(*) FROM audit_log WHERE request_id = %s",
                                 (ctx.request_id,)).fetchone()
    assert written == (2,)
