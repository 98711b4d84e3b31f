"""Shared fixtures: one migrated database per test run (created and dropped here), connections,
contexts and a school to hang students from.

The server is ``WXDATA_TEST_DATABASE_URL`` or ``DATABASE_URL`` when set (CI sets the local
PostgreSQL); otherwise the embedded PostgreSQL starts in a temp folder.

``WXDATA_TEST_POOLER=transaction`` runs the chosen tests through a private PgBouncer in
transaction-pooling mode: ``db_url`` and ``conn`` then reach the test database through it and
wxdata runs with ``DB_POOLER=transaction`` (migrations, ``server_url`` and ``direct_db_url`` stay
direct).

Tests never depend on leftovers: each creates its own rows (unique numbers) and asserts on those
rows only. Tests that need a pristine database clone the migrated template with
``fresh_database``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

os.environ.setdefault("WXDATA_ENV", "test")
# Behind the test PgBouncer, wxdata must know before it first reads its settings.
os.environ.update(
    {"DB_POOLER": "transaction"}
    if os.environ.get("WXDATA_TEST_POOLER", "").strip().lower() == "transaction" else {}
)

from tests.pgbouncer import PgBouncer
from tests.pgbouncer import available as pgbouncer_available
from wxdata import ExecutionContext, Purpose, Role, system_context
from wxdata.db import connect_kwargs, embedded_url
from wxdata.migrate import migrate

POOLER = os.environ.get("WXDATA_TEST_POOLER", "").strip().lower()
if POOLER not in ("", "none", "transaction"):
    raise pytest.UsageError("WXDATA_TEST_POOLER must be none or transaction")
POOLED = POOLER == "transaction"


def _server_url() -> str:
    url = os.environ.get("WXDATA_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    return url or embedded_url("postgres")


def _with_db(url: str, name: str) -> str:
    return make_conninfo(url, dbname=name)


@pytest.fixture(scope="session")
def server_url() -> str:
    """The admin URL of the server the tests run against."""
    return _server_url()


@pytest.fixture(scope="session")
def pristine_template(server_url: str) -> Iterator[str]:
    """The name of a database migrated once for this run and never used: what clones start from."""
    name = f"wxdata_tmpl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(_with_db(server_url, name), autocommit=True) as conn:
            migrate(conn)
        yield name
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pgbouncer(server_url: str) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction-pooling mode in front of the test server, for this run."""
    if not pgbouncer_available():
        pytest.fail("pgbouncer is not installed (apt-get install pgbouncer)")
    bouncer = PgBouncer(server_url).start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="session")
def db_url(direct_db_url: str, request: pytest.FixtureRequest) -> str:
    """The test database: direct, or through PgBouncer under ``WXDATA_TEST_POOLER=transaction``."""
    if not POOLED:
        return direct_db_url
    bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    return bouncer.url(direct_db_url)


@pytest.fixture(scope="session")
def direct_db_url(server_url: str, pristine_template: str) -> Iterator[str]:
    """A database created for this test run (a clone of the migrated template), dropped at the
    end; always the direct URL."""
    name = f"wxdata_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pristine_template}"')
    url = _with_db(server_url, name)
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_database(server_url: str, pristine_template: str) -> Iterator[Callable[[], str]]:
    """Factory of throw-away databases cloned from the migrated, never-used template.

    Not from the run's shared database: that one holds every row earlier tests left (soft-deleted
    students, audit records...), so a clone of it is not empty and its contents depend on which
    tests ran before.
    """
    created: list[str] = []
    template = pristine_template

    def make() -> str:
        name = f"wxdata_fresh_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        created.append(name)
        return _with_db(server_url, name)

    yield make
    with psycopg.connect(server_url, autocommit=True) as admin:
        for name in created:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test database, opened as wxdata opens its own."""
    with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as c:
        yield c


@pytest.fixture
def ctx() -> ExecutionContext:
    """A nurse treating students."""
    return ExecutionContext(
        user_id="u-nurse-1", role=Role.NURSE, purpose=Purpose.TREATMENT,
        ip_address="10.1.2.3", user_agent="pytest", request_id=f"req-{uuid.uuid4().hex[:8]}",
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
        """Start (or restart on the same port) and wait until it answers PING."""
        import subprocess
        import time

        import redis

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
