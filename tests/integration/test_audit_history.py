"""History from the audit trail: who changed what, and the row "as of" any instant (masked fields
stay masked); reading history is itself audited and limited to audit readers."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wxdata.audit import history, reports
from wxdata.audit.redact import MASK
from wxdata.context import ExecutionContext, Role
from wxdata.domains import health_records, students
from wxdata.errors import Forbidden, NotFound

FIELDS = ("grade", "first_name", "last_name")
VALUES = st.sampled_from(["Ada", "Grace", "Kat", "Mary", "5", "6", "7"])


def _admin(ctx: ExecutionContext, school: dict[str, uuid.UUID]) -> ExecutionContext:
    return attrs.evolve(ctx, role=Role.ADMIN, school_ids=frozenset({school["school_id"]}),
                        user_id=f"u-admin-{uuid.uuid4().hex[:6]}")


def _last_record_time(conn: psycopg.Connection[Any], row_id: uuid.UUID) -> datetime:
    row = conn.execute(
        "SELECT max(created_at) FROM audit_log WHERE entity_id = %s AND action <> 'READ'",
        (row_id,)).fetchone()
    assert row is not None and row[0] is not None
    return row[0]  # type: ignore[no-any-return]


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), min_size=1, max_size=6))
def test_as_of_every_instant_equals_the_tracked_state(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, uuid.UUID],
    make_student: Any, steps: list[tuple[str, str]],
) -> None:
    admin = _admin(ctx, school)
    student = make_student()
    state = {f: getattr(student, f) for f in FIELDS}
    timeline = [(_last_record_time(conn, student.id), dict(state))]
    for field, value in steps:
        students.update(conn, admin, student.id, {field: value}).unwrap()
        state[field] = value
        timeline.append((_last_record_time(conn, student.id), dict(state)))
    before = timeline[0][0] - timedelta(microseconds=1)
    assert isinstance(history.as_of(conn, admin, students.ENTITY, student.id, before).failure(),
                      NotFound)
    for i, (at, expected) in enumerate(timeline):
        probes = [at]
        if i + 1 < len(timeline):
            probes.append(at + (timeline[i + 1][0] - at) / 2)
        for when in probes:
            snap = history.as_of(conn, admin, students.ENTITY, student.id, when).unwrap()
            assert snap.complete and not snap.deleted
            assert {f: snap.values[f] for f in FIELDS} == expected
            assert snap.changes == i + 1


def test_changes_list_who_changed_what_with_diffs(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, uuid.UUID],
    make_student: Any,
) -> None:
    admin = _admin(ctx, school)
    student = make_student(grade="5")
    students.update(conn, admin, student.id, {"grade": "6"}).unwrap()
    students.delete(conn, admin, student.id).unwrap()
    students.restore(conn, admin, student.id).unwrap()
    found = history.changes(conn, admin, students.ENTITY, student.id).unwrap()
    assert [c.action for c in found] == ["CREATE", "UPDATE", "DELETE", "RESTORE"]
    update = found[1]
    assert update.user_id == admin.user_id and update.user_role == "ADMIN"
    assert update.diff is not None and update.diff["grade"] == {"before": "5", "after": "6"}
    deleted_at = found[2].at
    assert history.as_of(conn, admin, students.ENTITY, student.id, deleted_at).unwrap().deleted
    assert not history.as_of(conn, admin, students.ENTITY, student.id, found[3].at).unwrap().deleted


def test_clinical_text_stays_masked_in_history(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, uuid.UUID],
    make_student: Any,
) -> None:
    admin = _admin(ctx, school)
    secret = f"sentinel-diagnosis-{uuid.uuid4().hex}"
    rec = health_records.create(conn, admin, {
        "student_id": make_student().id, "record_type": "CHECKUP", "title": "Annual check",
        "description": secret, "record_date": date(2024, 1, 2)}).unwrap()
    health_records.update(conn, admin, rec.id, {"diagnosis": secret + "-2"}).unwrap()
    snap = history.as_of(conn, admin, health_records.ENTITY, rec.id,
                         _last_record_time(conn, rec.id)).unwrap()
    assert snap.values["description"] == MASK and snap.values["diagnosis"] == MASK
    assert {"description", "diagnosis"} <= snap.masked
    assert snap.values["title"] == "Annual check"
    assert secret not in repr(snap)


def test_reading_history_is_audited_and_limited_to_audit_readers(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, uuid.UUID],
    make_student: Any,
) -> None:
    admin = _admin(ctx, school)
    student = make_student()
    history.changes(conn, admin, students.ENTITY, student.id).unwrap()
    history.as_of(conn, admin, students.ENTITY, student.id, datetime.now().astimezone()).unwrap()
    reads = conn.execute(
        "SELECT metadata->>'report', subject_student_id FROM audit_log WHERE user_id = %s "
        "AND action = 'READ' ORDER BY seq", (admin.user_id,)).fetchall()
    assert reads == [("history", student.id), ("history_as_of", student.id)]
    nurse = attrs.evolve(admin, role=Role.NURSE, user_id=f"u-nurse-{uuid.uuid4().hex[:6]}")
    assert isinstance(history.changes(conn, nurse, students.ENTITY, student.id).failure(), Forbidden)
    denied = conn.execute("SELECT count(*) FROM audit_log WHERE user_id = %s AND action = "
                          "'ACCESS_DENIED'", (nurse.user_id,)).fetchone()
    assert denied == (1,)


def test_history_is_rebuilt_only_for_a_reader_whose_scope_shows_the_student(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, sys_ctx: ExecutionContext,
    school: dict[str, uuid.UUID], make_student: Any,
) -> None:
    """A school or district administrator of another school gets no history of the student (no
    oracle: the same answer as for a row with none), nor its records in the reports; their own
    school's administrator, ADMIN (the privacy officer) and SYSTEM get them."""
    student = make_student()
    students.update(conn, sys_ctx, student.id, {"grade": "7"}).unwrap()
    record = health_records.create(conn, sys_ctx, {
        "student_id": student.id, "record_type": "ILLNESS", "title": "Flu",
        "description": "fever", "record_date": date(2024, 2, 1)}).unwrap()
    district = conn.execute("SELECT district_id FROM schools WHERE id = %s",
                            (school["school_id"],)).fetchone()
    assert district is not None
    other = conn.execute(
        "INSERT INTO schools (name, code, district_id) VALUES ('Other', %s, %s) RETURNING id",
        (f"O-{uuid.uuid4().hex[:8]}", district[0])).fetchone()
    assert other is not None
    now = datetime.now().astimezone()
    outsider = _admin(ctx, {"school_id": other[0]})
    for role in (Role.SCHOOL_ADMIN, Role.DISTRICT_ADMIN):
        reader = attrs.evolve(outsider, role=role)
        for entity, key in ((students.ENTITY, student.id), (health_records.ENTITY, record.id)):
            assert history.changes(conn, reader, entity, key).unwrap() == ()
            assert isinstance(history.as_of(conn, reader, entity, key, now).failure(), NotFound)
            assert list(reports.entity_history(conn, reader, entity.name, key).unwrap()) == []
        assert list(reports.accounting_of_disclosures(conn, reader, student.id).unwrap()) == []
        assert all(entry.subject_student_id != student.id
                   for entry in reports.user_activity(conn, reader, sys_ctx.user_id).unwrap())
    insider = attrs.evolve(_admin(ctx, school), role=Role.SCHOOL_ADMIN)
    officer = attrs.evolve(outsider, role=Role.ADMIN)
    for reader in (insider, officer, sys_ctx):
        assert history.as_of(conn, reader, students.ENTITY, student.id, now).unwrap().values[
            "grade"] == "7"
        assert len(history.changes(conn, reader, health_records.ENTITY, record.id).unwrap()) == 1
        assert list(reports.entity_history(conn, reader, "HealthRecord", record.id).unwrap())
        assert list(reports.accounting_of_disclosures(conn, reader, student.id).unwrap())


@pytest.mark.parametrize("bad", ["not-a-uuid", "", "1; DROP TABLE students"])
def test_bad_ids_and_naive_times_are_typed_failures(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, uuid.UUID], bad: str,
) -> None:
    admin = _admin(ctx, school)
    failure = history.changes(conn, admin, students.ENTITY, bad).failure()
    assert failure.code == "INVALID_QUERY"
    assert not bad or bad not in str(failure)
    naive = history.as_of(conn, admin, students.ENTITY, uuid.uuid4(), datetime(2024, 1, 1)).failure()
    assert naive.code == "INVALID_QUERY"
