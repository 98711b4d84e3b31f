"""Shared fixtures: one migrated database per test run (created and dropped here), connections,
contexts and a school to hang students from.

The server is ``WXDATA_TEST_DATABASE_URL`` or ``DATABASE_URL`` when set (CI sets the local
PostgreSQL); otherwise the embedded PostgreSQL starts in a temp folder. Tests never depend on
leftovers: each creates its own rows (unique numbers) and asserts on those rows only. Tests that
need a pristine database clone the migrated template with ``fresh_database``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

os.environ.setdefault("WXDATA_ENV", "test")

from wxdata import ExecutionContext, Purpose, Role, system_context
from wxdata.db import embedded_url
from wxdata.migrate import migrate


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
def db_url(server_url: str) -> Iterator[str]:
    """A database created for this test run, migrated, dropped at the end."""
    name = f"wxdata_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(server_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_database(server_url: str, db_url: str) -> Iterator[Callable[[], str]]:
    """Factory of throw-away databases cloned from the migrated test database."""
    created: list[str] = []
    template = conninfo_to_dict(db_url)["dbname"]

    def make() -> str:
        name = f"wxdata_fresh_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (template,))
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        created.append(name)
        return _with_db(server_url, name)

    yield make
    with psycopg.connect(server_url, autocommit=True) as admin:
        for name in created:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test database."""
    with psycopg.connect(db_url, autocommit=True) as c:
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
