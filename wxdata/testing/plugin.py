"""The wxdata pytest plugin: ``wx_`` fixtures for tests of code built on wxdata.

Loaded by the ``pytest11`` entry point (or ``-p wxdata.testing.plugin`` /
``pytest_plugins = ["wxdata.testing.plugin"]``). It does nothing until a test asks for one of its
fixtures, and every name starts with ``wx_``.

The server is ``WXDATA_TEST_DATABASE_URL`` or ``DATABASE_URL`` (a superuser URL: the fixtures
create databases and a role), else the embedded PostgreSQL (:mod:`wxdata.embedded`). The scope key
is the configured one (``WXDATA_SCOPE_KEY`` / ``WXDATA_MASTER_KEY``), else the embedded server's,
else a key generated for the session.

Isolation: one database per session, cloned from a template migrated once (``wx_database``);
tests create their own rows. A test that needs an empty database asks ``wx_fresh_database`` (a
clone of the template, about a tenth of a second to a few tenths). A transaction rolled back after
each test is not offered: wxdata's units of work issue their own BEGIN/COMMIT on autocommit
connections, and audit lane 2 writes on connections of its own, so an enclosing transaction would
neither hold their writes nor see them.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any

import attrs
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from wxdata.cache import CacheManager, KeyBuilder, MemoryCache, using_cache
from wxdata.context import ExecutionContext, Purpose, Role, system_context
from wxdata.roles import ensure_app_role
from wxdata.testing import (
    AuditRecord,
    FrozenClock,
    active_clock,
    assert_audited,
    audit_mark,
    clone_database,
    configured_server_url,
    create_migrated_database,
    drop_database,
    subject_tag,
    unique_name,
)


@attrs.frozen(slots=True, kw_only=True)
class WxDatabase:
    """A test database: its name, its superuser URL and its application-role URL."""

    name: str
    owner_url: str
    app_url: str


@attrs.frozen(slots=True, kw_only=True)
class WxDistrict:
    """A seeded district: two schools, three students in each (synthetic, fixed values)."""

    district_id: uuid.UUID
    school_ids: tuple[uuid.UUID, uuid.UUID]
    #: school id -> its students' ids (shown keyed-hashed in reprs and pytest's tracebacks)
    students: dict[uuid.UUID, tuple[uuid.UUID, ...]] = attrs.field(repr=lambda students: repr(
        {school: tuple(subject_tag(s) for s in ids) for school, ids in students.items()}))


class WxAudit:
    """Audit records of the current test: ``assert_audited`` looks only after the test's start."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.mark = audit_mark(conn)

    def assert_audited(self, *, action: str, **expected: Any) -> list[AuditRecord]:
        """:func:`wxdata.testing.assert_audited` on the records written since the test started."""
        return assert_audited(self.conn, action=action, after=self.mark, **expected)


def _scope_key() -> bytes:
    from wxdata.tx.token import scope_key, use_fallback_key

    key = scope_key()
    if key is None:
        key = secrets.token_bytes(32)
        use_fallback_key(key)
    return key


@pytest.fixture(scope="session")
def wx_server_url() -> str:
    """Superuser URL of the server the tests run on."""
    return configured_server_url()


@pytest.fixture(scope="session")
def wx_template(wx_server_url: str) -> Iterator[str]:
    """Name of a database migrated once for the session (scope key installed), never used: what
    ``wx_database`` and ``wx_fresh_database`` are cloned from. Dropped at the end."""
    name = unique_name("wx_tmpl")
    create_migrated_database(wx_server_url, name, _scope_key())
    try:
        yield name
    finally:
        drop_database(wx_server_url, name)


@pytest.fixture(scope="session")
def wx_app_role(wx_server_url: str) -> Iterator[tuple[str, str]]:
    """Name and password of the session's application LOGIN role (member of wxdata_app)."""
    role = (unique_name("wx_app"), secrets.token_urlsafe(18))
    yield role
    with psycopg.connect(wx_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role[0])))


def _database(server: str, template: str, role: tuple[str, str]) -> WxDatabase:
    name = unique_name("wx_test")
    owner = clone_database(server, template, name)
    with psycopg.connect(owner, autocommit=True) as conn:
        ensure_app_role(conn, *role)
    return WxDatabase(name=name, owner_url=owner,
                      app_url=make_conninfo(owner, user=role[0], password=role[1]))


@pytest.fixture(scope="session")
def wx_database(wx_server_url: str, wx_template: str,
                wx_app_role: tuple[str, str]) -> Iterator[WxDatabase]:
    """The session's migrated database (row-level security applies to ``app_url``)."""
    database = _database(wx_server_url, wx_template, wx_app_role)
    try:
        yield database
    finally:
        drop_database(wx_server_url, database.name)


@pytest.fixture
def wx_fresh_database(wx_server_url: str, wx_template: str,
                      wx_app_role: tuple[str, str]) -> Iterator[Callable[[], WxDatabase]]:
    """Factory of empty migrated databases for this test (template clones, dropped after it)."""
    made: list[str] = []

    def make() -> WxDatabase:
        database = _database(wx_server_url, wx_template, wx_app_role)
        made.append(database.name)
        return database

    yield make
    for name in made:
        drop_database(wx_server_url, name)


@pytest.fixture
def wx_conn(wx_database: WxDatabase) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection as the application role, opened as wxdata opens its own."""
    from wxdata.db import connect_kwargs

    with psycopg.connect(wx_database.app_url, autocommit=True, **connect_kwargs()) as conn:
        yield conn


@pytest.fixture
def wx_owner_conn(wx_database: WxDatabase) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit superuser connection (privileged set-up and inspection only)."""
    with psycopg.connect(wx_database.owner_url, autocommit=True) as conn:
        yield conn


def _ids(school: uuid.UUID | Iterable[uuid.UUID] | None) -> frozenset[uuid.UUID]:
    if school is None:
        return frozenset()
    if isinstance(school, uuid.UUID):
        return frozenset({school})
    return frozenset(school)


@pytest.fixture
def wx_context() -> Callable[..., ExecutionContext]:
    """Factory of execution contexts: ``wx_context(role="NURSE", school=school_id)``.

    ``role`` a :class:`~wxdata.context.Role` or its name (``"SYSTEM"`` gives the system context),
    ``school`` one id or several; ``purpose`` defaults to TREATMENT; each context has its own
    request id. Stamped with the frozen clock's time when ``wx_clock`` is in use.
    """

    def make(role: Role | str = Role.NURSE, school: uuid.UUID | Iterable[uuid.UUID] | None = None,
             *, purpose: Purpose | str = Purpose.TREATMENT, user_id: str | None = None,
             **fields: Any) -> ExecutionContext:
        role = Role(role)
        if role is Role.SYSTEM:
            return system_context("wx-test")
        clock = active_clock()
        if clock is not None:
            fields.setdefault("timestamp", clock.now())
        return ExecutionContext(
            user_id=user_id or f"u-{role.value.lower()}-{uuid.uuid4().hex[:6]}", role=role,
            purpose=Purpose(purpose), ip_address="10.0.0.1", user_agent="pytest-wxdata",
            request_id=f"req-{uuid.uuid4().hex[:12]}", school_ids=_ids(school), **fields)

    return make


def _student(district: uuid.UUID, school: uuid.UUID, n: int) -> dict[str, Any]:
    return {"student_number": f"WX-{uuid.uuid4().hex[:10].upper()}", "first_name": "Test",
            "last_name": f"Student{n}", "date_of_birth": date(2014, 1, 1 + n), "grade": "4",
            "gender": "OTHER", "enrollment_date": date(2021, 9, 1), "school_id": school,
            "district_id": district}


@pytest.fixture
def wx_district(wx_conn: psycopg.Connection[Any]) -> WxDistrict:
    """A new district with two schools and three students in each, created through wxdata."""
    from wxdata.domains import students
    from wxdata.domains.organisation import districts, schools

    ctx = system_context("wx-seed")
    tag = uuid.uuid4().hex[:8].upper()
    district = districts.create(wx_conn, ctx, {"name": f"District {tag}", "code": f"D-{tag}"}).unwrap()
    school_ids: list[uuid.UUID] = []
    enrolled: dict[uuid.UUID, tuple[uuid.UUID, ...]] = {}
    for n in range(2):
        school = schools.create(wx_conn, ctx, {"name": f"School {tag}-{n}", "code": f"S-{tag}-{n}",
                                               "district_id": district.id}).unwrap()
        school_ids.append(school.id)
        enrolled[school.id] = tuple(
            students.create(wx_conn, ctx, _student(district.id, school.id, i)).unwrap().id
            for i in range(3))
    return WxDistrict(district_id=district.id, school_ids=(school_ids[0], school_ids[1]),
                      students=enrolled)


@pytest.fixture
def wx_cache() -> Iterator[CacheManager]:
    """An in-memory cache installed as the process cache for this test; after it, the process
    cache is what it was (another cache, caching off, or none built yet). Its key-hashing key is
    random."""
    cache = MemoryCache(KeyBuilder(secrets.token_bytes(32), prefix="wx-test"), max_size=1000)
    with using_cache(cache, close=True):  # invalidated after committed writes inside
        yield cache


@pytest.fixture
def wx_audit(wx_conn: psycopg.Connection[Any]) -> WxAudit:
    """Audit probe of this test: ``wx_audit.assert_audited(action=..., entity=..., subjects=...)``
    looks only at records written after the test started."""
    return WxAudit(wx_conn)


@pytest.fixture
def wx_clock() -> Iterator[FrozenClock]:
    """A frozen clock (2025-01-15 12:00 UTC) installed for this test: ``wx_clock.advance(...)``."""
    with FrozenClock().install() as clock:
        yield clock


__all__ = ["WxAudit", "WxDatabase", "WxDistrict"]
