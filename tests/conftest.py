"""Shared fixtures: one migrated database per test run (created and dropped here), connections,
contexts and a school to hang students from.

The database is migrated as the server's superuser (the owner). Each run creates its own LOGIN
application role (``wxdata_test_app_<random>``, member of wxdata_app, dropped at the end), and
``conn`` / ``db_url`` connect as that role, so row-level security applies to every test exactly as
in production. ``admin_conn`` / ``owner_url`` are the superuser, for privileged set-up only.

The server is ``WXDATA_TEST_DATABASE_URL`` or ``DATABASE_URL`` when set (CI sets the local
PostgreSQL); otherwise the embedded PostgreSQL (:mod:`wxdata.embedded`: ``WXDATA_EMBEDDED_DIR``,
else the cache directory) serves the run.

Tests that start a private Redis are skipped, with the reason in the summary, on a machine without
``redis-server``.

``WXDATA_TEST_POOLER=transaction`` runs the chosen tests through a private PgBouncer in
transaction-pooling mode: ``db_url`` and ``conn`` then reach the test database through it and
wxdata runs with ``DB_POOLER=transaction`` (migrations, ``server_url`` and ``direct_db_url`` stay
direct). ``WXDATA_TEST_POOLER=transaction-prepared`` does the same through a PgBouncer that keeps
prepared statements, wxdata running with ``DB_POOLER=transaction-prepared``.

Tests never depend on leftovers: each creates its own rows (unique numbers) and asserts on those
rows only. Tests that need a pristine database clone the migrated template with
``fresh_database``.
"""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from hypothesis import strategies as hypothesis_strategies
from psycopg import sql
from psycopg.conninfo import make_conninfo

os.environ.setdefault("WXDATA_ENV", "test")
# Behind the test PgBouncer, wxdata must know before it first reads its settings.
os.environ.update(
    {"DB_POOLER": os.environ["WXDATA_TEST_POOLER"].strip().lower()}
    if os.environ.get("WXDATA_TEST_POOLER", "").strip().lower().startswith("transaction") else {}
)
os.environ.setdefault("WXDATA_SCOPE_KEY", "d3hkYXRhIHRlc3Qgc2NvcGUga2V5LCBub3QgYSBzZWNyZXQ=")

from tests.pgbouncer import PgBouncer
from tests.pgbouncer import available as pgbouncer_available
from wxdata import ExecutionContext, Purpose, Role, system_context
from wxdata.db import connect_kwargs
from wxdata.roles import ensure_app_role
from wxdata.testing import (
    clone_database,
    configured_server_url,
    create_migrated_database,
    drop_database,
    unique_name,
)
from wxdata.tx.token import scope_key


@pytest.fixture(scope="session", autouse=True)
def _hypothesis_unicode_tables() -> None:
    """Build Hypothesis's Unicode tables before the first test runs.

    Hypothesis computes them the first time a text strategy is validated and keeps them under
    ``.hypothesis/``. In a fresh checkout that takes about a second, and when the first text
    strategy sits inside another one (validated as it is drawn), that second counts as generating
    the first example and fails the too_slow health check of whichever test comes first.
    """
    hypothesis_strategies.text().validate()


#: pytester runs user test modules in their own pytest process; the wxdata plugin's ``wx_`` fixtures
#: (same name as its ``pytest11`` entry point, so it is never registered twice).
pytest_plugins = ["pytester", "wxdata.testing.plugin"]

#: The scope key of the test runs (row-level security verifies tokens signed with it).
TEST_SCOPE_KEY = base64.b64decode(os.environ["WXDATA_SCOPE_KEY"])

POOLER = os.environ.get("WXDATA_TEST_POOLER", "").strip().lower()
if POOLER not in ("", "none", "transaction", "transaction-prepared"):
    raise pytest.UsageError("WXDATA_TEST_POOLER must be none, transaction or transaction-prepared")
POOLED = POOLER.startswith("transaction")


@pytest.fixture(scope="session")
def server_url() -> str:
    """The admin URL of the server the tests run against."""
    return configured_server_url()


@pytest.fixture(scope="session")
def app_role() -> tuple[str, str]:
    """Name and password of this run's application LOGIN role (unique: runs share the server)."""
    return f"wxdata_test_app_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(18)


@pytest.fixture(scope="session")
def pristine_template(server_url: str) -> Iterator[str]:
    """The name of a database migrated once for this run (by the superuser, its owner, with the
    test scope key installed) and never used: what clones start from."""
    name = unique_name("wxdata_tmpl")
    key = scope_key()
    assert key is not None, "the tests set WXDATA_SCOPE_KEY"
    create_migrated_database(server_url, name, key)
    try:
        yield name
    finally:
        drop_database(server_url, name)


@pytest.fixture(scope="session")
def pgbouncer(server_url: str) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction-pooling mode in front of the test server, for this run: keeping
    prepared statements under ``WXDATA_TEST_POOLER=transaction-prepared``, passing their names
    through otherwise."""
    if not pgbouncer_available():
        pytest.fail("pgbouncer is not installed (bash .ci/pgbouncer)")
    bouncer = PgBouncer(server_url, keeps_statements=POOLER == "transaction-prepared").start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="session")
def owner_url(server_url: str, pristine_template: str, app_role: tuple[str, str]) -> Iterator[str]:
    """The superuser URL of this run's database (a clone of the migrated template), dropped at the
    end; this run's application role is created with it (and dropped with it)."""
    name = unique_name("wxdata_test")
    url = clone_database(server_url, pristine_template, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            ensure_app_role(conn, *app_role)
        yield url
    finally:
        drop_database(server_url, name)
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(app_role[0])))


@pytest.fixture(scope="session")
def app_url_for(app_role: tuple[str, str]) -> Callable[[str], str]:
    """Map the superuser URL of a test database (e.g. a ``fresh_database``) to this run's
    application role on that database."""
    return lambda url: make_conninfo(url, user=app_role[0], password=app_role[1])


@pytest.fixture(scope="session")
def direct_db_url(owner_url: str, app_url_for: Callable[[str], str]) -> str:
    """The test database as this run's application role (row-level security applies), always
    direct to PostgreSQL."""
    return app_url_for(owner_url)


@pytest.fixture(scope="session")
def db_url(direct_db_url: str, request: pytest.FixtureRequest) -> str:
    """The test database as the application role: direct, or through PgBouncer under
    ``WXDATA_TEST_POOLER=transaction`` or ``transaction-prepared``."""
    if not POOLED:
        return direct_db_url
    bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    return bouncer.url(direct_db_url)


@pytest.fixture
def fresh_database(server_url: str, pristine_template: str) -> Iterator[Callable[[], str]]:
    """Factory of throw-away databases cloned from the migrated, never-used template (superuser
    URLs; ``app_url_for`` gives the application role's).

    Not from the run's shared database: that one holds every row earlier tests left (soft-deleted
    students, audit records...), so a clone of it is not empty and its contents depend on which
    tests ran before.
    """
    created: list[str] = []
    template = pristine_template

    def make() -> str:
        name = unique_name("wxdata_fresh")
        created.append(name)
        return clone_database(server_url, template, name)

    yield make
    for name in created:
        drop_database(server_url, name)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test database as the application role, opened as wxdata
    opens its own."""
    with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as c:
        yield c


@pytest.fixture
def admin_conn(owner_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit superuser connection to the test database (privileged set-up only)."""
    with psycopg.connect(owner_url, autocommit=True) as c:
        yield c


@pytest.fixture
def ctx(school: dict[str, uuid.UUID]) -> ExecutionContext:
    """A nurse treating students of the ``school`` fixture's school."""
    return ExecutionContext(
        user_id="u-nurse-1", role=Role.NURSE, purpose=Purpose.TREATMENT,
        ip_address="10.1.2.3", user_agent="pytest", request_id=f"req-{uuid.uuid4().hex[:8]}",
        school_ids={school["school_id"]},
    )


@pytest.fixture
def sys_ctx() -> ExecutionContext:
    """The system context (migrations, seeding)."""
    return system_context("tests")


@pytest.fixture
def school(conn: psycopg.Connection[Any]) -> dict[str, uuid.UUID]:
    """A fresh district and school."""
    tag = uuid.uuid4().hex[:8]
    district = conn.execute(
        "INSERT INTO districts (name, code) VALUES (%s, %s) RETURNING id",
        (f"District {tag}", f"D-{tag}"),
    ).fetchone()
    assert district is not None
    school = conn.execute(
        "INSERT INTO schools (name, code, district_id) VALUES (%s, %s, %s) RETURNING id",
        (f"School {tag}", f"S-{tag}", district[0]),
    ).fetchone()
    assert school is not None
    return {"district_id": district[0], "school_id": school[0]}


def student_values(school: dict[str, uuid.UUID] | None = None, **overrides: Any) -> dict[str, Any]:
    """Valid values for a new student with a unique student number."""
    tag = uuid.uuid4().hex[:10].upper()
    values: dict[str, Any] = {
        "student_number": f"STU-{tag}",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": date(2014, 5, 17),
        "grade": "5",
        "gender": "FEMALE",
        "enrollment_date": date(2020, 9, 1),
    }
    if school:
        values.update(school_id=school["school_id"], district_id=school["district_id"])
    values.update(overrides)
    return values


@pytest.fixture
def make_student(
    conn: psycopg.Connection[Any], sys_ctx: ExecutionContext, school: dict[str, uuid.UUID]
) -> Callable[..., Any]:
    """Create a student in ``school`` through wxdata and return the row."""
    from wxdata.domains import students

    def make(**overrides: Any) -> Any:
        return students.create(conn, sys_ctx, student_values(school, **overrides)).unwrap()

    return make


# --- Redis (cache tests) ---------------------------------------------------------------------


class RedisServer:
    """A private ``redis-server`` on a free loopback port in a temp folder (never the shared one)."""

    def __init__(self, directory: Any) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Any = None

    def start(self) -> RedisServer:
        """Start (or restart on the same port) and wait until it answers PING (skips the test
        when redis-server is not installed)."""
        import subprocess
        import time

        import redis

        from tests.redis_topologies import require_redis

        require_redis("redis-server")

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        client.close()
        return self

    def stop(self) -> None:
        """Kill the server (SIGKILL: like a crash) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``REDIS_URL`` when set, else a redis-server started for this run (stopped at the end)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def own_redis(tmp_path: Any) -> Iterator[RedisServer]:
    """A redis-server of this test alone (fault tests stop and restart it), stopped at the end."""
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


# --- Redis topologies (Cluster, Sentinel) -----------------------------------------------------


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A private 3-primary Redis Cluster for this run (killed at the end)."""
    from tests.redis_topologies import Cluster

    cluster = Cluster(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A private primary + replica watched by 3 Sentinels for this run (killed at the end)."""
    from tests.redis_topologies import SentinelSet

    sentinels = SentinelSet(tmp_path_factory.mktemp("redis-sentinel")).start()
    try:
        yield sentinels
    finally:
        sentinels.stop()


@pytest.fixture(params=["single", "cluster", "sentinel"])
def topology_url(request: pytest.FixtureRequest) -> str:
    """``REDIS_URL`` of each topology in turn: one server, a Cluster, Sentinel."""
    if request.param == "single":
        return str(request.getfixturevalue("redis_url"))
    if request.param == "cluster":
        return str(request.getfixturevalue("redis_cluster").url)
    return str(request.getfixturevalue("redis_sentinel").url)


# --- unit and integration -----------------------------------------------------------------------

#: Fixtures that reach a server (PostgreSQL, Redis, PgBouncer, the embedded server) or a process.
_SERVER_FIXTURES = frozenset({
    "server_url", "wx_server_url", "pgbouncer", "redis_url", "own_redis", "redis_cluster",
    "redis_sentinel", "topology_url", "cluster", "small_server", "twenty_slots", "pytester",
    "testdir",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test ``integration`` (it reaches a server: its fixtures do, or its module says
    so with ``pytestmark = pytest.mark.integration``) or ``unit`` (the pure core: no database, no
    Redis, no process). ``pytest -m unit`` runs the pure core alone, in seconds; CI runs it with no
    server reachable, which keeps the split honest.

    A test marked ``one_ci_run(run)`` takes minutes (instructions counted under valgrind, servers
    started in folders of its own) and checks nothing that depends on the server the suite
    targets. CI runs the suite twice side by side, against two servers, and names each run in
    ``WXDATA_TEST_CI_RUN`` (``system``, ``embedded``): such a test runs in the run it names and is
    skipped in the other, saying why. With no run named, every test runs."""
    ci_run = os.environ.get("WXDATA_TEST_CI_RUN")
    for item in items:
        marker = item.get_closest_marker("one_ci_run")
        if ci_run and marker is not None and marker.args[0] != ci_run:
            item.add_marker(pytest.mark.skip(
                reason=f"runs in CI's {marker.args[0]} run: it does not depend on the server the "
                       "suite targets"))
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & _SERVER_FIXTURES or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)
