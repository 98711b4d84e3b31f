"""Tables scoped through their students: exactly the rows the scope grants, with one verification.

A table without a ``school_id`` of its own (health records, allergies, documents, ...) is scoped
through its ``student_id``: a row is visible, and may be written, exactly when the scope grants
its student's school, or grants every school (SYSTEM, break-glass). A row whose student has no
school, or that names no student, is granted only by a scope of every school. These tests compare
what the application role sees and may write with that model, for generated scopes, on two such
tables (one whose ``student_id`` may be NULL), through wxdata's own context statement; and check
that every table scoped through students carries the same predicate, which verifies the token
once per statement.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wxdata import ExecutionContext, Purpose, Role, system_context
from wxdata.tx.scope import context_statement
from wxdata.tx.token import scope_key

Conn = psycopg.Connection[Any]

_SCHOOLS = ("a", "b", "c")


@pytest.fixture(scope="module")
def world(owner_url: str) -> Iterator[dict[str, Any]]:
    """Schools a, b, c; a student in each and one without a school; a health record and a
    document per student, and a document naming no student (written as the owner)."""
    with psycopg.connect(owner_url, autocommit=True) as admin:
        tag = uuid.uuid4().hex[:8]
        district = admin.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                                 (f"TS-{tag}",)).fetchone()[0]
        schools = {name: admin.execute(
            "INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) RETURNING id",
            (f"TS-{tag}-{name}", district)).fetchone()[0] for name in _SCHOOLS}
        students: dict[str | None, uuid.UUID] = {}
        for name in (*_SCHOOLS, None):
            students[name] = admin.execute(
                "INSERT INTO students (student_number, first_name, last_name, date_of_birth,"
                " grade, gender, enrollment_date, school_id, district_id) VALUES"
                " (%s, 'Ada', 'Lovelace', '2014-05-17', '5', 'FEMALE', '2020-09-01', %s, %s)"
                " RETURNING id", (f"TS-{tag}-{name}", schools.get(name or ""), district),
            ).fetchone()[0]
        records = {name: admin.execute(
            "INSERT INTO health_records (student_id, record_type, title, description, record_date)"
            " VALUES (%s, 'CHECKUP', 'Annual', 'Routine', current_date) RETURNING id",
            (sid,)).fetchone()[0] for name, sid in students.items()}
        documents = {}
        for name, sid in [*students.items(), ("no student", None)]:
            documents[name] = admin.execute(
                "INSERT INTO documents (title, category, file_type, file_name, file_size,"
                " file_url, uploaded_by, student_id) VALUES ('T', 'MEDICAL_RECORD', 'pdf',"
                " 'f.pdf', 2048, 'https://files.example/f.pdf', 'u', %s) RETURNING id",
                (sid,)).fetchone()[0]
        yield {"schools": schools, "students": students, "records": records,
               "documents": documents}


def _context(world: dict[str, Any], granted: frozenset[str], every: str | None) -> ExecutionContext:
    if every == "system":
        return system_context("tests")
    ctx = ExecutionContext(user_id="u-scope", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           school_ids={world["schools"][n] for n in granted},
                           request_id="req-scope-students")
    return ctx.break_glass("patient collapsed in the gym") if every == "break-glass" else ctx


def _visible(conn: Conn, table: str, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = conn.execute(f"SELECT id FROM {table} WHERE id = ANY(%s)", (ids,)).fetchall()
    return {r[0] for r in rows}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(granted=st.frozensets(st.sampled_from(_SCHOOLS)),
       every=st.sampled_from([None, None, None, "system", "break-glass"]))
def test_rows_scoped_through_students_are_exactly_the_scopes(
        conn: Conn, world: dict[str, Any], granted: frozenset[str], every: str | None) -> None:
    ctx = _context(world, granted, every)
    statement, values = context_statement(ctx, scope_key())

    def grants(student: str | None) -> bool:
        return every is not None or (student is not None and student in granted)

    with conn.transaction():
        conn.execute(statement, values)
        records, documents = world["records"], world["documents"]
        assert _visible(conn, "health_records", list(records.values())) == {
            rid for name, rid in records.items() if grants(name)}
        assert _visible(conn, "documents", list(documents.values())) == {
            did for name, did in documents.items() if grants(None if name == "no student"
                                                            else name)}
        for name, sid in world["students"].items():  # writes: the same rule, WITH CHECK
            try:
                with conn.transaction(force_rollback=True):  # the world stays as it was
                    conn.execute(
                        "INSERT INTO health_records (student_id, record_type, title, description,"
                        " record_date) VALUES (%s, 'CHECKUP', 'New', 'Routine', current_date)",
                        (sid,))
                written = True
            except psycopg.errors.InsufficientPrivilege:
                written = False
            assert written == grants(name), name


def test_a_row_cannot_be_moved_to_a_student_outside_the_scope(
        conn: Conn, world: dict[str, Any]) -> None:
    ctx = _context(world, frozenset({"a"}), None)
    statement, values = context_statement(ctx, scope_key())
    with conn.transaction():
        conn.execute(statement, values)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("UPDATE health_records SET student_id = %s WHERE id = %s",
                         (world["students"]["b"], world["records"]["a"]))


def _verifications(node: dict[str, Any]) -> int:
    """How many plan nodes computing the verifier ran (EXPLAIN ANALYZE VERBOSE, JSON)."""
    here = int(any("wxdata_scope_schools()" in out for out in node.get("Output", []))
               and node.get("Actual Loops", 0) > 0)
    return here + sum(_verifications(child) for child in node.get("Plans", []))


def test_a_read_through_students_verifies_the_token_once(
        conn: Conn, world: dict[str, Any]) -> None:
    """A health record of a granted student: the students policy's verification only (the
    table's own is never reached); before, both ran."""
    ctx = _context(world, frozenset({"a"}), None)
    statement, values = context_statement(ctx, scope_key())
    with conn.transaction():
        conn.execute(statement, values)
        row = conn.execute(
            "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON)"
            " SELECT * FROM health_records WHERE id = %s", (world["records"]["a"],)).fetchone()
    assert row is not None
    plan = row[0][0]["Plan"]
    assert plan["Actual Rows"] == 1
    assert _verifications(plan) == 1


def test_every_table_scoped_through_students_has_the_one_predicate(admin_conn: Conn) -> None:
    """Every such table carries the predicate measured above, for reads and writes alike."""
    rows = admin_conn.execute(
        "SELECT c.relname, pg_get_expr(p.polqual, p.polrelid),"
        "       pg_get_expr(p.polwithcheck, p.polrelid)"
        "  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid"
        " WHERE p.polname = 'wxdata_school_scope' AND c.relname <> 'students'"
        "   AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid"
        "                   AND a.attname = 'school_id' AND NOT a.attisdropped)").fetchall()
    assert len(rows) >= 20
    shapes = {re.sub(rf"\b{re.escape(name)}\.", "", qual) for name, qual, _ in rows}
    assert len(shapes) == 1, shapes
    assert all(qual == check for _, qual, check in rows)
