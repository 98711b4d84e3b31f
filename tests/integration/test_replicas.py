"""Replica routing against real streaming replication built on this machine.

A module fixture builds a primary and a streaming replica (initdb, pg_basebackup -R, pg_ctl; as an
unprivileged OS user when run as root), migrates the primary, and tears everything down at the end.
The serving server of every read is identified by ``pg_is_in_recovery()`` on the very connection
the router handed out.

The routing tests run through both shells: under the async one ``Router`` is
:class:`wxdata.aio.replicas.AsyncRouter` (see :mod:`tests.shells`), the test's threads become
concurrent tasks on its loop. The routing bookkeeping, settings and the ``wxdata health`` command
have no shell and run once; the ``test_async_*`` tests drive the AsyncRouter natively with
``asyncio`` tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo
from returns.result import Failure, Result, Success

from tests import local_cluster as local
from tests.conftest import TEST_SCOPE_KEY
from tests.ports import free_port
from tests.shells import parametrise
from wxdata import ExecutionContext, Purpose, Role
from wxdata._cli import CliError
from wxdata.config import ConfigError, load_settings
from wxdata.domains import students
from wxdata.errors import DataError, Internal, Unavailable
from wxdata.migrate import migrate
from wxdata.pool_metrics import register, to_prometheus
from wxdata.replicas import Consistency, Router, RouterConfig, Strategy, consistency_key, is_replica
from wxdata.replicas.ledger import UNKNOWN
from wxdata.replicas.servers import Routing, Server
from wxdata.roles import ensure_app_role, install_scope_key
from wxdata.tx import unit_of_work

pytestmark = pytest.mark.skipif(local.missing() is not None, reason=str(local.missing()))

Conn = psycopg.Connection[Any]
WAIT = 60.0  # generous deadline for eventual states (polling, never a timing assertion)

#: No shell to choose (bookkeeping, settings, the CLI, native asyncio): runs once.
once = pytest.mark.sync_only
parametrise(globals())

FAST = RouterConfig(check_interval=0.1, backoff_initial=0.1, backoff_max=0.5, replica_timeout=0.5,
                    connect_timeout=2, primary_timeout=10)


APP_ROLE, APP_PASSWORD = "wxdata_replica_app", secrets.token_urlsafe(12)


def app_url(cluster: local.LocalCluster, server: str) -> str:
    """The application role's URL on one server of the cluster (row-level security applies)."""
    return make_conninfo(cluster.url(server), user=APP_ROLE, password=APP_PASSWORD)


@pytest.fixture(scope="module")
def cluster() -> Iterator[local.LocalCluster]:
    """A primary and one streaming replica, migrated, destroyed at the end."""
    with local.LocalCluster.create(replicas=1) as c:
        with psycopg.connect(c.url("primary"), autocommit=True) as conn:
            migrate(conn)
            install_scope_key(conn, TEST_SCOPE_KEY)
            ensure_app_role(conn, APP_ROLE, APP_PASSWORD)
        c.wait_replayed("replica-1")
        yield c


@pytest.fixture(scope="module")
def school(cluster: local.LocalCluster) -> dict[str, uuid.UUID]:
    """A district and a school on the primary, replayed on the replica."""
    with psycopg.connect(cluster.url("primary"), autocommit=True) as conn:
        row = conn.execute("INSERT INTO districts (name, code) VALUES ('D', 'D-R') RETURNING id"
                           ).fetchone()
        assert row is not None
        district = row[0]
        row = conn.execute("INSERT INTO schools (name, code, district_id) VALUES "
                           "('S', 'S-R', %s) RETURNING id", (district,)).fetchone()
        assert row is not None
    cluster.wait_replayed("replica-1")
    return {"district_id": district, "school_id": row[0]}


@pytest.fixture(scope="module")
def routers() -> Iterator[dict[str, Any]]:
    """The router of each shell, opened by the first test of that shell, closed at the end."""
    made: dict[str, Any] = {}
    yield made
    for r in made.values():
        r.close()


@pytest.fixture
def router(cluster: local.LocalCluster, routers: dict[str, Any], shell: str) -> Router:
    """A router over the cluster with fast health checks (the shell's)."""
    if shell not in routers:
        routers[shell] = Router.open(app_url(cluster, "primary"), [app_url(cluster, "replica-1")],
                                     config=FAST, min_size=1, max_size=6)
    return routers[shell]  # type: ignore[no-any-return]


def make_ctx(school: dict[str, uuid.UUID] | None = None) -> ExecutionContext:
    """A nurse with a session of its own."""
    return ExecutionContext(
        user_id=f"u-{uuid.uuid4().hex[:8]}", role=Role.NURSE, purpose=Purpose.TREATMENT,
        session_id=f"s-{uuid.uuid4().hex[:8]}", request_id=f"r-{uuid.uuid4().hex[:8]}",
        school_ids={school["school_id"]} if school else set(),
    )


def new_student(router: Router, school: dict[str, uuid.UUID], **values: Any) -> Any:
    """Create a student through the router's primary."""
    base: dict[str, Any] = {
        "student_number": f"R-{uuid.uuid4().hex[:10]}", "first_name": "Rowan", "last_name": "Quill",
        "date_of_birth": date(2014, 2, 3), "grade": "5", "gender": "FEMALE",
        "enrollment_date": date(2020, 9, 1), **school, **values,
    }
    return router.write(make_ctx(school), students.create, base).unwrap()


def probe(conn: Conn, ctx: ExecutionContext, sid: uuid.UUID) -> Result[tuple[bool, str], DataError]:
    """Which kind of server serves this connection, and the student's grade as it sees it."""
    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    assert row is not None
    return students.find_by_id(conn, ctx, sid).map(lambda s: (bool(row[0]), s.grade))


def eventually(check: Any, what: str) -> Any:
    """Poll ``check()`` until it returns a truthy value (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + WAIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.05)


def served_by_replica(router: Router, ctx: ExecutionContext, sid: uuid.UUID, grade: str) -> bool:
    """One read: True when a replica served it with ``grade``."""
    return router.read(ctx, probe, sid) == Success((True, grade))


# --- routing ----------------------------------------------------------------------------------


def test_reads_land_on_the_replica_and_disclosures_are_recorded_on_the_primary(
    cluster: local.LocalCluster, router: Router, school: dict[str, uuid.UUID]
) -> None:
    s = new_student(router, school)
    reader = make_ctx(school)
    cluster.wait_replayed("replica-1")
    with psycopg.connect(cluster.url("primary"), autocommit=True) as primary:
        def reads() -> int:
            row = primary.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'READ' AND entity_id = %s", (s.id,)
            ).fetchone()
            assert row is not None
            return int(row[0])

        before = reads()
        assert router.read(reader, probe, s.id) == Success((True, "5"))
        with router.connection(reader, write=False) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            assert row == (True,) and is_replica(conn)
            assert students.find_by_id(conn, reader, s.id).unwrap().id == s.id
        assert reads() == before + 2  # each replica read's disclosure was committed on the primary
    assert router.health().server("replica-1").reads >= 2


def test_write_then_read_in_same_context_sees_it_while_replay_is_paused(
    cluster: local.LocalCluster, router: Router, school: dict[str, uuid.UUID]
) -> None:
    s = new_student(router, school)
    cluster.wait_replayed("replica-1")
    writer, bystander = make_ctx(school), make_ctx(school)
    fallbacks = dict(router.health().fallbacks).get("read_your_writes", 0)
    cluster.pause_replay("replica-1")
    try:
        assert isinstance(router.write(writer, students.update, s.id, {"grade": "6"}), Success)
        assert router.read(writer, probe, s.id) == Success((False, "6"))  # primary: replica behind
        assert router.read(bystander, probe, s.id) == Success((True, "5"))  # the replica is stale
        assert dict(router.health().fallbacks)["read_your_writes"] > fallbacks
    finally:
        cluster.resume_replay("replica-1")
    eventually(lambda: served_by_replica(router, writer, s.id, "6"), "writer back on the replica")


def test_a_crud_write_outside_a_unit_of_work_makes_the_context_pending_at_once(
    cluster: local.LocalCluster, router: Router, school: dict[str, uuid.UUID]
) -> None:
    s = new_student(router, school)
    cluster.wait_replayed("replica-1")
    writer = make_ctx(school)
    seen: list[Result[tuple[bool, str], DataError]] = []
    cluster.pause_replay("replica-1")
    try:
        with router.connection(writer, write=True) as conn:
            assert students.update(conn, writer, s.id, {"grade": "7"}).unwrap().grade == "7"
            assert router.required_lsn(writer) is None  # committed, position not read yet
            other_thread = threading.Thread(target=lambda: seen.append(router.read(writer, probe, s.id)))
            other_thread.start()
            other_thread.join()
        assert seen == [Success((False, "7"))]
        required, replayed = router.required_lsn(writer), router.health().server("replica-1").replay_lsn
        assert required is not None and replayed is not None and required > replayed
        assert router.read(writer, probe, s.id) == Success((False, "7"))
    finally:
        cluster.resume_replay("replica-1")
    eventually(lambda: served_by_replica(router, writer, s.id, "7"), "writer back on the replica")


def test_work_inside_a_write_checkout_reuses_its_connection(
    router: Router, school: dict[str, uuid.UUID]
) -> None:
    s = new_student(router, school)
    ctx = make_ctx(school)
    with router.connection(ctx, write=True) as conn, unit_of_work(conn, ctx):
        assert students.update(conn, ctx, s.id, {"grade": "8"}).unwrap().grade == "8"
        same = router.read(ctx, lambda c, _ctx: Success(c))
        assert same == Success(conn)
        assert router.read(ctx, probe, s.id) == Success((False, "8"))  # sees its uncommitted write
        with router.connection(ctx, write=False) as nested, router.connection(ctx, write=True) as w:
            assert nested is conn and w is conn


def test_a_write_slipped_into_a_replica_read_fails(
    router: Router, school: dict[str, uuid.UUID]
) -> None:
    s = new_student(router, school)
    result = router.read(make_ctx(school), students.update, s.id, {"grade": "9"})
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), Internal) and result.failure().sqlstate == "25006"


def test_note_commit_covers_writes_on_connections_the_router_did_not_hand_out(
    cluster: local.LocalCluster, router: Router, school: dict[str, uuid.UUID]
) -> None:
    s = new_student(router, school)
    cluster.wait_replayed("replica-1")
    writer, bystander = make_ctx(school), make_ctx(school)
    cluster.pause_replay("replica-1")
    try:
        with psycopg.connect(app_url(cluster, "primary"), autocommit=True) as own:
            students.update(own, writer, s.id, {"grade": "10"}).unwrap()
            assert router.read(writer, probe, s.id) == Success((True, "5"))  # unknown to the router
            router.note_commit(own, writer)
        assert router.read(writer, probe, s.id) == Success((False, "10"))
        assert router.read(bystander, probe, s.id) == Success((True, "5"))
    finally:
        cluster.resume_replay("replica-1")


def test_lagging_replica_is_skipped_and_counted_then_brought_back(
    cluster: local.LocalCluster, school: dict[str, uuid.UUID]
) -> None:
    config = RouterConfig(max_lag_bytes=1024, max_lag_seconds=None, monitor=False,
                          check_interval=0.05, replica_timeout=0.5, connect_timeout=2)
    with Router.open(app_url(cluster, "primary"), [app_url(cluster, "replica-1")],
                     config=config,
                     min_size=1, max_size=2) as r:
        s = new_student(r, school)
        cluster.wait_replayed("replica-1")
        assert r.check_all().server("replica-1").state == "up"
        reader = make_ctx(school)
        cluster.pause_replay("replica-1")
        try:
            with psycopg.connect(cluster.url("primary"), autocommit=True) as conn:
                conn.execute("INSERT INTO districts (name, code) SELECT 'L' || g, 'L-' || g || %s "
                             "FROM generate_series(1, 200) g", (uuid.uuid4().hex[:6],))
            health = r.check_all()
            replica = health.server("replica-1")
            assert replica.state == "lagging" and replica.lag_bytes is not None
            assert replica.lag_bytes > 1024
            assert r.read(reader, probe, s.id) == Success((False, "5"))
            assert dict(r.health().server("replica-1").skips)["lagging"] >= 1
        finally:
            cluster.resume_replay("replica-1")
        cluster.wait_replayed("replica-1")  # no monitor: reads start the due checks lazily
        eventually(lambda: r.read(reader, probe, s.id) == Success((True, "5")), "back, lazily")
        assert r.health().server("replica-1").state == "up"


def test_replica_stopped_mid_workload_falls_back_without_a_failed_call_then_returns(
    cluster: local.LocalCluster, router: Router, school: dict[str, uuid.UUID]
) -> None:
    s = new_student(router, school)
    cluster.wait_replayed("replica-1")
    eventually(lambda: router.health().server("replica-1").state == "up", "replica up")
    results: list[Result[tuple[bool, str], DataError]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker() -> None:
        ctx = make_ctx(school)
        while not stop.is_set():
            r = router.read(ctx, probe, s.id)
            with lock:
                results.append(r)

    def count(on_replica: bool) -> int:
        with lock:
            return sum(1 for r in results if r == Success((on_replica, "5")))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        eventually(lambda: count(True) >= 40, "reads served by the replica")
        cluster.stop("replica-1", "fast")
        on_primary = count(False)
        eventually(lambda: count(False) >= on_primary + 100, "reads served by the primary")
    finally:
        stop.set()
        for t in threads:
            t.join()
        if "replica-1" not in cluster.running:
            cluster.start("replica-1")
    failed = [r for r in results if not isinstance(r, Success)]
    assert failed == []
    health = router.health()
    assert health.server("replica-1").errors >= 1
    assert sum(n for _, n in health.server("replica-1").skips) >= 1
    cluster.wait_streaming()
    eventually(lambda: served_by_replica(router, make_ctx(school), s.id, "5"),
               "reads back on the restarted replica")
    assert router.health().server("replica-1").state == "up"


# --- strategies -------------------------------------------------------------------------------


def _two_replicas(cluster: local.LocalCluster, strategy: Strategy) -> Router:
    """Two replica entries on the same server: enough to watch the choice between them."""
    config = RouterConfig(strategy=strategy, monitor=False, replica_timeout=2, connect_timeout=2)
    return Router.open(app_url(cluster, "primary"), [app_url(cluster, "replica-1")] * 2,
                       config=config,
                       min_size=1, max_size=3)


def test_round_robin_alternates(cluster: local.LocalCluster, school: dict[str, uuid.UUID]) -> None:
    with _two_replicas(cluster, Strategy.ROUND_ROBIN) as r:
        s = new_student(r, school)
        cluster.wait_replayed("replica-1")
        reader = make_ctx(school)
        for _ in range(10):
            assert r.read(reader, probe, s.id) == Success((True, "5"))
        h = r.health()
        assert (h.server("replica-1").reads, h.server("replica-2").reads) == (5, 5)


def test_least_loaded_avoids_the_busy_replica(
    cluster: local.LocalCluster, school: dict[str, uuid.UUID]
) -> None:
    with _two_replicas(cluster, Strategy.LEAST_LOADED) as r:
        s = new_student(r, school)
        cluster.wait_replayed("replica-1")
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with r.connection(make_ctx(school), write=False):
                held.set()
                release.wait()

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait()
        try:
            busy = next(x.pool.name for x in r.health().servers if x.reads == 1)
            reader = make_ctx(school)
            for _ in range(6):
                assert r.read(reader, probe, s.id) == Success((True, "5"))
        finally:
            release.set()
            holder.join()
        h = r.health()
        idle = "replica-2" if busy == "replica-1" else "replica-1"
        assert (h.server(busy).reads, h.server(idle).reads) == (1, 6)


# --- metrics ----------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"\\\n]*"(,[a-z_]+="[^"\\\n]*")*\})? -?[0-9.e+-]+$')


def test_pool_metrics_show_real_in_use_and_waiting_under_load(cluster: local.LocalCluster) -> None:
    config = RouterConfig(monitor=False, primary_timeout=30)
    with Router.open(app_url(cluster, "primary"), [], config=config, min_size=1,
                     max_size=2) as r:
        held, release = threading.Semaphore(0), threading.Event()

        def hold() -> None:
            with r.connection(make_ctx(), write=True) as conn:
                conn.execute("SELECT 1")
                held.release()
                release.wait()

        threads = [threading.Thread(target=hold) for _ in range(6)]
        for t in threads:
            t.start()
        try:
            loaded = eventually(
                lambda: (h := r.health()).primary.pool.waiting == 4 and h, "4 requests waiting")
            time.sleep(0.05)  # let the waiters accumulate measurable wait time
        finally:
            release.set()
            for t in threads:
                t.join()
        pool = loaded.primary.pool
        assert (pool.size, pool.in_use, pool.idle, pool.waiting) == (2, 2, 0, 4)
        assert pool.utilization == 1.0
        text = to_prometheus(loaded)
        assert 'wxdata_pool_in_use{pool="primary",role="primary"} 2' in text
        assert 'wxdata_pool_waiting{pool="primary",role="primary"} 4' in text
        # the pool hands returned connections to a worker (reset) before they count as idle
        after = eventually(lambda: (p := r.health().primary.pool).in_use == 0 and p, "all back")
        assert after.requests >= 6 and after.requests_queued >= 4 and after.wait_ms > 0
        assert after.waiting == 0 and after.usage_ms > 0


def test_prometheus_exposition_is_well_formed(router: Router) -> None:
    text = to_prometheus(router.check_all())
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter") and name not in names
            names.add(name)
            continue
        assert _SAMPLE.match(line), line
        assert line.split("{")[0].split(" ")[0] in names
    for needed in ("wxdata_replica_lag_bytes", "wxdata_replica_lag_seconds", "wxdata_server_up",
                   "wxdata_pool_wait_seconds_total", "wxdata_pool_connection_errors_total"):
        assert needed in names
    assert 'wxdata_server_up{pool="replica-1",role="replica"} 1' in text
    data = router.health().to_dict()
    assert data["servers"]["replica-1"]["lag_bytes"] is not None and data["primary_up"] is True


def _run_health(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["health", *argv])
    code: int = args.handler(args)
    return code


@once
def test_health_command_prints_metrics_and_fails_without_primary(
    cluster: local.LocalCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wxdata import cli

    assert "wxdata.pool_metrics" in cli.AREAS
    monkeypatch.setenv("DATABASE_URL", cluster.url("primary"))
    monkeypatch.setenv("DATABASE_REPLICA_URLS", cluster.url("replica-1"))
    assert _run_health("--format", "prometheus", "--require-replicas") == 0
    out = capsys.readouterr().out
    assert 'wxdata_server_up{pool="primary",role="primary"} 1' in out
    assert 'wxdata_replica_lag_bytes{pool="replica-1",role="replica"}' in out
    assert _run_health("--format", "json") == 0
    assert '"primary_up": true' in capsys.readouterr().out
    dead = free_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://wxdata@127.0.0.1:{dead}/wxdata")
    monkeypatch.delenv("DATABASE_REPLICA_URLS")
    with pytest.raises(CliError) as down:  # `wxdata health` prints it as one line, exit 3
        _run_health("--timeout", "2")
    assert down.value.code == 3 and "primary unreachable" in down.value.message


def test_unreachable_primary_is_a_failure_value_not_an_exception() -> None:
    dead = f"postgresql://wxdata@127.0.0.1:{free_port()}/wxdata"
    config = RouterConfig(monitor=False, primary_timeout=0.3, connect_timeout=1)
    with Router.open(dead, [], config=config, min_size=0, max_size=1) as r:
        assert r.health().primary_up is False
        ctx = make_ctx()
        assert isinstance(r.write(ctx, students.count).failure(), Unavailable)
        assert isinstance(r.read(ctx, students.count).failure(), Unavailable)


# --- configuration and bookkeeping (no server needed) -----------------------------------------


@once
def test_settings_for_replicas_are_validated() -> None:
    s = load_settings({"DATABASE_REPLICA_URLS": "postgresql://a/x, postgresql://b/x",
                       "DB_REPLICA_STRATEGY": "least-loaded", "DB_REPLICA_MAX_LAG_BYTES": "0",
                       "DB_REPLICA_MAX_LAG_SECONDS": "5", "DB_SLOW_QUERY_MS": "250"})
    assert s.replica_urls == ("postgresql://a/x", "postgresql://b/x")
    assert (s.replica_strategy, s.replica_max_lag_bytes, s.replica_max_lag_seconds,
            s.slow_query_ms) == ("least_loaded", None, 5.0, 250)
    config = RouterConfig.from_settings(s)
    assert config.strategy is Strategy.LEAST_LOADED and config.max_lag_bytes is None
    for env, name in (({"DB_REPLICA_STRATEGY": "random"}, "DB_REPLICA_STRATEGY"),
                      ({"DB_REPLICA_MAX_LAG_SECONDS": "-1"}, "DB_REPLICA_MAX_LAG_SECONDS"),
                      ({"DB_SLOW_QUERY_MS": "soon"}, "DB_SLOW_QUERY_MS"),
                      ({"DATABASE_REPLICA_URLS": "mysql://x"}, "DATABASE_REPLICA_URLS")):
        with pytest.raises(ConfigError, match=name):
            load_settings(env)


@once
def test_consistency_keys() -> None:
    ctx = ExecutionContext(user_id="u-1", role=Role.NURSE, session_id="s-1")
    assert consistency_key(ctx) == "s:s-1"
    assert consistency_key(ctx, Consistency.USER) == "u:u-1"
    assert consistency_key(ExecutionContext(user_id="u-1", role=Role.NURSE)) == "u:u-1"


def _bare_routing(max_tracked: int, replicas: int) -> Routing:
    return Routing.of(
        RouterConfig(max_tracked=max_tracked, monitor=False),
        Server("primary", "primary", "", state="up"),
        tuple(Server(f"replica-{i}", "replica", "", state="up") for i in range(1, replicas + 1)),
    )


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.integers(0, 5), st.integers(1, 1000)),
        st.tuples(st.just("unknown"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("resolve"), st.just(0), st.just(0)),
        st.tuples(st.just("replay"), st.integers(0, 2), st.floats(0, 1)),
        st.tuples(st.just("down"), st.integers(0, 2), st.booleans()),
    ),
    max_size=60,
)


@once
@settings(max_examples=150, deadline=None)
@given(ops=_OPS, max_tracked=st.integers(1, 4))
def test_a_context_never_needs_less_than_its_last_commit(
    ops: list[tuple[str, int, Any]], max_tracked: int
) -> None:
    """Whatever commits, unplaced commits, replays, outages, pruning and evictions: a context is
    sent to the primary, or to a replica only at or past its last commit."""
    r = _bare_routing(max_tracked, 3)
    lsn = 0
    last: dict[str, int] = {}
    for op, index, value in ops:
        if op == "commit":
            lsn += value
            key = f"s:{index}"
            r.ledger.record(key, lsn)
            last[key] = lsn
        elif op == "unknown":  # a commit whose position could not be read: it is at least lsn + 1
            lsn += 1
            key = f"s:{index}"
            r.ledger.record(key, UNKNOWN)
            last[key] = lsn
        elif op == "resolve":  # the primary answers its probe: every commit so far is before lsn
            r.primary_status((False, lsn), 0.0)
        else:
            server = r.replicas[index]
            if op == "replay":  # a replica only moves forward, never past what was written
                server.replay_lsn = max(server.replay_lsn, int(lsn * value))
            else:
                server.state = "down" if value else "up"
            r.prune()
        assert len(r.ledger.positions) <= max_tracked
        for key, position in last.items():
            replicas, required, _ = r.candidates(key)
            assert (required is None and not replicas) or (required is not None and required >= position)


@once
def test_a_pending_write_keeps_its_context_on_the_primary_until_its_position_is_known() -> None:
    r = _bare_routing(10, 1)
    r.replicas[0].pool = object()  # eligible as far as routing goes
    r.ledger.begin_write("s:a")
    assert r.candidates("s:a") == ([], None, "pending_write")
    r.ledger.end_write("s:a", UNKNOWN)
    assert r.candidates("s:a") == ([], None, "read_your_writes")
    r.primary_status((False, 500), 0.0)
    assert r.candidates("s:a") == ([r.replicas[0]], 500, "no_replica")
    assert r.candidates("s:other") == ([r.replicas[0]], 0, "no_replica")


@once
def test_status_rows_set_states_and_taking_down_backs_off() -> None:
    r = _bare_routing(10, 1)
    replica = r.replicas[0]
    r.primary_status((False, 10_000_000_000), 0.0)
    verdict = r.replica_status(replica, (True, 0, 0, 0.0), 1.0)
    assert (replica.state, replica.reason) == ("lagging", "lag over max_lag_bytes")
    assert verdict.changed and verdict.open_pool and verdict.down is None
    assert r.replica_status(replica, (False, 0, 0, 0.0), 1.0).down is not None
    r.primary_status((False, 100), 0.0)
    assert r.replica_status(replica, (True, 100, 100, 0.0), 1.0).new == "up"
    backoffs = [r.take_down(replica, "test", 0.0) and replica.backoff for _ in range(8)]
    assert backoffs == sorted(backoffs) and backoffs[-1] == r.config.backoff_max
    assert replica.state == "down" and r.candidates("s:x")[0] == []


# --- the async router: same rules (the shared core), async I/O ---------------------------------


async def aprobe(conn: psycopg.AsyncConnection[Any], ctx: ExecutionContext, sid: uuid.UUID
                 ) -> Result[tuple[bool, str], DataError]:
    """The async twin of :func:`probe`."""
    from wxdata.aio.domains import students as astudents

    row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
    assert row is not None
    return (await astudents.find_by_id(conn, ctx, sid)).map(lambda s: (bool(row[0]), s.grade))


async def aeventually(check: Any, what: str) -> Any:
    """Poll ``await check()`` until truthy (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + WAIT
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.05)


@once
def test_async_reads_land_on_the_replica_and_disclosures_are_recorded_on_the_primary(
    cluster: local.LocalCluster, router: Router, school: dict[str, uuid.UUID]
) -> None:
    from wxdata.aio.domains import students as astudents
    from wxdata.aio.replicas import AsyncRouter

    s = new_student(router, school)
    reader = make_ctx(school)
    cluster.wait_replayed("replica-1")

    async def main() -> tuple[Result[tuple[bool, str], DataError], int]:
        async with await AsyncRouter.open(app_url(cluster, "primary"),
                                          [app_url(cluster, "replica-1")], config=FAST,
                                          min_size=1, max_size=4) as ar:
            await aeventually(lambda: _async_up(ar), "async router sees the replica up")
            got = await ar.read(reader, aprobe, s.id)
            async with ar.connection(reader, write=False) as conn:
                row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
                assert row == (True,) and is_replica(conn)
                assert (await astudents.find_by_id(conn, reader, s.id)).unwrap().id == s.id
            return got, ar.health().server("replica-1").reads

    with psycopg.connect(cluster.url("primary"), autocommit=True) as primary:
        def reads() -> int:
            row = primary.execute("SELECT count(*) FROM audit_log WHERE action = 'READ' "
                                  "AND entity_id = %s AND request_id = %s",
                                  (s.id, reader.request_id)).fetchone()
            assert row is not None
            return int(row[0])

        result, replica_reads = asyncio.run(main())
        assert result == Success((True, "5")) and replica_reads == 2
        assert reads() == 2  # each replica read's disclosure was committed on the primary


async def _async_up(ar: Any) -> bool:
    return bool(ar.health().server("replica-1").state == "up")


@once
def test_async_write_then_read_in_same_context_sees_it_while_replay_is_paused(
    cluster: local.LocalCluster, router: Router, school: dict[str, uuid.UUID]
) -> None:
    from wxdata.aio.domains import students as astudents
    from wxdata.aio.replicas import AsyncRouter

    s = new_student(router, school)
    cluster.wait_replayed("replica-1")
    writer, bystander = make_ctx(school), make_ctx(school)

    async def main() -> None:
        async with await AsyncRouter.open(app_url(cluster, "primary"),
                                          [app_url(cluster, "replica-1")], config=FAST,
                                          min_size=1, max_size=4) as ar:
            await aeventually(lambda: _async_up(ar), "async router sees the replica up")
            cluster.pause_replay("replica-1")
            try:
                assert isinstance(await ar.write(writer, astudents.update, s.id, {"grade": "6"}),
                                  Success)
                assert ar.required_lsn(writer) is not None
                assert await ar.read(writer, aprobe, s.id) == Success((False, "6"))  # primary
                assert await ar.read(bystander, aprobe, s.id) == Success((True, "5"))  # stale
                assert dict(ar.health().fallbacks)["read_your_writes"] >= 1
            finally:
                cluster.resume_replay("replica-1")

            async def writer_on_replica() -> bool:
                return await ar.read(writer, aprobe, s.id) == Success((True, "6"))

            await aeventually(writer_on_replica, "writer back on the replica")

    asyncio.run(main())


@once
def test_async_replica_stopped_mid_workload_falls_back_without_a_failed_call(
    cluster: local.LocalCluster, router: Router, school: dict[str, uuid.UUID]
) -> None:
    from wxdata.aio.replicas import AsyncRouter

    s = new_student(router, school)
    cluster.wait_replayed("replica-1")
    results: list[Result[tuple[bool, str], DataError]] = []

    async def main() -> Any:
        async with await AsyncRouter.open(app_url(cluster, "primary"),
                                          [app_url(cluster, "replica-1")], config=FAST,
                                          min_size=1, max_size=6) as ar:
            await aeventually(lambda: _async_up(ar), "async router sees the replica up")
            stop = asyncio.Event()

            async def worker() -> None:
                ctx = make_ctx(school)
                while not stop.is_set():
                    results.append(await ar.read(ctx, aprobe, s.id))

            def count(on_replica: bool) -> int:
                return sum(1 for r in results if r == Success((on_replica, "5")))

            async def at_least(on_replica: bool, n: int) -> bool:
                return count(on_replica) >= n

            tasks = [asyncio.create_task(worker()) for _ in range(4)]
            try:
                await aeventually(lambda: at_least(True, 40), "reads served by the replica")
                await asyncio.to_thread(cluster.stop, "replica-1", "fast")
                on_primary = count(False)
                await aeventually(lambda: at_least(False, on_primary + 100),
                                  "reads served by the primary")
            finally:
                stop.set()
                await asyncio.gather(*tasks)
                if "replica-1" not in cluster.running:
                    await asyncio.to_thread(cluster.start, "replica-1")
            await asyncio.to_thread(cluster.wait_streaming)

            async def back() -> bool:
                return await ar.read(make_ctx(school), aprobe, s.id) == Success((True, "5"))

            await aeventually(back, "reads back on the restarted replica")
            return ar.health()

    health = asyncio.run(main())
    assert [r for r in results if not isinstance(r, Success)] == []
    assert health.server("replica-1").errors >= 1 and health.server("replica-1").state == "up"


@once
def test_only_a_replica_failing_under_a_read_fails_it_over_not_a_refused_disclosure() -> None:
    from wxdata.tx.decorators import UNRECORDED

    r = _bare_routing(10, 1)
    replica, primary = r.replicas[0], r.primary
    lost: Result[Any, DataError] = Failure(Unavailable(reason="server closed the connection"))
    assert r.failed_under(replica, lost, broken=False)
    assert r.failed_under(replica, Success(1), broken=True)
    assert not r.failed_under(replica, Failure(UNRECORDED), broken=False)  # lane 2 down: as is
    assert not r.failed_under(replica, Failure(Internal()), broken=False)
    assert not r.failed_under(primary, lost, broken=True)  # the primary is the last resort
    assert not r.caught_up(replica, 10, 20) and replica.counters["skip_behind"] == 1
    assert r.caught_up(replica, 30, 20) and replica.replay_lsn == 30


@once
def test_async_replica_read_without_its_lane_fails_closed_and_keeps_the_replica(
    cluster: local.LocalCluster, router: Router, school: dict[str, uuid.UUID]
) -> None:
    """The async router sends a replica read's record to the primary on lane 2: with that lane
    unreachable the read answers a Failure with no data, and the replica stays up (no re-run)."""
    import socket

    import attrs

    from wxdata.aio.replicas import AsyncRouter
    from wxdata.config import settings as current
    from wxdata.tx.decorators import UNRECORDED

    s = new_student(router, school)
    cluster.wait_replayed("replica-1")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    config = attrs.evolve(current(), audit_lane_timeout=0.3)
    reader = make_ctx(school)

    async def main() -> tuple[Result[tuple[bool, str], DataError], Any]:
        async with await AsyncRouter.open(app_url(cluster, "primary"),
                                          [app_url(cluster, "replica-1")], config=FAST,
                                          settings=config, min_size=1, max_size=2) as ar:
            await aeventually(lambda: _async_up(ar), "async router sees the replica up")
            ar.lane_target = make_conninfo(cluster.url("primary"), port=str(dead_port))
            return await ar.read(reader, aprobe, s.id), ar.health()

    result, health = asyncio.run(main())
    assert result == Failure(UNRECORDED)  # no record, no data
    replica = health.server("replica-1")
    assert replica.state == "up" and replica.reads == 1 and health.primary.reads == 0
    with psycopg.connect(cluster.url("primary"), autocommit=True) as primary:
        row = primary.execute("SELECT count(*) FROM audit_log WHERE request_id = %s AND "
                              "action = 'READ' AND success", (reader.request_id,)).fetchone()
    assert row == (0,)
