"""Core domain finders against a Python reference on seeded data (also exercises `seed`)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import attrs
import pytest
from returns.result import Failure, Success

from wxdata import ExecutionContext, system_context
from wxdata.domains import health_records, students
from wxdata.errors import InvalidQuery, NotFound
from wxdata.seed import seed


@pytest.fixture(scope="module")
def seeded(owner_url: str) -> dict[str, Any]:
    """A seeded district, loaded and read back by the owner (every school visible)."""
    import psycopg

    with psycopg.connect(owner_url, autocommit=True) as conn:
        report = seed(conn, system_context("test-seed"), schools=2, students=80, seed=11,
                      per_student=3).unwrap()
        rows = conn.execute(
            "SELECT s.* FROM students s JOIN schools c ON c.id = s.school_id "
            "JOIN districts d ON d.id = c.district_id WHERE d.name LIKE 'Synthetic District 0011%%'"
        ).fetchall()
        cols = [d.name for d in conn.execute("SELECT * FROM students LIMIT 0").description]
        people = [dict(zip(cols, r, strict=True)) for r in rows]
        ids = [p["id"] for p in people]
        recs = conn.execute("SELECT * FROM health_records WHERE student_id = ANY(%s)", (ids,))
        rcols = [d.name for d in recs.description]
        records = [dict(zip(rcols, r, strict=True)) for r in recs.fetchall()]
    return {"report": report, "students": people, "records": records}


@pytest.fixture
def ctx(ctx: ExecutionContext, seeded: dict[str, Any]) -> ExecutionContext:
    """The nurse, scoped to the seeded schools as well as to the ``school`` fixture's school."""
    return attrs.evolve(ctx, school_ids=ctx.school_ids | {p["school_id"] for p in seeded["students"]})


def test_seed_is_deterministic_and_reports_rate(seeded) -> None:
    report = seeded["report"]
    assert report.rows["Student"] == 80
    assert report.rows["HealthRecord"] == 240
    assert report.rows_per_second > 0
    assert len(seeded["students"]) == 80


def test_by_number_and_mrn(conn, ctx, seeded) -> None:
    someone = next(s for s in seeded["students"] if s["medical_record_num"])
    assert students.find_by_student_number(conn, ctx, someone["student_number"]).unwrap().id == \
        someone["id"]
    assert students.find_by_medical_record_number(conn, ctx, someone["medical_record_num"]) \
        .unwrap().id == someone["id"]
    assert students.find_by_student_number(conn, ctx, "nope") == Failure(NotFound("Student"))


def test_by_grade_and_nurse_match_reference(conn, ctx, seeded) -> None:
    people = seeded["students"]
    grade = Counter(p["grade"] for p in people).most_common(1)[0][0]
    school_ids = {p["school_id"] for p in people}
    expected = sorted((p for p in people if p["grade"] == grade and p["is_active"]),
                      key=lambda p: (p["last_name"], p["first_name"], p["id"]))
    page = students.find_by_grade(conn, ctx, grade, limit=100).unwrap()
    got = [s for s in page.data if s.school_id in school_ids]
    assert [s.id for s in got] == [p["id"] for p in expected]
    nurse = people[0]["nurse_id"]
    by_nurse = students.find_by_nurse(conn, ctx, nurse, limit=100).unwrap()
    assert {s.id for s in by_nurse.data} == {p["id"] for p in people
                                             if p["nurse_id"] == nurse and p["is_active"]}


def test_search_escapes_and_matches_reference(conn, ctx, seeded) -> None:
    people = seeded["students"]
    needle = people[3]["last_name"][1:4]
    result = students.search(conn, ctx, needle, limit=100).unwrap()
    mine = {p["id"] for p in people}
    got = {s.id for s in result.data if s.id in mine}
    expected = {p["id"] for p in people if p["is_active"] and any(
        needle.lower() in (p[f] or "").lower()
        for f in ("first_name", "last_name", "student_number", "medical_record_num"))}
    assert got == expected
    wildcard = students.search(conn, ctx, "%", limit=100).unwrap()
    assert {s.id for s in wildcard.data} & mine == set()  # '%' is literal: no seeded name has one


def test_bulk_assign_to_nurse(conn, ctx, seeded, sys_ctx) -> None:
    people = seeded["students"][:5]
    other = seeded["students"][-1]["nurse_id"]
    outcome = students.bulk_assign_to_nurse(conn, sys_ctx, [p["id"] for p in people], other)
    ids = outcome.unwrap().changed
    assert outcome.unwrap().complete
    assert list(ids) == [p["id"] for p in people]
    for p in people:
        assert students.find_by_id(conn, ctx, p["id"]).unwrap().nurse_id == other
    record = conn.execute("SELECT entity_ids, action FROM audit_log WHERE action = 'BULK_UPDATE' "
                          "AND entity_type = 'Student' ORDER BY seq DESC LIMIT 1").fetchone()
    assert sorted(record[0]) == sorted(ids)
    assert isinstance(students.bulk_assign_to_nurse(conn, ctx, [], other).failure(), InvalidQuery)


def test_health_record_finders_match_reference(conn, ctx, seeded) -> None:
    records = seeded["records"]
    sid = records[0]["student_id"]
    # newest first; equal dates fall back to the primary key, ascending (wxdata's tie-breaker)
    mine = sorted((r for r in records if r["student_id"] == sid), key=lambda r: r["id"])
    mine.sort(key=lambda r: r["record_date"], reverse=True)
    got = health_records.find_by_student(conn, ctx, sid).unwrap()
    assert [r.id for r in got.data] == [r["id"] for r in mine]
    start, end = date(2025, 6, 1), date(2026, 6, 1)
    ranged = health_records.find_by_date_range(conn, ctx, sid, start, end).unwrap()
    assert {r.id for r in ranged.data} == {r["id"] for r in mine if start <= r["record_date"] <= end}
    assert isinstance(health_records.find_by_date_range(conn, ctx, sid, end, start).failure(),
                      InvalidQuery)
    kind = records[0]["record_type"]
    typed = health_records.find_by_type(conn, ctx, kind, student_id=sid).unwrap()
    assert {r.id for r in typed.data} == {r["id"] for r in mine if r["record_type"] == kind}


def test_follow_ups_and_summary(conn, ctx, seeded) -> None:
    records = seeded["records"]
    ids = {r["id"] for r in records}
    due = date(2026, 12, 31)
    page = health_records.find_requiring_follow_up(conn, ctx, due_by=due, limit=100).unwrap()
    got = [r for r in page.data if r.id in ids]
    assert all(r.follow_up_required and not r.follow_up_completed for r in got)
    assert [r.follow_up_date for r in got] == sorted(r.follow_up_date for r in got)
    sid = records[0]["student_id"]
    mine = [r for r in records if r["student_id"] == sid]
    summary = health_records.student_health_summary(conn, ctx, sid).unwrap()
    assert summary.total == len(mine)
    assert summary.latest == max(r["record_date"] for r in mine)
    assert {t.record_type: t.records for t in summary.by_type} == dict(
        Counter(r["record_type"] for r in mine))
    audit = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'READ' AND "
                         "subject_student_id = %s AND metadata->>'summary' = 'true'",
                         (sid,)).fetchone()
    assert audit == (1,)
    assert health_records.student_health_summary(conn, ctx, "x") == Failure(
        InvalidQuery("student_id", "must be a UUID"))
    assert isinstance(health_records.student_health_summary(conn, ctx, sid), Success)


def test_user_by_email_never_carries_credentials(conn, ctx, sys_ctx, school) -> None:
    from wxdata.domains import organisation

    email = f"Nurse.{school['school_id'].hex[:8]}@Example.org"
    made = organisation.users.create(conn, sys_ctx, {
        "email": email, "first_name": "Ruth", "last_name": "Hale", "role": "NURSE",
        "password_hash": "$2b$12$secretsecretsecretsecretsecretsecretsecretsecretsecret",
        "mfa_secret": "JBSWY3DPEHPK3PXP", "school_id": school["school_id"]}).unwrap()
    found = organisation.find_user_by_email(conn, ctx, email.upper()).unwrap()
    assert found.id == made.id
    assert not hasattr(found, "password_hash")
    assert not hasattr(found, "mfa_secret")
    assert "secretsecret" not in repr(found)
    wildcard = organisation.find_user_by_email(conn, ctx, "%@example.org")
    assert wildcard == Failure(NotFound("User"))
    audit = conn.execute("SELECT changes::text FROM audit_log WHERE entity_id = %s", (made.id,))
    assert all("secretsecret" not in (r[0] or "") and "JBSWY3DP" not in (r[0] or "")
               for r in audit.fetchall())
    schools_page = organisation.schools_in_district(conn, ctx, school["district_id"]).unwrap()
    assert [s.id for s in schools_page.data] == [school["school_id"]]
