"""Cross-school attempts leave a trace: a by-id read, update, delete or restore of another
school's row answers NotFound (no existence oracle) and writes ACCESS_DENIED ("outside school
scope", no PHI) on audit lane 2, for reads and writes alike; bulk operations over ids say which ids
were not changed. Runs as the application role, subject to row-level security."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Failure

from tests.conftest import student_values
from wxdata import crud
from wxdata.audit.denials import OUTSIDE_SCOPE, OUTSIDE_SCOPE_SQL
from wxdata.bulk import BulkOutcome
from wxdata.context import ExecutionContext, Purpose, Role
from wxdata.core import auditing as crud_plans
from wxdata.db import bypasses_row_security_role
from wxdata.domains import health_records, students
from wxdata.errors import InvalidQuery, NotFound
from wxdata.tx import RollbackScope, unit_of_work

Conn = psycopg.Connection[Any]


def _school(conn: Conn, tag: str) -> dict[str, uuid.UUID]:
    d = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                     (f"SD-{tag}",)).fetchone()
    s = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) "
                     "RETURNING id", (f"SS-{tag}", d[0])).fetchone()
    return {"district_id": d[0], "school_id": s[0]}


@pytest.fixture
def world(conn: Conn, sys_ctx: ExecutionContext) -> dict[str, Any]:
    """Two schools, two students in each, a health record in school B, a nurse user."""
    tag = uuid.uuid4().hex[:8]
    a, b = _school(conn, tag + "a"), _school(conn, tag + "b")
    sa = [students.create(conn, sys_ctx, student_values(a)).unwrap() for _ in range(2)]
    sb = [students.create(conn, sys_ctx, student_values(b)).unwrap() for _ in range(2)]
    rb = health_records.create(conn, sys_ctx, {
        "student_id": sb[0].id, "record_type": "ILLNESS", "title": "Flu", "description": "fever",
        "record_date": date(2024, 2, 1)}).unwrap()
    user = conn.execute(
        "INSERT INTO users (email, password_hash, first_name, last_name, role) "
        "VALUES (%s, 'x', 'N', 'N', 'NURSE') RETURNING id", (f"n-{tag}@example.org",)).fetchone()
    return {"a": a, "b": b, "sa": sa, "sb": sb, "rb": rb, "nurse_user": user[0]}


@pytest.fixture
def conn(admin_conn: Conn) -> Conn:
    """Here ``conn`` is the owner: set-up with SYSTEM contexts and checks that see past the
    school scope; ``app_conn`` is the connection under test."""
    return admin_conn


@pytest.fixture
def app_conn(db_url: str) -> Iterator[Conn]:
    """A connection subject to row-level security (the application role)."""
    def privileged(c: Conn) -> bool:
        row = c.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles "
                        "WHERE rolname = current_user").fetchone()
        return bool(row and row[0])

    with psycopg.connect(db_url, autocommit=True) as c:  # the run's application login role
        assert not privileged(c)
        assert not bypasses_row_security_role(c)
        yield c


def nurse_of(school: dict[str, uuid.UUID]) -> ExecutionContext:
    return ExecutionContext(user_id="u-nurse-scope", role=Role.NURSE, purpose=Purpose.TREATMENT,
                            school_ids={school["school_id"]},
                            request_id=f"req-{uuid.uuid4().hex[:12]}")


def trail(conn: Conn, ctx: ExecutionContext) -> list[tuple[Any, ...]]:
    """(action, entity_type, entity_id, entity_ids, success, error_message, attempted, reason,
    subject, changes, new_values, previous_values) of the context's records, oldest first."""
    return conn.execute(
        "SELECT action, entity_type, entity_id, entity_ids, success, error_message, "
        "metadata->>'attempted', metadata->>'reason', subject_student_id, changes, new_values, "
        "previous_values FROM audit_log WHERE request_id = %s ORDER BY seq",
        (ctx.request_id,)).fetchall()


def denial(entity: str, attempted: str, ids: list[uuid.UUID]) -> tuple[Any, ...]:
    return ("ACCESS_DENIED", entity, ids[0] if len(ids) == 1 else None, ids, False,
            OUTSIDE_SCOPE, attempted, OUTSIDE_SCOPE, None, None, None, None)


ATTEMPTS = {
    "READ": lambda c, ctx, i: students.find_by_id(c, ctx, i),
    "READ_DELETED": lambda c, ctx, i: students.find_by_id(c, ctx, i, include_deleted=True),
    "UPDATE": lambda c, ctx, i: students.update(c, ctx, i, {"grade": "9"}),
    "UPDATE_VERSIONED": lambda c, ctx, i: students.update(c, ctx, i, {"grade": "9"},
                                                          expected_version=1),
    "UPDATE_VALIDATED": lambda c, ctx, i: students.update(  # cross-field validator: locks first
        c, ctx, i, {"date_of_birth": date(2015, 1, 1)}),
    "DELETE": lambda c, ctx, i: students.delete(c, ctx, i),
    "RESTORE": lambda c, ctx, i: students.restore(c, ctx, i),
}
RECORDED_AS = {"READ_DELETED": "READ", "UPDATE_VERSIONED": "UPDATE", "UPDATE_VALIDATED": "UPDATE"}


@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
def test_cross_school_attempt_is_not_found_and_recorded_denied(app_conn, conn, world,
                                                               attempt) -> None:
    ctx = nurse_of(world["a"])
    target = world["sb"][0]
    before = conn.execute("SELECT grade, deleted_at, version FROM students WHERE id = %s",
                          (target.id,)).fetchone()
    assert ATTEMPTS[attempt](app_conn, ctx, target.id) == Failure(NotFound("Student"))
    assert trail(conn, ctx) == [denial("Student", RECORDED_AS.get(attempt, attempt), [target.id])]
    after = conn.execute("SELECT grade, deleted_at, version FROM students WHERE id = %s",
                         (target.id,)).fetchone()
    assert after == before


@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
def test_an_absent_id_is_not_recorded_as_a_denial(app_conn, conn, world, attempt) -> None:
    ctx = nurse_of(world["a"])
    assert ATTEMPTS[attempt](app_conn, ctx, uuid.uuid4()) == Failure(NotFound("Student"))
    assert [r for r in trail(conn, ctx) if r[0] == "ACCESS_DENIED"] == []


def test_own_school_miss_is_not_a_denial(app_conn, conn, world, sys_ctx) -> None:
    ctx = nurse_of(world["a"])
    mine = world["sa"][1]
    assert students.delete(app_conn, ctx, mine.id).unwrap() is None
    assert students.find_by_id(app_conn, ctx, mine.id) == Failure(NotFound("Student"))
    assert students.update(app_conn, ctx, mine.id, {"grade": "9"}) == Failure(NotFound("Student"))
    assert [r for r in trail(conn, ctx) if r[0] == "ACCESS_DENIED"] == []


def test_student_linked_rows_are_covered(app_conn, conn, world) -> None:
    ctx = nurse_of(world["a"])
    rb = world["rb"]
    assert health_records.find_by_id(app_conn, ctx, rb.id) == Failure(NotFound("HealthRecord"))
    assert health_records.update(app_conn, ctx, rb.id, {"title": "x"}) == Failure(
        NotFound("HealthRecord"))
    assert trail(conn, ctx) == [denial("HealthRecord", "READ", [rb.id]),
                                denial("HealthRecord", "UPDATE", [rb.id])]


def test_denial_survives_a_rolled_back_unit_of_work(app_conn, conn, world) -> None:
    ctx = nurse_of(world["a"])
    target = world["sb"][0]
    with unit_of_work(app_conn, ctx):
        assert students.find_by_id(app_conn, ctx, target.id) == Failure(NotFound("Student"))
        assert students.find_by_id(app_conn, ctx, world["sa"][0].id).unwrap().id == (
            world["sa"][0].id)  # the transaction is still usable after the check
        raise RollbackScope
    assert [r[0] for r in trail(conn, ctx)].count("ACCESS_DENIED") == 1


def test_the_check_costs_nothing_on_the_success_path(app_conn, world, monkeypatch) -> None:
    calls: list[tuple[uuid.UUID, ...]] = []
    real = crud_plans._outside_scope

    def spy(conn: Conn, ctx: ExecutionContext, entity: Any, ids: tuple[uuid.UUID, ...]) -> Any:
        calls.append(ids)
        return real(conn, ctx, entity, ids)

    monkeypatch.setattr(crud_plans, "_outside_scope", spy)
    ctx = nurse_of(world["a"])
    mine = world["sa"][0]
    assert students.find_by_id(app_conn, ctx, mine.id).unwrap().id == mine.id
    assert students.update(app_conn, ctx, mine.id, {"grade": "4"}).unwrap().grade == "4"
    assert students.delete(app_conn, ctx, mine.id).unwrap() is None
    assert students.restore(app_conn, ctx, mine.id).unwrap().id == mine.id
    assert calls == []
    assert students.find_by_id(app_conn, ctx, world["sb"][0].id).failure() == NotFound("Student")
    assert calls == [(world["sb"][0].id,)]


def test_bypassing_contexts_never_ask(app_conn, conn, world, sys_ctx) -> None:
    glass = nurse_of(world["a"]).break_glass("unconscious student, allergy chart needed now")
    missing = uuid.uuid4()
    assert students.find_by_id(app_conn, glass, missing) == Failure(NotFound("Student"))
    assert [r for r in trail(conn, glass) if r[0] == "ACCESS_DENIED"] == []


def test_the_database_function_reveals_one_boolean(app_conn, world) -> None:
    ctx = nurse_of(world["a"])

    def ask(table: str, ids: list[uuid.UUID]) -> Any:
        return crud.fetch(app_conn, ctx, OUTSIDE_SCOPE_SQL, {"_table": table, "_ids": ids})

    assert ask("students", [world["sb"][0].id]).unwrap() == [(True,)]
    assert ask("students", [world["sa"][0].id]).unwrap() == [(False,)]
    assert ask("students", [uuid.uuid4()]).unwrap() == [(False,)]
    assert ask("health_records", [world["rb"].id]).unwrap() == [(True,)]
    assert ask("schools", [world["b"]["school_id"]]).unwrap() == [(False,)]  # not school-scoped
    assert ask("users", [world["nurse_user"]]).unwrap() == [(False,)]
    secdef = app_conn.execute(
        "SELECT p.prosecdef, p.proconfig FROM pg_proc p WHERE p.proname = 'wxdata_outside_scope'"
    ).fetchone()
    assert secdef == (True, ["search_path=pg_catalog, public, pg_temp"])


# --- bulk operations say what was not changed ------------------------------------------------


def test_bulk_assign_reports_ids_it_did_not_change(app_conn, conn, world) -> None:
    ctx = nurse_of(world["a"])
    mine, theirs, absent = world["sa"][0], world["sb"][0], uuid.uuid4()
    outcome = students.bulk_assign_to_nurse(
        app_conn, ctx, [mine.id, theirs.id, str(absent), mine.id], world["nurse_user"]).unwrap()
    assert outcome == BulkOutcome(changed=(mine.id,), unchanged=(theirs.id, absent))
    assert not outcome.complete
    nurse_ids = dict(conn.execute("SELECT id, nurse_id FROM students WHERE id = ANY(%s)",
                                  ([mine.id, theirs.id],)).fetchall())
    assert nurse_ids == {mine.id: world["nurse_user"], theirs.id: theirs.nurse_id}
    records = trail(conn, ctx)
    assert [r[0] for r in records] == ["BULK_UPDATE", "ACCESS_DENIED"]
    assert records[0][3] == [mine.id]
    assert records[1] == denial("Student", "BULK_UPDATE", [theirs.id, absent])


def test_bulk_assign_outside_the_scope_changes_nothing_and_fails(app_conn, conn, world) -> None:
    ctx = nurse_of(world["a"])
    theirs = [s.id for s in world["sb"]]
    assert students.bulk_assign_to_nurse(app_conn, ctx, theirs, world["nurse_user"]) == Failure(
        NotFound("Student"))
    rows = conn.execute("SELECT nurse_id FROM students WHERE id = ANY(%s)", (theirs,)).fetchall()
    assert rows == [(s.nurse_id,) for s in world["sb"]]
    assert trail(conn, ctx) == [denial("Student", "BULK_UPDATE", theirs)]


def test_bulk_assign_of_absent_ids_fails_without_a_denial(app_conn, conn, world) -> None:
    ctx = nurse_of(world["a"])
    assert students.bulk_assign_to_nurse(app_conn, ctx, [uuid.uuid4()], world["nurse_user"]) == (
        Failure(NotFound("Student")))
    assert [r for r in trail(conn, ctx) if r[0] == "ACCESS_DENIED"] == []


def test_bulk_assign_complete_and_bad_input(app_conn, world) -> None:
    ctx = nurse_of(world["a"])
    ids = tuple(s.id for s in world["sa"])
    assert students.bulk_assign_to_nurse(app_conn, ctx, list(ids), world["nurse_user"]).unwrap(
        ) == BulkOutcome(changed=ids, unchanged=())
    for bad in ([], ["not-a-uuid"], "abc"):
        result = students.bulk_assign_to_nurse(app_conn, ctx, bad, world["nurse_user"])
        assert isinstance(result.failure(), InvalidQuery)
        assert "not-a-uuid" not in result.failure().message


def test_scoped_context_sees_other_schools_through_evolve_only(app_conn, world) -> None:
    """Widening the scope is a new context (the same rules apply); the denial is about the scope."""
    both = attrs.evolve(nurse_of(world["a"]), school_ids={world["a"]["school_id"],
                                                          world["b"]["school_id"]})
    assert students.find_by_id(app_conn, both, world["sb"][0].id).unwrap().id == world["sb"][0].id


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.tuples(st.sampled_from(["own", "other", "absent"]),
                                st.integers(min_value=0, max_value=1)), min_size=1, max_size=8))
def test_bulk_outcome_partitions_the_request(app_conn, conn, world, picks) -> None:
    """Whatever mix of own, other-school and absent ids (with repeats): changed = the own ids,
    unchanged = the rest, both in first-request order; a denial iff an other-school id was asked."""
    absent = [uuid.UUID(int=7), uuid.UUID(int=8)]
    pool = {"own": [s.id for s in world["sa"]], "other": [s.id for s in world["sb"]],
            "absent": absent}
    asked = list(dict.fromkeys(pool[kind][i] for kind, i in picks))
    ctx = nurse_of(world["a"])
    result = students.bulk_assign_to_nurse(app_conn, ctx, asked, world["nurse_user"])
    own = [i for i in asked if i in pool["own"]]
    rest = tuple(i for i in asked if i not in pool["own"])
    if own:
        assert result.unwrap() == BulkOutcome(changed=tuple(own), unchanged=rest)
    else:
        assert result == Failure(NotFound("Student"))
    denials = [r for r in trail(conn, ctx) if r[0] == "ACCESS_DENIED"]
    if any(i in pool["other"] for i in asked):
        assert denials == [denial("Student", "BULK_UPDATE", list(rest))]
    else:
        assert denials == []
    theirs = conn.execute("SELECT nurse_id FROM students WHERE id = ANY(%s)",
                          (pool["other"],)).fetchall()
    assert [s.nurse_id for s in world["sb"]] == [None, None]
    assert theirs == [(None,), (None,)]  # never reassigned
