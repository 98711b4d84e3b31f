"""Bulk create: the precompiled create checks, the binary COPY round trip and all-or-nothing.

* The create check derived once per entity (``create_checker``) passes exactly the rows
  ``validate_create`` passes, with the same clean values (property over every entity and values
  from the whole range of each column's type).
* Rows of entities with every column type the schema uses (dates, timestamps, choices, arrays,
  jsonb, numerics, floats, integers, booleans, nullable and omitted columns) read back as they
  were written, through the staged load of the application role and the direct load of a role
  that bypasses row security, on both shells.
* A bad row anywhere in a batch writes nothing and leaves no successful record; the failure
  names the row index, the field and the rule, never the value.
* The BULK_CREATE record lists every id and subject in input order and commits with the rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from psycopg import sql
from returns.result import Failure, Success

from tests.conftest import student_values
from tests.integration.test_domains_crud import ENTITIES, Builder, _same
from tests.integration.test_value_ranges import wild_value
from wxdata import aio, crud
from wxdata.context import ExecutionContext
from wxdata.core.bulk import _copy_type, _Load
from wxdata.errors import Conflict, ValidationFailed
from wxdata.schema import STUDENTS
from wxdata.schema.spec import Entity, lookup
from wxdata.schema.validate import _validate as field_by_field
from wxdata.schema.validate import (
    changes_checker,
    create_checker,
    validate_changes,
    validate_create,
)
from wxdata.tx import RollbackScope, unit_of_work

_SLOW = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much,
         HealthCheck.data_too_large]

#: Entities whose columns, together, cover every column type the schema declares.
ROUND_TRIP = ["alert_rules", "vital_signs", "health_metric_snapshots", "allergies", "students"]


# --- the precompiled checks agree with validate_create and validate_changes --------------------


def _drawn_values(entity: Entity[Any], data: st.DataObject) -> dict[Any, Any]:
    """Any writable columns of ``entity`` with wild values (None included), now and then with a
    key that is not a writable column."""
    writable = [c for c in (*entity.columns, *entity.secrets) if c.writable]
    chosen = data.draw(st.lists(st.sampled_from(writable), unique_by=lambda c: c.name,
                                max_size=len(writable)) if writable else st.just([]))
    values: dict[Any, Any] = {
        c.name: data.draw(st.one_of(st.none(), wild_value(entity, c)), label=c.name)
        for c in chosen
    }
    if data.draw(st.integers(0, 9), label="extra key") == 0:
        values[data.draw(st.sampled_from(["nope", "id", "created_at", "version", 7]))] = 1
    return values


#: (name, precompiled check, the public function, whether it validates a new row)
_CHECKS = [("create", create_checker, validate_create, True),
           ("changes", changes_checker, validate_changes, False)]


@settings(max_examples=25, deadline=None, suppress_health_check=_SLOW)
@pytest.mark.parametrize("way", _CHECKS, ids=lambda w: w[0])
@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
@given(data=st.data())
def test_a_precompiled_check_passes_exactly_what_validation_passes(
    entity: Entity[Any], way: tuple[str, Any, Any, bool], data: st.DataObject
) -> None:
    _, checker, validate, creating = way
    values = _drawn_values(entity, data)
    assume(creating or values)  # empty changes are refused before any check
    expected = field_by_field(entity, values, creating=creating)  # the general path
    got = checker(entity)(values)
    # it refuses what the field-by-field path refuses; what it passes is that path's clean values
    # (a value it would have to coerce it leaves to that path)
    if isinstance(expected, Failure):
        assert got is None
    else:
        assert got is None or got == expected.unwrap()
    assert validate(entity, values) == expected  # whichever path answers, the same answer


@settings(max_examples=60, deadline=None)
@given(row=st.fixed_dictionaries({
    "student_number": st.text(max_size=60),
    "first_name": st.text(max_size=3),
    "last_name": st.sampled_from(["Lovelace", "x" * 100, "x" * 101]),
    "date_of_birth": st.dates(date(2000, 1, 1), date.today() + timedelta(days=3)),
    "grade": st.sampled_from(["5", "K", "13", 5]),
    "gender": st.sampled_from(["FEMALE", "MALE", "female", None]),
    "enrollment_date": st.one_of(st.dates(), st.just("2020-09-01")),
    "school_id": st.one_of(st.uuids(), st.just(str(uuid.uuid4()))),
    "district_id": st.uuids(),
}))
def test_valid_students_pass_the_create_check_unchanged(row: dict[str, Any]) -> None:
    expected = validate_create(STUDENTS, row)
    got = create_checker(STUDENTS)(row)
    if isinstance(expected, Success):
        clean = expected.unwrap()
        exact = all(type(row[k]) is type(clean[k]) for k in row)  # nothing coerced
        assert got == clean if exact else got in (None, clean)
    else:
        assert got is None


_VALID_STUDENT = {
    "student_number": "S-1", "first_name": "Ada", "last_name": "Lovelace",
    "date_of_birth": date(2014, 5, 17), "grade": "5", "gender": "FEMALE",
    "enrollment_date": date(2020, 9, 1), "school_id": uuid.UUID(int=1),
    "district_id": uuid.UUID(int=2),
}


@pytest.mark.parametrize(("field", "value"), [
    ("student_number", "S\ud800-1"),  # a lone surrogate: not UTF-8, PostgreSQL cannot store it
    ("student_number", "S\x00-1"),  # a NUL
    ("student_number", "x" * 51),  # one character over the column's 50
    ("student_number", "x" * 50),
    ("student_number", "Sé-1"),  # non-ASCII text, stored as it is
    ("medical_record_num", "AB-1234"),  # a declared pattern
    ("medical_record_num", "ab-1234"),
    ("gender", "OTHER"),  # a declared choice
    ("gender", "other"),
    ("enrollment_date", date.today() + timedelta(days=1)),  # not in the future
    ("enrollment_date", date.today()),
    ("is_active", 1),  # an int is not a boolean
    ("nurse_id", None),  # nullable
    ("school_id", str(uuid.UUID(int=3))),  # coerced by the field-by-field path
], ids=repr)
def test_the_create_check_answers_each_rule_as_validation_does(field: str, value: Any) -> None:
    row = {**_VALID_STUDENT, field: value}
    expected = field_by_field(STUDENTS, row, creating=True)  # the general path
    got = create_checker(STUDENTS)(row)
    if isinstance(expected, Failure):
        assert got is None
    elif type(expected.unwrap()[field]) is type(value):  # nothing coerced: passed as it is
        assert got == expected.unwrap()
    else:  # coerced: by the column's check_value, or left to the field-by-field path
        assert got in (None, expected.unwrap())


# --- round trip through the binary COPY -------------------------------------------------------


def _read_back(conn: psycopg.Connection[Any], entity: Entity[Any], ids: tuple[uuid.UUID, ...]
               ) -> list[dict[str, Any]]:
    query = sql.SQL("SELECT * FROM {} WHERE id = ANY(%s) ORDER BY array_position(%s, id)").format(
        sql.Identifier(entity.table))
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query, (list(ids), list(ids))).fetchall()


def _assert_stored(entity: Entity[Any], rows: list[dict[str, Any]],
                   stored: list[dict[str, Any]]) -> None:
    assert len(stored) == len(rows)
    for index, (values, back) in enumerate(zip(rows, stored, strict=True)):
        clean = validate_create(entity, values).unwrap()
        for name, value in clean.items():
            assert _same(value, back[name]), f"{entity.table}[{index}].{name} changed"
        named = set(clean)
        for column in entity.columns:  # a column the row leaves out takes its default, not NULL
            if column.writable and column.name not in named and column.rules.has_default:
                assert back[column.name] is not None, f"{entity.table}.{column.name}"


@settings(max_examples=6, deadline=None, suppress_health_check=_SLOW)
@pytest.mark.parametrize("table", ROUND_TRIP)
@pytest.mark.parametrize("role", ["application", "owner"])
@given(data=st.data())
def test_rows_of_every_column_type_read_back_as_written(
    conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any],
    sys_ctx: ExecutionContext, table: str, role: str, data: st.DataObject,
) -> None:
    entity = lookup(table)
    assert entity is not None
    builder = Builder(conn, sys_ctx, data.draw)
    rows = [builder.values(entity) for _ in range(data.draw(st.integers(1, 6), label="rows"))]
    target = conn if role == "application" else admin_conn
    with unit_of_work(target, sys_ctx):
        result = crud.bulk_create(target, sys_ctx, entity, rows)
        if isinstance(result, Failure):
            assume(not isinstance(result.failure(), Conflict))  # drawn unique values collided
        assert isinstance(result, Success), result
        ids = result.unwrap()
        assert len(ids) == len(rows) == len(set(ids))
        _assert_stored(entity, rows, _read_back(target, entity, ids))
        raise RollbackScope


def test_the_async_shell_loads_the_same_rows(
    db_url: str, conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any],
    ctx: ExecutionContext, school: dict[str, Any],
) -> None:
    rows = [student_values(school) for _ in range(40)]
    rows[3] = {**rows[3], "medical_record_num": None}

    async def main() -> Any:
        async with await aio.connect(db_url) as aconn:
            return await aio.crud.bulk_create(aconn, ctx, STUDENTS, rows)

    ids = asyncio.run(main()).unwrap()
    _assert_stored(STUDENTS, rows, _read_back(admin_conn, STUDENTS, ids))
    _assert_record(conn, ctx, ids, ids)


# --- all or nothing ---------------------------------------------------------------------------


def _count_numbers(admin: psycopg.Connection[Any], numbers: list[str]) -> int:
    """How many of these students exist, on a connection row security does not filter (the
    application role, outside a unit of work, sees no student at all)."""
    row = admin.execute("SELECT count(*) FROM students WHERE student_number = ANY(%s)",
                        (numbers,)).fetchone()
    return int(row[0]) if row else -1


def _successes(conn: psycopg.Connection[Any], ctx: ExecutionContext) -> int:
    row = conn.execute("SELECT count(*) FROM audit_log WHERE request_id = %s AND success "
                       "AND action = 'BULK_CREATE'", (ctx.request_id,)).fetchone()
    return int(row[0]) if row else -1


#: A change that breaks one rule, the field it names and the rule (the value is never named).
BREAKS: list[tuple[Mapping[str, Any], str, str]] = [
    ({"grade": None}, "grade", "must not be null"),
    ({"gender": "SECRET-VALUE"}, "gender", "must be one of"),
    ({"first_name": "N" * 101}, "first_name", "must be at most 100 characters"),
    ({"date_of_birth": date.today() + timedelta(days=2)}, "date_of_birth",
     "must not be in the future"),
    ({"enrollment_date": "not-a-date"}, "enrollment_date", "must be an ISO-8601 date"),
    ({"nickname": "x"}, "nickname", "is not a column of"),
    ({"school_id": "SECRET-VALUE"}, "school_id", "must be a UUID"),
]


@settings(max_examples=20, deadline=None, suppress_health_check=_SLOW)
@given(size=st.integers(1, 40), data=st.data())
def test_a_bad_row_anywhere_writes_nothing(
    conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any], ctx: ExecutionContext,
    school: dict[str, Any], size: int, data: st.DataObject,
) -> None:
    ctx = attrs.evolve(ctx, request_id=f"bulk-{uuid.uuid4().hex[:12]}")
    rows = [student_values(school) for _ in range(size)]
    index = data.draw(st.integers(0, size - 1), label="bad row")
    change, field, rule = data.draw(st.sampled_from(BREAKS), label="break")
    rows[index] = {**rows[index], **change}
    error = crud.bulk_create(conn, ctx, STUDENTS, rows).failure()
    assert isinstance(error, ValidationFailed)
    assert any(e.field == f"[{index}].{field}" and e.rule.startswith(rule) for e in error.errors)
    assert "SECRET-VALUE" not in repr(error)
    assert _count_numbers(admin_conn, [r["student_number"] for r in rows]) == 0
    assert _successes(conn, ctx) == 0


def test_row_9999_of_10000_bad_writes_nothing(conn, admin_conn, ctx, school) -> None:
    rows = [student_values(school) for _ in range(10_000)]
    rows[9_999] = {**rows[9_999], "gender": "SECRET-VALUE"}
    error = crud.bulk_create(conn, ctx, STUDENTS, rows).failure()
    assert isinstance(error, ValidationFailed)
    assert [(e.field, e.rule.split(":")[0]) for e in error.errors] == [
        ("[9999].gender", "must be one of")]
    assert _count_numbers(admin_conn, [r["student_number"] for r in rows]) == 0


def test_a_bad_row_inside_a_unit_of_work_leaves_the_unit_going(conn, admin_conn, ctx, school) -> None:
    """The load's level is a savepoint: abandoning its COPY rolls back the load only."""
    rows = [student_values(school) for _ in range(3_000)]
    rows[2_900] = {**rows[2_900], "gender": "SECRET-VALUE"}
    before, after = student_values(school), student_values(school)
    with unit_of_work(conn, ctx):
        crud.create(conn, ctx, STUDENTS, before).unwrap()
        error = crud.bulk_create(conn, ctx, STUDENTS, rows).failure()
        assert [e.field for e in error.errors] == ["[2900].gender"]
        crud.create(conn, ctx, STUDENTS, after).unwrap()
    assert _count_numbers(admin_conn, [before["student_number"], after["student_number"]]) == 2
    assert _count_numbers(admin_conn, [r["student_number"] for r in rows]) == 0
    assert _successes(conn, ctx) == 0


def test_the_async_shell_abandons_a_load_at_a_late_bad_row(
    db_url: str, admin_conn: psycopg.Connection[Any], conn: psycopg.Connection[Any],
    ctx: ExecutionContext, school: dict[str, Any],
) -> None:
    rows = [student_values(school) for _ in range(3_000)]
    rows[2_500] = {**rows[2_500], "first_name": "N" * 101}

    async def main() -> Any:
        async with await aio.connect(db_url) as aconn:
            return await aio.crud.bulk_create(aconn, ctx, STUDENTS, rows)

    error = asyncio.run(main()).failure()
    assert isinstance(error, ValidationFailed)
    assert [e.field for e in error.errors] == ["[2500].first_name"]
    assert _count_numbers(admin_conn, [r["student_number"] for r in rows]) == 0
    assert _successes(conn, ctx) == 0


def test_rows_are_stored_as_they_are_checked_and_none_is_left_by_a_late_bad_row(
    admin_conn: psycopg.Connection[Any], sys_ctx: ExecutionContext, school: dict[str, Any],
) -> None:
    """The server stores the first rows while the client checks the next ones; a bad row at the
    end abandons them all. A trigger counts, in a sequence (which no rollback undoes), the rows
    the server took before the bad one was found."""
    tag = uuid.uuid4().hex[:8]
    seq, fn, trigger = f"bulk_seen_{tag}", f"bulk_seen_fn_{tag}", f"bulk_seen_trg_{tag}"
    admin_conn.execute(f"CREATE SEQUENCE {seq}")
    admin_conn.execute(
        f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$BEGIN PERFORM nextval('{seq}'); RETURN NEW; END$$")
    admin_conn.execute(f"CREATE TRIGGER {trigger} BEFORE INSERT ON students "
                       f"FOR EACH ROW EXECUTE FUNCTION {fn}()")
    try:
        rows = [student_values(school) for _ in range(10_000)]
        rows[-1] = {**rows[-1], "gender": "SECRET-VALUE"}
        error = crud.bulk_create(admin_conn, sys_ctx, STUDENTS, rows).failure()
        assert [e.field for e in error.errors] == ["[9999].gender"]
        seen = admin_conn.execute(
            f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {seq}").fetchone()
        assert seen is not None and 0 < seen[0] < 10_000
        assert _count_numbers(admin_conn, [r["student_number"] for r in rows]) == 0
    finally:
        admin_conn.execute(f"DROP TRIGGER {trigger} ON students")
        admin_conn.execute(f"DROP FUNCTION {fn}()")
        admin_conn.execute(f"DROP SEQUENCE {seq}")


def test_a_row_outside_the_scope_writes_nothing(conn, admin_conn, ctx, school) -> None:
    other = conn.execute("SELECT id, district_id FROM schools WHERE id <> %s LIMIT 1",
                         (school["school_id"],)).fetchone()
    if other is None:
        tag = uuid.uuid4().hex[:8]
        district = conn.execute("INSERT INTO districts (name, code) VALUES (%s, %s) RETURNING id",
                                (f"D {tag}", f"D-{tag}")).fetchone()
        other = conn.execute("INSERT INTO schools (name, code, district_id) VALUES (%s, %s, %s) "
                             "RETURNING id, district_id", (f"S {tag}", f"S-{tag}", district[0])
                             ).fetchone()
    rows = [student_values(school) for _ in range(20)]
    rows[11] = {**rows[11], "school_id": other[0], "district_id": other[1]}
    result = crud.bulk_create(conn, ctx, STUDENTS, rows)
    assert isinstance(result, Failure)
    assert _count_numbers(admin_conn, [r["student_number"] for r in rows]) == 0
    assert _successes(conn, ctx) == 0


def test_a_conflict_writes_nothing_and_the_record_rolls_back_with_the_rows(
        conn, admin_conn, ctx, school) -> None:
    rows = [student_values(school) for _ in range(30)]
    rows.append(dict(rows[4]))  # the same student number twice
    assert isinstance(crud.bulk_create(conn, ctx, STUDENTS, rows).failure(), Conflict)
    assert _count_numbers(admin_conn, [r["student_number"] for r in rows]) == 0
    assert _successes(conn, ctx) == 0
    good = [student_values(school) for _ in range(5)]
    with unit_of_work(conn, ctx):
        assert len(crud.bulk_create(conn, ctx, STUDENTS, good).unwrap()) == 5
        raise RollbackScope
    assert _count_numbers(admin_conn, [r["student_number"] for r in good]) == 0
    assert _successes(conn, ctx) == 0


# --- the record -------------------------------------------------------------------------------


def _assert_record(conn: psycopg.Connection[Any], ctx: ExecutionContext,
                   ids: tuple[uuid.UUID, ...], subjects: tuple[uuid.UUID, ...]) -> None:
    records = conn.execute(
        "SELECT entity_ids, subject_ids, entity_id, subject_student_id, metadata->>'count' "
        "FROM audit_log WHERE request_id = %s AND action = 'BULK_CREATE' AND success",
        (ctx.request_id,)).fetchall()
    assert len(records) == 1
    entity_ids, subject_ids, entity_id, subject, count = records[0]
    assert entity_ids == list(ids) and subject_ids == list(subjects)
    assert count == str(len(ids))
    assert entity_id == (ids[0] if len(ids) == 1 else None)
    assert subject == (subjects[0] if len(subjects) == 1 else None)


@settings(max_examples=8, deadline=None, suppress_health_check=_SLOW)
@given(size=st.integers(1, 30))
def test_one_record_lists_every_id_and_subject_in_input_order(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, Any], size: int,
) -> None:
    ctx = attrs.evolve(ctx, request_id=f"bulk-{uuid.uuid4().hex[:12]}")
    ids = crud.bulk_create(conn, ctx, STUDENTS, [student_values(school) for _ in range(size)])
    _assert_record(conn, ctx, ids.unwrap(), ids.unwrap())


def test_the_record_of_a_child_entity_lists_its_distinct_subjects(
    conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any], ctx: ExecutionContext,
    make_student: Any,
) -> None:
    entity = lookup("health_records")
    assert entity is not None
    a, b = make_student(), make_student()
    order = [a.id, b.id, a.id, a.id, b.id]
    rows = [{"student_id": s, "record_type": "VITAL_SIGNS_CHECK", "title": "BP",
             "description": "measured", "record_date": date(2024, 3, 1), "metadata": {"n": i}}
            for i, s in enumerate(order)]
    ids = crud.bulk_create(conn, ctx, entity, rows).unwrap()
    _assert_record(conn, ctx, ids, (a.id, b.id))
    stored = _read_back(admin_conn, entity, ids)
    assert [r["metadata"] for r in stored] == [{"n": i} for i in range(5)]


# --- COPY format ------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
def test_every_column_of_every_entity_loads_in_binary(entity: Entity[Any]) -> None:
    for column in (*entity.columns, *entity.secrets):
        assert _copy_type(column) is not None, f"{entity.table}.{column.name}: {column.sql_type}"


def test_a_column_of_another_type_or_kind_loads_as_text() -> None:
    column = STUDENTS.by_name["first_name"]
    assert _copy_type(column) == "varchar"
    assert _copy_type(attrs.evolve(column, sql_type="inet")) is None
    assert _copy_type(attrs.evolve(column, sql_type="integer")) is None  # text held as integer
    load = _Load(columns=("id", "metadata", "title"), values=("metadata", "title"), managed=(),
                 types=("uuid", "", "text"), binary=False, json_at=(0,))
    key = uuid.uuid4()
    flat = [key, {"a": [1, None]}, "t", key, None, "u"]
    assert list(load.text(load.rows(flat))) == [(key, '{"a": [1, null]}', "t"), (key, None, "u")]
