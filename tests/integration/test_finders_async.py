"""Every hand-written finder on both shells against the real database: one plan, one answer.

Each finder of every domain module runs on the sync shell (``finder(conn, ...)``) and on the async
one (``await finder.aio(aconn, ...)``, the function :mod:`wxdata.aio.domains` publishes) with the
same arguments on seeded data: the answers are equal, the audit records each call wrote (found by
the call's request id) are the same on both shells, and a finder that discloses PHI wrote its
disclosure record. The table of cases is checked against the finders the domain modules export,
so a new finder without a case fails. Cached finders are invalidated by a committed write of
either shell.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from psycopg import sql
from returns.result import Result, Success

from tests.cache_support import memory
from tests.unit.test_domain_convention import FINDERS
from wxdata import ExecutionContext, aio, system_context
from wxdata.aio import domains as aio_domains
from wxdata.cache import aio as acache
from wxdata.cache import using_cache
from wxdata.cache.backends.aio import AsyncMemoryCache
from wxdata.domains import (
    allergies,
    appointments,
    chronic_conditions,
    clinic_visits,
    documents,
    emergency_contacts,
    health_records,
    health_screenings,
    immunizations,
    incident_reports,
    medication_logs,
    medications,
    organisation,
    student_medications,
    students,
    vaccinations,
    vital_signs,
)
from wxdata.query.paging import Page
from wxdata.seed import seed

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]
TABLES = ("allergies", "appointments", "chronic_conditions", "clinic_visits", "documents",
          "emergency_contacts", "health_records", "health_screenings", "immunizations",
          "incident_reports", "medication_logs", "student_medications", "vaccinations",
          "vital_signs")


@attrs.frozen
class World:
    """The seeded district, read back by the owner."""

    students: tuple[dict[str, Any], ...]
    district: dict[str, Any]
    schools: tuple[dict[str, Any], ...]
    users: tuple[dict[str, Any], ...]
    rows: dict[str, tuple[dict[str, Any], ...]]

    def first(self, table: str, **match: Any) -> dict[str, Any]:
        """The first seeded row of ``table`` with the ``match`` values (the seed fills every
        domain)."""
        found = [r for r in self.rows[table] if all(r[k] == v for k, v in match.items())]
        if not found:
            raise LookupError(f"the seed wrote no {table}")
        return found[0]

    @property
    def student(self) -> dict[str, Any]:
        """An active seeded student with a medical record number."""
        return next(s for s in self.students if s["medical_record_num"] and s["is_active"])

    @property
    def user(self) -> dict[str, Any]:
        """An active seeded user."""
        return next(u for u in self.users if u["is_active"])

    def in_effect(self) -> dict[str, Any]:
        """A student medication in effect today (active, not ended)."""
        today = datetime.now(UTC).date()
        return next(r for r in self.rows["student_medications"] if r["is_active"]
                    and (r["end_date"] is None or r["end_date"] >= today))


def _dicts(cur: psycopg.Cursor[Any]) -> tuple[dict[str, Any], ...]:
    names = [d.name for d in cur.description or ()]
    return tuple(dict(zip(names, r, strict=True)) for r in cur.fetchall())


@pytest.fixture(scope="module")
def world(owner_url: str) -> World:
    """A seeded district of two schools (every domain filled), read back by the owner."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        seed(conn, system_context("finders-async"), schools=2, students=30, seed=37,
             per_student=3).unwrap()
        district = _dicts(conn.execute(
            "SELECT * FROM districts WHERE name LIKE 'Synthetic District 0037%%'"))[0]
        schools = _dicts(conn.execute("SELECT * FROM schools WHERE district_id = %s",
                                      (district["id"],)))
        school_ids = [s["id"] for s in schools]
        people = _dicts(conn.execute("SELECT * FROM students WHERE school_id = ANY(%s) "
                                     "ORDER BY student_number", (school_ids,)))
        users = _dicts(conn.execute("SELECT id, email, school_id, is_active FROM users "
                                    "WHERE school_id = ANY(%s) ORDER BY email", (school_ids,)))
        ids = [p["id"] for p in people]
        rows = {t: _dicts(conn.execute(
            sql.SQL("SELECT * FROM {} WHERE student_id = ANY(%s) ORDER BY id").format(
                sql.Identifier(t)), (ids,))) for t in TABLES}
    return World(people, district, schools, users, rows)


@pytest.fixture
def reader(ctx: ExecutionContext, world: World) -> ExecutionContext:
    """The nurse, scoped to the seeded schools as well."""
    return attrs.evolve(ctx, school_ids=ctx.school_ids | {s["id"] for s in world.schools})


@pytest.fixture
def aconn(db_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, Any]]:
    """An event loop and an AsyncConnection to the test database."""
    loop = asyncio.new_event_loop()
    connection = loop.run_until_complete(aio.connect(db_url))
    try:
        yield loop, connection
    finally:
        loop.run_until_complete(connection.close())
        loop.close()


@pytest.fixture
def caches() -> Iterator[Any]:
    """The process caches of both shells: one memory backend, the async one wrapping it, both
    receiving committed writes of either shell."""
    mem = memory(max_size=10_000)
    with using_cache(mem, close=True):
        acache.configure_async_cache(AsyncMemoryCache(mem))
        yield mem
        acache.reset_async_cache()


Args = Callable[[World], tuple[tuple[Any, ...], dict[str, Any]]]


def a(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments after (conn, ctx)."""
    return args, kwargs


def sid(w: World, table: str) -> Any:
    return w.first(table)["student_id"]


PAST, FUTURE = date(2000, 1, 1), date(2100, 1, 1)

#: finder -> (its arguments from the world, whether it discloses PHI, whether it answers rows)
READS: dict[Any, tuple[Args, bool, bool]] = {
    allergies.find_by_student: (
        lambda w: a(w.first("allergies", active=True)["student_id"], limit=100), True, True),
    allergies.find_by_severity: (
        lambda w: a(w.first("allergies", active=True)["severity"]), True, True),
    allergies.find_by_allergen: (
        lambda w: a(w.first("allergies", active=True)["allergen"][:3]), True, True),
    allergies.is_duplicate: (lambda w: a(sid(w, "allergies"), w.first("allergies")["allergen"]),
                             False, True),
    appointments.find_by_student: (lambda w: a(sid(w, "appointments")), True, True),
    appointments.find_upcoming_by_nurse: (
        lambda w: a(w.first("appointments")["nurse_id"], days=366), True, False),
    chronic_conditions.find_by_student: (
        lambda w: a(w.first("chronic_conditions", is_active=True)["student_id"]), True, True),
    chronic_conditions.find_by_status: (
        lambda w: a(w.first("chronic_conditions", is_active=True)["status"]), True, True),
    clinic_visits.find_by_student: (lambda w: a(sid(w, "clinic_visits")), True, True),
    clinic_visits.find_by_attendant: (
        lambda w: a(w.first("clinic_visits")["attended_by"]), True, True),
    clinic_visits.find_requiring_follow_up: (
        lambda w: a(w.first("clinic_visits")["follow_up_required"]), True, True),
    documents.find_by_student: (
        lambda w: a(w.first("documents", is_active=True)["student_id"]), True, True),
    documents.find_by_category: (
        lambda w: a(w.first("documents", is_active=True)["category"]), True, True),
    emergency_contacts.find_by_priority: (
        lambda w: a(w.first("emergency_contacts", is_active=True)["priority"]), True, True),
    emergency_contacts.find_by_student: (
        lambda w: a(w.first("emergency_contacts", is_active=True)["student_id"]), True, True),
    health_records.find_by_student: (lambda w: a(sid(w, "health_records")), True, True),
    health_records.find_by_type: (
        lambda w: a(w.first("health_records")["record_type"],
                    student_id=sid(w, "health_records")), True, True),
    health_records.find_by_date_range: (
        lambda w: a(sid(w, "health_records"), PAST, FUTURE), True, True),
    health_records.find_requiring_follow_up: (lambda w: a(due_by=FUTURE, limit=100), True, True),
    health_records.student_health_summary: (lambda w: a(sid(w, "health_records")), True, True),
    health_screenings.find_by_student: (lambda w: a(sid(w, "health_screenings")), True, True),
    health_screenings.find_by_type: (
        lambda w: a(w.first("health_screenings")["screening_type"]), True, True),
    health_screenings.find_requiring_follow_up: (
        lambda w: a(w.first("health_screenings")["follow_up_required"]), True, True),
    immunizations.find_by_student: (lambda w: a(sid(w, "immunizations")), True, True),
    immunizations.find_upcoming_due: (lambda w: a(days=3650, limit=100), True, False),
    incident_reports.find_by_student: (lambda w: a(sid(w, "incident_reports")), True, True),
    incident_reports.find_by_severity: (
        lambda w: a(w.first("incident_reports")["severity"]), True, True),
    incident_reports.find_by_date_range: (lambda w: a(PAST, FUTURE, limit=100), True, True),
    medication_logs.find_by_date_range: (
        lambda w: a(PAST, FUTURE, student_id=sid(w, "medication_logs")), True, True),
    medication_logs.find_pending: (lambda w: a(limit=100), True, True),
    medication_logs.adherence_rate: (lambda w: a(sid(w, "medication_logs")), False, True),
    medications.find_by_schedule: (lambda w: a("II"), False, False),
    medications.find_controlled_substances: (lambda w: a(limit=100), False, True),
    medications.search_by_name: (lambda w: a("a"), False, True),
    organisation.schools_in_district: (lambda w: a(w.district["id"]), False, True),
    organisation.users_of_school: (lambda w: a(w.user["school_id"]), False, True),
    organisation.find_district_by_code: (lambda w: a(w.district["code"]), False, True),
    organisation.find_school_by_code: (lambda w: a(w.schools[0]["code"]), False, True),
    organisation.find_user_by_email: (lambda w: a(w.user["email"]), False, True),
    organisation.find_user: (lambda w: a(w.user["id"]), False, True),
    student_medications.find_active_by_student: (
        lambda w: a(w.in_effect()["student_id"]), True, True),
    students.find_by_student_number: (lambda w: a(w.student["student_number"]), True, True),
    students.find_by_medical_record_number: (
        lambda w: a(w.student["medical_record_num"]), True, True),
    students.find_by_grade: (lambda w: a(w.student["grade"], limit=100), True, True),
    students.find_by_nurse: (lambda w: a(w.student["nurse_id"], limit=100), True, True),
    students.search: (lambda w: a(w.student["last_name"][1:4]), True, True),
    students.active_count: (lambda w: a(), False, True),
    vaccinations.find_by_student: (lambda w: a(sid(w, "vaccinations")), True, True),
    vaccinations.find_upcoming_due: (lambda w: a(days=3650, limit=100), True, False),
    vaccinations.compliance: (lambda w: a(sid(w, "vaccinations")), False, True),
    vital_signs.find_by_date_range: (lambda w: a(PAST, FUTURE, limit=100), True, True),
    vital_signs.find_latest: (lambda w: a(sid(w, "vital_signs"), count=5), True, True),
}
#: Finders that write (each shell then writes a row of its own): checked in their own tests.
WRITES = {student_medications.discontinue, students.bulk_assign_to_nurse}


def _name(fn: Any) -> str:
    return next(name for name, found in FINDERS if found is fn)


def test_every_finder_has_a_case() -> None:
    exported = {id(found): name for name, found in FINDERS}
    covered = {id(fn) for fn in READS} | {id(fn) for fn in WRITES}
    assert set(exported) == covered, sorted(exported[k] for k in set(exported) - covered)


def _answered(result: Result[Any, Any]) -> bool:
    """Whether a Success answers something (rows, a non-empty tuple, a count above zero)."""
    value = result.value_or(None)
    if isinstance(value, Page):
        return bool(value.data)
    if isinstance(value, tuple | list):
        return bool(value)
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return value > 0
    return value is not None


def _records(conn: Conn, request_id: str) -> list[tuple[Any, ...]]:
    """The audit records of one call: action, entity, ids and subjects (order-free)."""
    rows = conn.execute(
        "SELECT action, entity_type, entity_ids, subject_ids, metadata FROM audit_log "
        "WHERE request_id = %s", (request_id,)).fetchall()
    return sorted((r[0], r[1], sorted(r[2]), sorted(r[3]), r[4]) for r in rows)


def _both(fn: Any, conn: Conn, aconn: tuple[asyncio.AbstractEventLoop, Any],
          ctx: ExecutionContext, args: tuple[Any, ...], kwargs: dict[str, Any],
          ) -> tuple[Result[Any, Any], Result[Any, Any], list[Any], list[Any]]:
    """The answer and audit records of ``fn`` on the sync shell, then on the async one."""
    loop, connection = aconn
    sync_ctx = attrs.evolve(ctx, request_id=f"sync-{uuid.uuid4().hex}")
    async_ctx = attrs.evolve(ctx, request_id=f"async-{uuid.uuid4().hex}")
    sync = fn(conn, sync_ctx, *args, **kwargs)
    module, attr = _name(fn).split(".")
    twin = getattr(getattr(aio_domains, module), attr)
    assert twin is fn.aio
    in_async = loop.run_until_complete(twin(connection, async_ctx, *args, **kwargs))
    return sync, in_async, _records(conn, sync_ctx.request_id), _records(
        conn, async_ctx.request_id)


@pytest.mark.parametrize("fn", list(READS), ids=_name)
def test_a_finder_answers_the_same_on_both_shells(
        fn: Any, conn: Conn, aconn: Any, reader: ExecutionContext, world: World,
        caches: Any) -> None:
    build, discloses, answers = READS[fn]
    args, kwargs = build(world)
    sync, in_async, sync_records, async_records = _both(fn, conn, aconn, reader, args, kwargs)
    assert isinstance(sync, Success), sync
    assert sync == in_async
    assert sync_records == async_records
    if answers:
        assert _answered(sync)
    if discloses and _answered(sync):
        assert any(r[0] == "READ" for r in sync_records), sync_records


def test_discontinue_on_both_shells(conn: Conn, aconn: Any, reader: ExecutionContext,
                                    sys_ctx: ExecutionContext, world: World) -> None:
    kept = world.in_effect()["student_id"]  # what the read cases find stays in effect
    active = [r for r in world.rows["student_medications"]
              if r["is_active"] and r["student_id"] != kept]
    assert len(active) >= 2
    loop, connection = aconn
    ids = [active[0]["id"], active[1]["id"]]
    tag = uuid.uuid4().hex
    writer = attrs.evolve(sys_ctx, request_id=f"sync-{tag}")
    awriter = attrs.evolve(sys_ctx, request_id=f"async-{tag}")
    sync = student_medications.discontinue(conn, writer, ids[0]).unwrap()
    in_async = loop.run_until_complete(
        aio_domains.student_medications.discontinue(connection, awriter, ids[1])).unwrap()
    today = datetime.now(UTC).date()
    for row, id_ in ((sync, ids[0]), (in_async, ids[1])):
        assert (row.id, row.is_active, row.end_date) == (id_, False, today)
    assert [r[:2] for r in _records(conn, writer.request_id)] == [("UPDATE", "StudentMedication")]
    assert [r[:2] for r in _records(conn, awriter.request_id)] == [("UPDATE", "StudentMedication")]


def test_bulk_assign_on_both_shells(conn: Conn, aconn: Any, sys_ctx: ExecutionContext,
                                    world: World) -> None:
    loop, connection = aconn
    nurse = world.users[0]["id"]
    others = [s["id"] for s in world.students if s["id"] != world.student["id"]]
    first, second = others[:3], others[3:6]
    tag = uuid.uuid4().hex
    writer = attrs.evolve(sys_ctx, request_id=f"sync-{tag}")
    awriter = attrs.evolve(sys_ctx, request_id=f"async-{tag}")
    sync = students.bulk_assign_to_nurse(conn, writer, first, nurse).unwrap()
    in_async = loop.run_until_complete(
        aio_domains.students.bulk_assign_to_nurse(connection, awriter, second, nurse)).unwrap()
    assert (sync.complete, list(sync.changed)) == (True, first)
    assert (in_async.complete, list(in_async.changed)) == (True, second)
    for request_id, ids in ((writer.request_id, first), (awriter.request_id, second)):
        records = _records(conn, request_id)
        assert [(r[0], r[1], r[2]) for r in records] == [("BULK_UPDATE", "Student", sorted(ids))]
    for s in [*first, *second]:
        assert students.find_by_id(conn, sys_ctx, s).unwrap().nurse_id == nurse


def test_a_cached_finder_is_invalidated_by_a_write_of_either_shell(
        conn: Conn, aconn: Any, ctx: ExecutionContext, sys_ctx: ExecutionContext,
        make_student: Any, caches: Any) -> None:
    loop, connection = aconn
    s = make_student(grade="4")
    afind = aio_domains.students.find_by_student_number

    def hits() -> int:
        return int(caches.stats().entities["Student"].hits)

    def grade_async() -> str:
        return str(loop.run_until_complete(afind(connection, ctx, s.student_number)).unwrap().grade)

    def grade_sync() -> str:
        return str(students.find_by_student_number(conn, ctx, s.student_number).unwrap().grade)

    assert grade_async() == "4"
    before = hits()
    assert grade_async() == "4" and hits() == before + 1  # a hit: the entry is there
    students.update(conn, sys_ctx, s.id, {"grade": "5"}).unwrap()  # a sync write
    assert grade_async() == "5"
    assert grade_sync() == "5"
    before = hits()
    assert grade_sync() == "5" and hits() == before + 1
    loop.run_until_complete(
        aio_domains.students.update(connection, sys_ctx, s.id, {"grade": "6"}))  # an async write
    assert grade_sync() == "6"
    assert grade_async() == "6"


_TEXT = st.text(alphabet=st.sampled_from("aeilnorst%_\\ A"), max_size=5)
_DATES = st.dates(date(2015, 1, 1), date(2030, 12, 31))


@hyp_settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT, start=_DATES, end=_DATES, limit=st.integers(-1, 120))
def test_random_arguments_answer_the_same_on_both_shells(
        conn: Conn, aconn: Any, reader: ExecutionContext, world: World, text: str, start: date,
        end: date, limit: int) -> None:
    """Any text (wildcards included), any date range (reversed ones refused) and any limit
    (out-of-range ones refused): both shells give the same answer, Success or Failure, and write
    the same audit records."""
    calls = [
        (students.search, (text,), {"limit": limit}),
        (allergies.find_by_allergen, (text,), {"limit": limit}),
        (medications.search_by_name, (text,), {}),
        (vital_signs.find_by_date_range, (start, end), {"limit": limit}),
        (health_records.find_by_date_range, (sid(world, "health_records"), start, end), {}),
        (incident_reports.find_by_date_range, (start, end), {"student_id": world.student["id"]}),
    ]
    for fn, args, kwargs in calls:
        sync, in_async, sync_records, async_records = _both(fn, conn, aconn, reader, args, kwargs)
        assert sync == in_async, _name(fn)
        assert sync_records == async_records, _name(fn)
