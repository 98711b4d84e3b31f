"""Clinical domain finders against a Python reference on seeded data."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import psycopg
import pytest
from returns.result import Failure, Success

from tests.cache_support import records_refused
from wxdata import ExecutionContext, aio, system_context
from wxdata.aio import domains as aio_domains
from wxdata.domains import (
    allergies,
    appointments,
    chronic_conditions,
    clinic_visits,
    emergency_contacts,
    immunizations,
    incident_reports,
    medication_logs,
    medications,
    student_medications,
    vaccinations,
    vital_signs,
)
from wxdata.errors import Conflict, DataError, InvalidQuery
from wxdata.seed import seed
from wxdata.testing import assert_audited


def _rows(conn: psycopg.Connection[Any], table: str, ids: list[Any]) -> list[dict[str, Any]]:
    cur = conn.execute(f"SELECT * FROM {table} WHERE student_id = ANY(%s) AND "
                       "deleted_at IS NULL", (ids,))
    cols = [d.name for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture(scope="module")
def data(owner_url: str) -> dict[str, Any]:
    """A seeded district, loaded and read back by the owner (every school visible)."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        seed(conn, system_context("finders"), schools=2, students=60, seed=23).unwrap()
        found = conn.execute(
            "SELECT s.id, s.school_id FROM students s JOIN schools c ON c.id = s.school_id "
            "JOIN districts d ON d.id = c.district_id "
            "WHERE d.name LIKE 'Synthetic District 0023%%'").fetchall()
        ids = [r[0] for r in found]
        tables = ("allergies", "appointments", "chronic_conditions", "clinic_visits",
                  "emergency_contacts", "immunizations", "incident_reports", "medication_logs",
                  "student_medications", "vaccinations", "vital_signs")
        return {"ids": ids, "schools": {r[1] for r in found},
                **{t: _rows(conn, t, ids) for t in tables}}


@pytest.fixture
def ctx(ctx: ExecutionContext, data: dict[str, Any]) -> ExecutionContext:
    """The nurse, scoped to the seeded schools as well as to the ``school`` fixture's school."""
    return attrs.evolve(ctx, school_ids=ctx.school_ids | data["schools"])


def _mine(data: dict[str, Any], rows: Any) -> list[Any]:
    ids = set(data["ids"])
    return [r for r in rows if r.student_id in ids]


def test_allergies(conn, ctx, data) -> None:
    rows = data["allergies"]
    assert rows, "seed produced allergies"
    sid = rows[0]["student_id"]
    got = allergies.find_by_student(conn, ctx, sid, limit=100).unwrap()
    assert [a.id for a in got.data] == [r["id"] for r in sorted(
        (r for r in rows if r["student_id"] == sid and r["active"]),
        key=lambda r: (r["allergen"], r["id"]))]
    severity = rows[0]["severity"]
    by_sev = _mine(data, allergies.find_by_severity(conn, ctx, severity, limit=100).unwrap().data)
    assert {a.id for a in by_sev} <= {r["id"] for r in rows if r["severity"] == severity}
    text = rows[0]["allergen"][2:5]
    page = allergies.find_by_allergen(conn, ctx, text, limit=100).unwrap()
    expected = {r["id"] for r in rows if r["active"] and text.lower() in r["allergen"].lower()}
    if page.total <= 100:  # everything matching fits one page: compare exactly
        assert {a.id for a in _mine(data, page.data)} == expected


def test_allergy_duplicates_are_conflicts(conn, ctx, make_student) -> None:
    s = make_student()
    values = {"student_id": s.id, "allergen": "Peanuts", "severity": "SEVERE"}
    assert allergies.is_duplicate(conn, ctx, s.id, "peanuts").unwrap() is False
    allergies.ops.create(conn, ctx, values).unwrap()
    assert allergies.is_duplicate(conn, ctx, s.id, "PEANUTS").unwrap() is True
    assert allergies.is_duplicate(conn, ctx, s.id, "Pea%").unwrap() is False
    again = allergies.ops.create(conn, ctx, {**values, "allergen": "peanuts"})
    assert isinstance(again.failure(), Conflict)


def test_medication_finders(conn, ctx, data, sys_ctx) -> None:
    controlled = medications.find_controlled_substances(conn, ctx, limit=100).unwrap()
    assert all(m.is_controlled and m.is_active for m in controlled.data)
    rows = data["student_medications"]
    sid = rows[0]["student_id"]
    today = datetime.now(UTC).date()
    active = student_medications.find_active_by_student(conn, ctx, sid, limit=100).unwrap()
    assert {m.id for m in active.data} == {r["id"] for r in rows if r["student_id"] == sid
                                           and r["is_active"]
                                           and (r["end_date"] is None or r["end_date"] >= today)}
    if active.data:
        stopped = student_medications.discontinue(conn, sys_ctx, active.data[0].id).unwrap()
        assert stopped.is_active is False
        assert stopped.end_date == today


def test_medication_logs(conn, ctx, data) -> None:
    rows = data["medication_logs"]
    sid = rows[0]["student_id"]
    pending = _mine(data, medication_logs.find_pending(conn, ctx, student_id=sid,
                                                       limit=100).unwrap().data)
    assert {m.id for m in pending} == {r["id"] for r in rows if r["student_id"] == sid
                                       and r["status"] == "PENDING"}
    adherence = medication_logs.adherence_rate(conn, ctx, sid).unwrap()
    scheduled = [r for r in rows if r["student_id"] == sid and r["scheduled_at"] is not None]
    given = [r for r in scheduled if r["status"] == "ADMINISTERED"]
    assert (adherence.scheduled, adherence.administered) == (len(scheduled), len(given))
    start, end = date(2025, 1, 1), date(2026, 12, 31)
    ranged = medication_logs.find_by_date_range(conn, ctx, start, end, student_id=sid,
                                                limit=100).unwrap()
    low = datetime(2025, 1, 1, tzinfo=UTC)
    high = datetime(2027, 1, 1, tzinfo=UTC)
    assert {m.id for m in ranged.data} == {r["id"] for r in rows if r["student_id"] == sid
                                           and low <= r["administered_at"] < high}
    assert isinstance(medication_logs.find_by_date_range(conn, ctx, end, start).failure(),
                      InvalidQuery)


def test_schedules_and_dues(conn, ctx, data) -> None:
    rows = data["appointments"]
    sid = rows[0]["student_id"]
    got = appointments.find_by_student(conn, ctx, sid, limit=100).unwrap()
    assert {a.id for a in got.data} == {r["id"] for r in rows if r["student_id"] == sid}
    times = [a.scheduled_at for a in got.data]
    assert times == sorted(times, reverse=True)
    assert isinstance(appointments.find_upcoming_by_nurse(conn, ctx, sid, days=-1).failure(),
                      InvalidQuery)
    due = _mine(data, vaccinations.find_upcoming_due(conn, ctx, days=365, limit=100).unwrap().data)
    today = datetime.now(UTC).date()
    assert all(today <= v.next_due_date <= today + timedelta(days=365) for v in due)
    assert isinstance(immunizations.find_upcoming_due(conn, ctx, days=10_000).failure(),
                      InvalidQuery)
    soon = _mine(data, immunizations.find_upcoming_due(conn, ctx, days=3650,
                                                       limit=100).unwrap().data)
    assert {i.id for i in soon} == {r["id"] for r in data["immunizations"]
                                    if r["next_due_date"] is not None
                                    and today <= r["next_due_date"] <= today + timedelta(days=3650)}


def test_per_student_histories(conn, ctx, data) -> None:
    checks = [
        (vaccinations.find_by_student, "vaccinations"),
        (immunizations.find_by_student, "immunizations"),
        (incident_reports.find_by_student, "incident_reports"),
        (clinic_visits.find_by_student, "clinic_visits"),
        (vital_signs.find_latest, "vital_signs"),
    ]
    for finder, table in checks:
        rows = data[table]
        if not rows:
            continue
        sid = rows[0]["student_id"]
        if finder is vital_signs.find_latest:
            got = finder(conn, ctx, sid, count=100).unwrap()
        else:
            got = finder(conn, ctx, sid, limit=100).unwrap()
        assert {r.id for r in got.data} == {r["id"] for r in rows if r["student_id"] == sid}, table
    conditions = data["chronic_conditions"]
    if conditions:
        sid = conditions[0]["student_id"]
        got = chronic_conditions.find_by_student(conn, ctx, sid, limit=100).unwrap()
        assert {c.id for c in got.data} == {r["id"] for r in conditions
                                            if r["student_id"] == sid and r["is_active"]}


def test_vaccination_compliance(conn, ctx, data) -> None:
    rows = data["vaccinations"]
    sid = rows[0]["student_id"]
    result = vaccinations.compliance(conn, ctx, sid).unwrap()
    assert dict(result.by_status) == dict(Counter(r["compliance_status"] for r in rows
                                                  if r["student_id"] == sid))


def test_emergency_contacts_in_call_order(conn, ctx, data, sys_ctx, make_student) -> None:
    s = make_student()
    for priority, name in (("EMERGENCY_ONLY", "Zed"), ("PRIMARY", "Amy"), ("SECONDARY", "Bo")):
        emergency_contacts.ops.create(conn, sys_ctx, {
            "student_id": s.id, "first_name": name, "last_name": name, "relationship": "Parent",
            "phone_number": "+15550100", "priority": priority}).unwrap()
    got = emergency_contacts.find_by_student(conn, ctx, s.id).unwrap()
    assert [c.priority for c in got] == ["PRIMARY", "SECONDARY", "EMERGENCY_ONLY"]


# --- finders that derive a fact about one student record it -----------------------------------

Case = Callable[[psycopg.Connection[Any], ExecutionContext, dict[str, Any], Any],
                tuple[tuple[Any, ...], Any]]


def _compliance_case(conn: psycopg.Connection[Any], sys_ctx: ExecutionContext,
                     data: dict[str, Any], s: Any) -> tuple[tuple[Any, ...], Any]:
    vaccinations.ops.create(conn, sys_ctx, {
        "student_id": s.id, "vaccine_name": "MMR", "administration_date": date(2020, 1, 1),
        "administered_by": "Clinic", "compliance_status": "NON_COMPLIANT"}).unwrap()
    return (s.id,), vaccinations.Compliance((("NON_COMPLIANT", 1),), False, s.id)


def _adherence_case(conn: psycopg.Connection[Any], sys_ctx: ExecutionContext,
                    data: dict[str, Any], s: Any) -> tuple[tuple[Any, ...], Any]:
    at = datetime(2025, 3, 1, 8, tzinfo=UTC)
    medication_logs.ops.create(conn, sys_ctx, {
        "student_id": s.id, "medication_id": data["medication_logs"][0]["medication_id"],
        "dosage": 5, "dosage_unit": "mg", "route": "oral", "scheduled_at": at,
        "administered_at": at, "administered_by": "Nurse", "status": "ADMINISTERED"}).unwrap()
    return (s.id,), medication_logs.Adherence(1, 1, 100, s.id)


def _duplicate_case(conn: psycopg.Connection[Any], sys_ctx: ExecutionContext,
                    data: dict[str, Any], s: Any) -> tuple[tuple[Any, ...], Any]:
    allergies.ops.create(conn, sys_ctx, {"student_id": s.id, "allergen": "Peanuts",
                                         "severity": "SEVERE"}).unwrap()
    return (s.id, "peanuts"), True


#: finder -> (its domain module, the student's row it needs, and its arguments and answer)
DERIVED: dict[str, tuple[Any, Case]] = {
    "compliance": (vaccinations, _compliance_case),
    "adherence_rate": (medication_logs, _adherence_case),
    "is_duplicate": (allergies, _duplicate_case),
}
SHELLS = ("sync", "async")


def _derived(shell: str, module: Any, name: str, conn: psycopg.Connection[Any], db_url: str,
             ctx: ExecutionContext, args: tuple[Any, ...]) -> Any:
    """The finder ``name`` of the domain ``module`` called on one shell (the async one as
    ``wxdata.aio.domains`` publishes it, on a connection of its own)."""
    if shell == "sync":
        return getattr(module, name)(conn, ctx, *args)
    twin = getattr(getattr(aio_domains, module.__name__.rsplit(".", 1)[-1]), name)

    async def call() -> Any:
        aconn = await aio.connect(db_url)
        try:
            return await twin(aconn, ctx, *args)
        finally:
            await aconn.close()

    return asyncio.run(call())



def _request_records(admin: psycopg.Connection[Any], request_id: str) -> list[tuple[Any, ...]]:
    return admin.execute("SELECT action::text, entity_type, subject_ids FROM audit_log "
                         "WHERE request_id = %s", (request_id,)).fetchall()


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("case", list(DERIVED))
def test_a_derived_fact_about_a_student_is_recorded_naming_the_student(
        case: str, shell: str, conn, admin_conn, db_url, ctx, sys_ctx, data,
        make_student) -> None:
    module, build = DERIVED[case]
    s = make_student()
    args, expected = build(conn, sys_ctx, data, s)
    call = attrs.evolve(ctx, request_id=f"req-derived-{uuid.uuid4().hex}")
    assert _derived(shell, module, case, conn, db_url, call, args) == Success(expected)
    assert_audited(admin_conn, action="READ", entity=module.ENTITY.name, subjects=[s.id],
                   request_id=call.request_id, count=1)
    assert len(_request_records(admin_conn, call.request_id)) == 1


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("case", list(DERIVED))
def test_a_derived_fact_whose_record_is_refused_is_a_failure_and_no_value(
        case: str, shell: str, conn, admin_conn, db_url, ctx, sys_ctx, data,
        make_student) -> None:
    module, build = DERIVED[case]
    s = make_student()
    args, _ = build(conn, sys_ctx, data, s)
    call = attrs.evolve(ctx, request_id=f"req-refused-{uuid.uuid4().hex}")
    with records_refused(admin_conn, call.request_id):
        got = _derived(shell, module, case, conn, db_url, call, args)
    assert isinstance(got, Failure), got
    assert isinstance(got.failure(), DataError)
    assert got.value_or(None) is None
    assert _request_records(admin_conn, call.request_id) == []
