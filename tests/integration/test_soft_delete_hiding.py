"""Soft-deleted rows are hidden by every read path unless the caller asks for them.

The generic reads (``find_by_id``, ``find_many``, ``find_one``, ``count``, ``exists``,
``find_after``, ``find_projected``, ``stream``), their entity-bound forms (``Ops``) and every
domain finder that reads a soft-deleting entity leave deleted rows out by default; the generic
reads include them only with ``include_deleted=True``.

The generic reads run through both shells (``wxdata.crud`` / ``wxdata.aio.crud``, ``Ops`` /
``AsyncOps``). The domain finders are sync functions with no twin in :mod:`wxdata.aio.domains`
(which carries each domain's ``Ops`` operations only): their tests run on the sync shell.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisDeprecationWarning
from returns.result import Success

import wxdata.domains  # noqa: F401 - registers every entity
from tests.integration.test_domains_crud import Builder
from tests.shells import parametrise
from wxdata import crud
from wxdata.context import ExecutionContext
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
from wxdata.errors import NotFound
from wxdata.query.paging import Page
from wxdata.schema import HEALTH_RECORDS
from wxdata.schema.spec import Entity, lookup

SLOW = settings(max_examples=10, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])
#: Domain finders (``allergies.find_by_student``...) exist in the sync API only.
sync_finders = pytest.mark.sync_only
parametrise(globals())




def _scoped(ctx: ExecutionContext, school: dict[str, uuid.UUID]) -> ExecutionContext:
    return attrs.evolve(ctx, school_ids={school["school_id"]})


def _record(conn: psycopg.Connection[Any], sys_ctx: ExecutionContext, student_id: uuid.UUID,
            title: str) -> Any:
    return health_records.ops.create(conn, sys_ctx, {
        "student_id": student_id, "record_type": "ILLNESS", "title": title,
        "description": "seen", "record_date": date(2024, 3, 1)}).unwrap()


# --- the generic reads ---------------------------------------------------------------------------


def _every_read(conn: psycopg.Connection[Any], ctx: ExecutionContext, student_id: uuid.UUID,
                include_deleted: bool) -> dict[str, set[uuid.UUID] | int | bool]:
    """What each generic read returns for one student's health records, as ids or numbers."""
    where = {"student_id": student_id}
    flag = {"include_deleted": True} if include_deleted else {}  # the default when not asked
    ops = health_records.ops
    out: dict[str, set[uuid.UUID] | int | bool] = {}
    out["find_many"] = {r.id for r in crud.find_many(conn, ctx, HEALTH_RECORDS, where, limit=100,
                                                     **flag).unwrap().data}
    out["ops.find_many"] = {r.id for r in ops.find_many(conn, ctx, where, limit=100,
                                                        **flag).unwrap().data}
    out["find_projected"] = {r["id"] for r in crud.find_projected(
        conn, ctx, HEALTH_RECORDS, ["id", "title"], where, limit=100, **flag).unwrap().data}
    out["count"] = crud.count(conn, ctx, HEALTH_RECORDS, where, **flag).unwrap()
    out["ops.count"] = ops.count(conn, ctx, where, **flag).unwrap()
    ids: set[uuid.UUID] = set()
    cursor: str | None = None
    while True:
        page = crud.find_after(conn, ctx, HEALTH_RECORDS, where, order_by=[("id", "asc")],
                               after=cursor, limit=2, **flag).unwrap()
        ids |= {r.id for r in page.data}
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    out["find_after"] = ids
    out["ops.find_after"] = {r.id for r in ops.find_after(conn, ctx, where, limit=100,
                                                          **flag).unwrap().data}
    out["stream"] = crud.stream(conn, ctx, HEALTH_RECORDS, lambda rows: {r.id for r in rows},
                                where, **flag).unwrap()
    out["ops.stream"] = ops.stream(conn, ctx, lambda rows: {r.id for r in rows}, where,
                                   **flag).unwrap()
    return out


def _single(conn: psycopg.Connection[Any], ctx: ExecutionContext, row_id: uuid.UUID,
            include_deleted: bool) -> dict[str, bool]:
    """Whether each single-row read finds one given row."""
    flag = {"include_deleted": True} if include_deleted else {}  # the default when not asked
    where = {"id": row_id}
    ops = health_records.ops
    return {
        "find_by_id": isinstance(crud.find_by_id(conn, ctx, HEALTH_RECORDS, row_id, **flag),
                                 Success),
        "ops.find_by_id": isinstance(ops.find_by_id(conn, ctx, row_id, **flag), Success),
        "find_one": isinstance(crud.find_one(conn, ctx, HEALTH_RECORDS, where, **flag), Success),
        "ops.find_one": isinstance(ops.find_one(conn, ctx, where, **flag), Success),
        "exists": crud.exists(conn, ctx, HEALTH_RECORDS, where, **flag).unwrap(),
        "ops.exists": ops.exists(conn, ctx, where, **flag).unwrap(),
    }


@SLOW
@given(deleted=st.lists(st.booleans(), min_size=1, max_size=6))
def test_every_generic_read_hides_deleted_rows_unless_asked(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, sys_ctx: ExecutionContext,
    make_student: Callable[..., Any], school: dict[str, uuid.UUID], deleted: list[bool],
) -> None:
    reader = _scoped(ctx, school)
    student = make_student()
    rows = [_record(conn, sys_ctx, student.id, f"r{i}") for i in range(len(deleted))]
    for row, gone in zip(rows, deleted, strict=True):
        if gone:
            assert health_records.ops.delete(conn, sys_ctx, row.id) == Success(None)
    live = {r.id for r, gone in zip(rows, deleted, strict=True) if not gone}
    every = {r.id for r in rows}

    for name, got in _every_read(conn, reader, student.id, include_deleted=False).items():
        assert got == (len(live) if isinstance(got, int) else live), f"{name} shows deleted rows"
    for name, got in _every_read(conn, reader, student.id, include_deleted=True).items():
        assert got == (len(every) if isinstance(got, int) else every), f"{name} hides rows asked for"
    for row, gone in zip(rows, deleted, strict=True):
        for name, found in _single(conn, reader, row.id, include_deleted=False).items():
            assert found is not gone, f"{name}: deleted={gone} but found={found}"
        for name, found in _single(conn, reader, row.id, include_deleted=True).items():
            assert found, f"{name} hides a row asked for"


def test_a_deleted_row_is_not_found_by_id(conn, ctx, sys_ctx, make_student, school) -> None:
    row = _record(conn, sys_ctx, make_student().id, "gone")
    health_records.ops.delete(conn, sys_ctx, row.id).unwrap()
    assert health_records.ops.find_by_id(conn, _scoped(ctx, school), row.id) == \
        crud.find_by_id(conn, _scoped(ctx, school), HEALTH_RECORDS, row.id)
    assert isinstance(crud.find_by_id(conn, _scoped(ctx, school), HEALTH_RECORDS, row.id)
                      .failure(), NotFound)


# --- the domain finders --------------------------------------------------------------------------


def _ids(result: Any) -> set[uuid.UUID]:
    """Ids in a finder's result (a page, a tuple of rows, or one row)."""
    value = result.unwrap()
    if isinstance(value, Page):
        return {r.id for r in value.data}
    if isinstance(value, tuple):
        return {r.id for r in value}
    return {value.id}


def _all_pages(finder: Callable[..., Any], *args: Any, **kw: Any) -> set[uuid.UUID]:
    """Every id a paged finder returns, page after page (the shared database may hold many)."""
    out: set[uuid.UUID] = set()
    page = 1
    while True:
        got = finder(*args, page=page, limit=100, **kw).unwrap()
        out |= {r.id for r in got.data}
        if len(got.data) < 100:
            return out
        page += 1


def _found(result: Any) -> set[uuid.UUID]:
    """Ids of a single-row finder's result; nothing for NotFound."""
    return _ids(result) if isinstance(result, Success) else set()


NOW = datetime.now(UTC)
SOON = date.today() + timedelta(days=5)


@attrs.frozen
class Case:
    """A domain finder, the rows it should find, and how to call it."""

    name: str
    table: str
    values: Callable[[dict[str, Any], int], dict[str, Any]]
    call: Callable[[psycopg.Connection[Any], ExecutionContext, dict[str, Any], list[Any]], Any]


def _student(env: dict[str, Any], _: int) -> dict[str, Any]:
    return {"student_id": env["student"].id}


def _with(**fixed: Any) -> Callable[[dict[str, Any], int], dict[str, Any]]:
    def values(env: dict[str, Any], i: int) -> dict[str, Any]:
        out = {"student_id": env["student"].id}
        for k, v in fixed.items():
            out[k] = v(env, i) if callable(v) else v
        return out
    return values


def _tag(env: dict[str, Any], i: int) -> str:
    return f"{env['tag']}-{i}"


CASES = [
    Case("allergies.find_by_student", "allergies", _with(active=True, allergen=_tag),
         lambda c, x, e, r: _ids(allergies.find_by_student(c, x, e["student"].id, limit=100))),
    Case("allergies.find_by_severity", "allergies", _with(active=True, severity="SEVERE", allergen=_tag),
         lambda c, x, e, r: _all_pages(allergies.find_by_severity, c, x, "SEVERE")),
    Case("allergies.find_by_allergen", "allergies", _with(active=True, allergen=_tag),
         lambda c, x, e, r: _ids(allergies.find_by_allergen(c, x, e["tag"], limit=100))),
    Case("allergies.is_duplicate", "allergies", _with(active=True, allergen=_tag),
         lambda c, x, e, r: {row.id for row in r
                             if allergies.is_duplicate(c, x, e["student"].id,
                                                       row.allergen).unwrap()}),
    Case("appointments.find_by_student", "appointments", _student,
         lambda c, x, e, r: _ids(appointments.find_by_student(c, x, e["student"].id, limit=100))),
    Case("appointments.find_upcoming_by_nurse", "appointments",
         _with(nurse_id=lambda e, i: e["nurse"], status="SCHEDULED",
               scheduled_at=lambda e, i: NOW + timedelta(days=1, minutes=i)),
         lambda c, x, e, r: _ids(appointments.find_upcoming_by_nurse(c, x, e["nurse"],
                                                                      limit=100))),
    Case("chronic_conditions.find_by_student", "chronic_conditions", _with(is_active=True),
         lambda c, x, e, r: _ids(chronic_conditions.find_by_student(c, x, e["student"].id,
                                                                    limit=100))),
    Case("chronic_conditions.find_by_status", "chronic_conditions",
         _with(is_active=True, status="MANAGED"),
         lambda c, x, e, r: _all_pages(chronic_conditions.find_by_status, c, x, "MANAGED")),
    Case("clinic_visits.find_by_student", "clinic_visits", _student,
         lambda c, x, e, r: _ids(clinic_visits.find_by_student(c, x, e["student"].id,
                                                               limit=100))),
    Case("clinic_visits.find_by_attendant", "clinic_visits",
         _with(attended_by=lambda e, i: e["nurse"]),
         lambda c, x, e, r: _ids(clinic_visits.find_by_attendant(c, x, e["nurse"], limit=100))),
    Case("documents.find_by_student", "documents", _with(is_active=True),
         lambda c, x, e, r: _ids(documents.find_by_student(c, x, e["student"].id, limit=100))),
    Case("emergency_contacts.find_by_student", "emergency_contacts", _with(is_active=True),
         lambda c, x, e, r: _ids(emergency_contacts.find_by_student(c, x, e["student"].id))),
    Case("health_records.find_by_student", "health_records", _student,
         lambda c, x, e, r: _ids(health_records.find_by_student(c, x, e["student"].id,
                                                                limit=100))),
    Case("health_records.find_by_type", "health_records", _with(record_type="ILLNESS"),
         lambda c, x, e, r: _ids(health_records.find_by_type(c, x, "ILLNESS",
                                                             student_id=e["student"].id,
                                                             limit=100))),
    Case("health_records.find_by_date_range", "health_records",
         _with(record_date=date(2024, 6, 1)),
         lambda c, x, e, r: _ids(health_records.find_by_date_range(
             c, x, e["student"].id, date(2024, 5, 1), date(2024, 7, 1), limit=100))),
    Case("health_screenings.find_by_student", "health_screenings", _student,
         lambda c, x, e, r: _ids(health_screenings.find_by_student(c, x, e["student"].id,
                                                                   limit=100))),
    Case("health_screenings.find_by_type", "health_screenings",
         _with(screening_type=lambda e, i: e["tag"]),
         lambda c, x, e, r: _ids(health_screenings.find_by_type(c, x, e["tag"], limit=100))),
    Case("immunizations.find_by_student", "immunizations", _student,
         lambda c, x, e, r: _ids(immunizations.find_by_student(c, x, e["student"].id,
                                                               limit=100))),
    Case("immunizations.find_upcoming_due", "immunizations", _with(next_due_date=SOON),
         lambda c, x, e, r: _all_pages(immunizations.find_upcoming_due, c, x, days=10)),
    Case("incident_reports.find_by_student", "incident_reports", _student,
         lambda c, x, e, r: _ids(incident_reports.find_by_student(c, x, e["student"].id,
                                                                  limit=100))),
    Case("incident_reports.find_by_date_range", "incident_reports",
         _with(occurred_at=datetime(2024, 4, 2, 10, tzinfo=UTC)),
         lambda c, x, e, r: _ids(incident_reports.find_by_date_range(
             c, x, date(2024, 4, 1), date(2024, 4, 3), student_id=e["student"].id, limit=100))),
    Case("medication_logs.find_by_date_range", "medication_logs",
         _with(administered_at=datetime(2024, 4, 2, 10, tzinfo=UTC)),
         lambda c, x, e, r: _ids(medication_logs.find_by_date_range(
             c, x, date(2024, 4, 1), date(2024, 4, 3), student_id=e["student"].id, limit=100))),
    Case("medication_logs.find_pending", "medication_logs", _with(status="PENDING"),
         lambda c, x, e, r: _ids(medication_logs.find_pending(c, x, student_id=e["student"].id,
                                                              limit=100))),
    Case("student_medications.find_active_by_student", "student_medications",
         _with(is_active=True, end_date=None),
         lambda c, x, e, r: _ids(student_medications.find_active_by_student(
             c, x, e["student"].id, limit=100))),
    Case("vaccinations.find_by_student", "vaccinations", _student,
         lambda c, x, e, r: _ids(vaccinations.find_by_student(c, x, e["student"].id,
                                                              limit=100))),
    Case("vaccinations.find_upcoming_due", "vaccinations", _with(next_due_date=SOON),
         lambda c, x, e, r: _all_pages(vaccinations.find_upcoming_due, c, x, days=10)),
    Case("vital_signs.find_latest", "vital_signs", _student,
         lambda c, x, e, r: _ids(vital_signs.find_latest(c, x, e["student"].id, count=100))),
    Case("vital_signs.find_by_date_range", "vital_signs",
         _with(measurement_date=datetime(2024, 4, 2, 10, tzinfo=UTC)),
         lambda c, x, e, r: _ids(vital_signs.find_by_date_range(
             c, x, date(2024, 4, 1), date(2024, 4, 3), student_id=e["student"].id, limit=100))),
]

#: Finders that return a number: (name, table, values, call) where the number counts the rows.
COUNTS = [
    Case("medication_logs.adherence_rate", "medication_logs",
         _with(scheduled_at=datetime(2024, 4, 2, 9, tzinfo=UTC), status="ADMINISTERED"),
         lambda c, x, e, r: medication_logs.adherence_rate(c, x, e["student"].id)
         .unwrap().administered),
    Case("vaccinations.compliance", "vaccinations", _with(compliance_status="COMPLIANT"),
         lambda c, x, e, r: dict(vaccinations.compliance(c, x, e["student"].id)
                                 .unwrap().by_status).get("COMPLIANT", 0)),
    Case("health_records.student_health_summary", "health_records", _student,
         lambda c, x, e, r: health_records.student_health_summary(c, x, e["student"].id)
         .unwrap().total),
]


def _simplest(strategy: st.SearchStrategy[Any]) -> Any:
    """The simplest value of a strategy (the required columns only, their plainest values)."""
    return find(strategy, lambda _: True,
                settings=settings(database=None, max_examples=1, phases=[Phase.generate]))


def _make_rows(conn: psycopg.Connection[Any], sys_ctx: ExecutionContext, case: Case,
               env: dict[str, Any]) -> list[Any]:
    """Two rows of the case's entity, valid by its spec, with the case's values."""
    entity = lookup(case.table)
    assert entity is not None
    builder = Builder(conn, sys_ctx, _simplest)
    rows = []
    for i in range(2):
        with warnings.catch_warnings():  # the builder's ``assume`` raises here if unsatisfied
            warnings.simplefilter("ignore", HypothesisDeprecationWarning)
            drawn = builder.values(entity)
        rows.append(builder.create(entity, {**drawn, **case.values(env, i)}))
    return rows


@pytest.fixture
def env(conn: psycopg.Connection[Any], sys_ctx: ExecutionContext,
        make_student: Callable[..., Any], school: dict[str, uuid.UUID]) -> dict[str, Any]:
    """A student, a nurse (a user of the school) and a unique tag for one case's rows."""
    nurse = organisation.users.create(conn, sys_ctx, {
        "email": f"n{uuid.uuid4().hex}@example.org", "first_name": "N", "last_name": "N",
        "role": "NURSE", "password_hash": "$2b$12$" + "x" * 53,
        "school_id": school["school_id"]}).unwrap()
    return {"student": make_student(), "nurse": nurse.id, "tag": f"sd{uuid.uuid4().hex[:12]}"}


def _delete(conn: psycopg.Connection[Any], sys_ctx: ExecutionContext, table: str,
            row_id: uuid.UUID) -> None:
    entity: Entity[Any] | None = lookup(table)
    assert entity is not None and entity.soft_delete
    assert crud.delete(conn, sys_ctx, entity, row_id) == Success(None)


@sync_finders
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_domain_finders_leave_deleted_rows_out(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, sys_ctx: ExecutionContext,
    school: dict[str, uuid.UUID], env: dict[str, Any], case: Case,
) -> None:
    reader = _scoped(ctx, school)
    live, gone = _make_rows(conn, sys_ctx, case, env)
    before = case.call(conn, reader, env, [live, gone])
    assert {live.id, gone.id} <= before, f"{case.name}: the rows were not found to begin with"
    _delete(conn, sys_ctx, case.table, gone.id)
    after = case.call(conn, reader, env, [live, gone])
    assert live.id in after, f"{case.name}: lost a live row"
    assert gone.id not in after, f"{case.name}: shows a soft-deleted row"


@sync_finders
@pytest.mark.parametrize("case", COUNTS, ids=lambda c: c.name)
def test_domain_aggregates_leave_deleted_rows_out(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, sys_ctx: ExecutionContext,
    school: dict[str, uuid.UUID], env: dict[str, Any], case: Case,
) -> None:
    reader = _scoped(ctx, school)
    live, gone = _make_rows(conn, sys_ctx, case, env)
    before = case.call(conn, reader, env, [live, gone])
    assert before >= 2, f"{case.name}: the rows were not counted to begin with"
    _delete(conn, sys_ctx, case.table, gone.id)
    assert case.call(conn, reader, env, [live, gone]) == before - 1, \
        f"{case.name}: counts a soft-deleted row"


@sync_finders
def test_student_finders_leave_deleted_students_out(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, sys_ctx: ExecutionContext,
    make_student: Callable[..., Any], school: dict[str, uuid.UUID], env: dict[str, Any],
) -> None:
    reader = _scoped(ctx, school)
    nurse = env["nurse"]
    tag = uuid.uuid4().hex[:8].upper()
    live, gone = (make_student(grade="7", nurse_id=nurse, is_active=True,
                               last_name=f"Zq{tag}", medical_record_num=f"{tag[:4]}-{i}{tag[:7]}")
                  for i in range(2))
    active_before = students.active_count(conn, reader).unwrap()

    def visible() -> dict[str, set[uuid.UUID]]:
        return {
            "find_by_grade": _all_pages(students.find_by_grade, conn, reader, "7"),
            "find_by_nurse": _ids(students.find_by_nurse(conn, reader, nurse, limit=100)),
            "search": _ids(students.search(conn, reader, f"Zq{tag}")),
            "find_by_student_number": _found(students.find_by_student_number(
                conn, reader, gone.student_number)) | _found(
                students.find_by_student_number(conn, reader, live.student_number)),
            "find_by_medical_record_number": _found(students.find_by_medical_record_number(
                conn, reader, gone.medical_record_num)) | _found(
                students.find_by_medical_record_number(conn, reader, live.medical_record_num)),
        }

    for name, ids in visible().items():
        assert {live.id, gone.id} <= ids, f"{name}: rows not found to begin with"
    assert students.delete(conn, sys_ctx, gone.id) == Success(None)
    for name, ids in visible().items():
        assert live.id in ids and gone.id not in ids, f"{name} shows a soft-deleted student"
    assert students.active_count(conn, reader).unwrap() == active_before - 1


@sync_finders
def test_user_finders_leave_deleted_users_out(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, sys_ctx: ExecutionContext,
    school: dict[str, uuid.UUID],
) -> None:
    reader = _scoped(ctx, school)
    made = [organisation.users.create(conn, sys_ctx, {
        "email": f"sd{uuid.uuid4().hex}@example.org", "first_name": "A", "last_name": "B",
        "role": "NURSE", "password_hash": "$2b$12$" + "x" * 53,
        "school_id": school["school_id"], "is_active": True}).unwrap()
        for _ in range(2)]
    live, gone = made

    def visible() -> dict[str, set[uuid.UUID]]:
        return {
            "users_of_school": _ids(organisation.users_of_school(conn, reader,
                                                                 school["school_id"])),
            "find_user": _found(organisation.find_user(conn, reader, gone.id)) | _found(
                organisation.find_user(conn, reader, live.id)),
            "find_user_by_email": _found(organisation.find_user_by_email(
                conn, reader, gone.email)) | _found(organisation.find_user_by_email(
                    conn, reader, live.email)),
        }

    for name, ids in visible().items():
        assert {live.id, gone.id} <= ids, f"{name}: rows not found to begin with"
    assert organisation.users.delete(conn, sys_ctx, gone.id) == Success(None)
    for name, ids in visible().items():
        assert live.id in ids and gone.id not in ids, f"{name} shows a soft-deleted user"


@sync_finders
def test_medication_finders_leave_deleted_medications_out(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, sys_ctx: ExecutionContext,
    school: dict[str, uuid.UUID],
) -> None:
    reader = _scoped(ctx, school)
    tag = f"Sd{uuid.uuid4().hex[:10]}"
    made = [medications.ops.create(conn, sys_ctx, {
        "name": f"{tag} {i}", "dosage_form": "tablet", "strength": "5 mg", "is_controlled": True,
        "dea_schedule": "IV", "is_active": True}).unwrap() for i in range(2)]
    live, gone = made

    def visible() -> dict[str, set[uuid.UUID]]:
        return {
            "search_by_name": _ids(medications.search_by_name(conn, reader, tag)),
            "find_controlled_substances": _all_pages(medications.find_controlled_substances,
                                                     conn, reader),
            "find_by_schedule": _all_pages(medications.find_by_schedule, conn, reader, "IV"),
        }

    for name, ids in visible().items():
        assert {live.id, gone.id} <= ids, f"{name}: rows not found to begin with"
    assert medications.ops.delete(conn, sys_ctx, gone.id) == Success(None)
    for name, ids in visible().items():
        assert live.id in ids and gone.id not in ids, f"{name} shows a soft-deleted medication"
