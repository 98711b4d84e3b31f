"""Values that used to be half-written, silently rounded or raised: each is now a typed Failure
naming the field, with nothing written and no audit record claiming success.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from returns.result import Failure, Success

from tests.integration.test_domains_crud import Builder
from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.domains import students
from wxdata.errors import FieldError, InvalidQuery, ValidationFailed, from_db_error
from wxdata.schema.spec import Entity, lookup

EAST5 = timezone(timedelta(hours=5))
WEST5 = timezone(timedelta(hours=-5))
YEAR_ZERO = datetime(1, 1, 1, tzinfo=EAST5)  # 0000-12-31 19:00 UTC: year 0 does not load
YEAR_10000 = datetime(9999, 12, 31, 23, tzinfo=WEST5)  # 10000-01-01 04:00 UTC
SURROGATE = "x\ud800"
ONCE = settings(max_examples=1, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _entity(table: str) -> Entity[Any]:
    found = lookup(table)
    assert found is not None
    return found


VITALS = _entity("vital_signs")


@pytest.fixture
def admin(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A second connection that sees what was committed."""
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def _rows(admin: psycopg.Connection[Any], table: str, column: str, value: Any) -> int:
    query = sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
        sql.Identifier(table), sql.Identifier(column))
    row = admin.execute(query, (value,)).fetchone()
    return int(row[0]) if row else -1


def _successes(admin: psycopg.Connection[Any], ctx: ExecutionContext) -> int:
    row = admin.execute("SELECT count(*) FROM audit_log WHERE request_id = %s AND success",
                        (ctx.request_id,)).fetchone()
    return int(row[0]) if row else -1


def _names(result: Any, field: str) -> bool:
    if not isinstance(result, Failure):
        return False
    error = result.failure()
    if isinstance(error, InvalidQuery):
        return error.field == field
    return isinstance(error, ValidationFailed) and any(
        e.field in (field, f"[0].{field}") for e in error.errors)


@pytest.fixture
def nurse(ctx: ExecutionContext, school: dict[str, uuid.UUID]) -> ExecutionContext:
    """A nurse of the test school, with a request id of its own."""
    return attrs.evolve(ctx, school_ids={school["school_id"]},
                        request_id=f"reg-{uuid.uuid4().hex[:12]}")


@pytest.mark.parametrize("when", [YEAR_ZERO, YEAR_10000], ids=["year-0", "year-10000"])
def test_timestamp_outside_python_years_is_refused_and_nothing_is_written(
    conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], sys_ctx: ExecutionContext,
    nurse: ExecutionContext, make_student: Callable[..., Any], when: datetime,
) -> None:
    student = make_student()
    values = {"student_id": student.id, "measurement_date": when, "heart_rate": 80}
    created = crud.create(conn, nurse, VITALS, values)
    assert _names(created, "measurement_date"), created
    assert _rows(admin, "vital_signs", "student_id", student.id) == 0
    assert _successes(admin, nurse) == 0
    bulk = crud.bulk_create(conn, nurse, VITALS, [values])
    assert _names(bulk, "measurement_date"), bulk
    assert _rows(admin, "vital_signs", "student_id", student.id) == 0

    fine = crud.create(conn, sys_ctx, VITALS, {**values, "measurement_date": datetime.now(UTC)})
    assert isinstance(fine, Success)
    moved = crud.update(conn, nurse, VITALS, fine.unwrap().id, {"measurement_date": when})
    assert _names(moved, "measurement_date"), moved
    listed = crud.find_many(conn, nurse, VITALS, {"student_id": student.id})
    assert isinstance(listed, Success) and [r.id for r in listed.unwrap().data] == [fine.unwrap().id]
    assert _names(crud.find_many(conn, nurse, VITALS, {"measurement_date": {"lt": when}}),
                  "measurement_date")


def test_timestamp_edges_that_load_are_accepted_and_round_trip(
    conn: psycopg.Connection[Any], sys_ctx: ExecutionContext, make_student: Callable[..., Any],
) -> None:
    student = make_student()
    for when in (datetime(1, 1, 2, tzinfo=UTC), datetime(1, 1, 2, 5, tzinfo=EAST5),
                 datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)):
        row = crud.create(conn, sys_ctx, VITALS, {"student_id": student.id,
                                                  "measurement_date": when}).unwrap()
        assert row.measurement_date == when
        assert crud.find_by_id(conn, sys_ctx, VITALS, row.id) == Success(row)


@pytest.mark.parametrize(("table", "column", "value", "rule"), [
    ("medication_logs", "dosage", Decimal("1.005"), "must have at most 2 decimal places"),
    ("medication_logs", "dosage", Decimal("0.125"), "must have at most 2 decimal places"),
    ("medication_logs", "dosage", Decimal("123456789012.5"),
     "must have at most 8 digits before the decimal point"),
    ("medication_logs", "dosage", Decimal("99999999.995"), "must have at most 2 decimal places"),
    ("documents", "file_size", 2**63,
     "must be an integer from -9223372036854775808 to 9223372036854775807"),
    ("vital_signs", "heart_rate", 2**31, "must be an integer from -2147483648 to 2147483647"),
    ("vital_signs", "measured_by", SURROGATE, "must be valid Unicode (no lone surrogates)"),
    ("vital_signs", "measured_by", "x" * 256, "must be at most 255 characters"),
    ("vital_signs", "notes", "a\x00b", "must not contain NUL bytes"),
    ("vital_signs", "temperature", float("nan"), "must be finite"),
    ("vital_signs", "abnormal_flags", ["ok", SURROGATE], "must be valid Unicode (no lone surrogates)"),
], ids=["1.005", "0.125", "12-digits-and-a-half", "8-digits-3-places", "bigint+1", "int+1", "surrogate",
        "varchar+1", "nul", "nan", "surrogate-in-array"])
@ONCE
@given(data=st.data())
def test_out_of_range_value_is_refused_naming_the_field(
    conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], sys_ctx: ExecutionContext,
    table: str, column: str, value: Any, rule: str, data: st.DataObject,
) -> None:
    entity = _entity(table)
    builder = Builder(conn, sys_ctx, data.draw)
    values = builder.values(entity)
    ctx = attrs.evolve(sys_ctx, request_id=f"reg-{uuid.uuid4().hex[:12]}")
    created = crud.create(conn, ctx, entity, {**values, column: value})
    assert created == Failure(ValidationFailed(entity.name, (FieldError(column, rule),)))
    assert _successes(admin, ctx) == 0
    row = builder.create(entity, values)
    updated = crud.update(conn, ctx, entity, row.id, {column: value})
    assert updated == Failure(ValidationFailed(entity.name, (FieldError(column, rule),)))
    assert crud.find_by_id(conn, sys_ctx, entity, row.id) == Success(row)
    bulk = crud.bulk_create(conn, ctx, entity, [{**values, column: value}])
    assert bulk == Failure(ValidationFailed(entity.name, (FieldError(f"[0].{column}", rule),)))
    assert _successes(admin, ctx) == 0


def test_lone_surrogate_in_reads_is_a_typed_failure(
    conn: psycopg.Connection[Any], nurse: ExecutionContext,
) -> None:
    searched = students.search(conn, nurse, SURROGATE)
    assert isinstance(searched, Failure) and isinstance(searched.failure(), InvalidQuery)
    assert searched.failure().field == "first_name"
    assert _names(students.find_many(conn, nurse, {"last_name": SURROGATE}), "last_name")
    assert _names(students.find_many(conn, nurse, {"last_name": {"in": ["a", SURROGATE]}}),
                  "last_name")


def test_numeric_filter_value_with_too_many_places_is_refused(
    conn: psycopg.Connection[Any], nurse: ExecutionContext,
) -> None:
    logs = _entity("medication_logs")
    assert _names(crud.count(conn, nurse, logs, {"dosage": Decimal("1.005")}), "dosage")
    assert _names(crud.count(conn, nurse, _entity("documents"), {"file_size": 2**63}),
                  "file_size")
    assert isinstance(crud.count(conn, nurse, logs, {"dosage": Decimal("1.50")}), Success)


def test_database_data_error_names_the_column_not_the_value(
    admin: psycopg.Connection[Any],
) -> None:
    secret = "Q" * 60  # too long for schools.code varchar(50)
    with pytest.raises(psycopg.Error) as raised, admin.transaction(), admin.cursor() as cur, \
            cur.copy("COPY schools (name, code) FROM STDIN") as copy:
        copy.write_row(("A school", secret))
    error = from_db_error(raised.value, "School")
    assert error == ValidationFailed("School", (FieldError("code", "is too long for its column "
                                                                    "(22001)"),))
    assert secret not in repr(error.to_dict())
