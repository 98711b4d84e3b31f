"""Every column of every entity against values from the whole range of its Python type.

For each entity a valid row is built from the spec (parents first, as in ``test_domains_crud``),
then every writable column in turn receives a value drawn from the full range of its kind: huge
and boundary integers, NaN/Infinity, decimals of any precision and scale, timestamps in any UTC
offset from year 1 to 9999, dates of any year, text with NUL, lone surrogates and lengths around
the column's limit, JSON of any shape. For create, update, bulk_create and filters alike the
outcome is either

* success, and the value reads back equal to the input, or
* a typed failure naming the field (``ValidationFailed`` for writes, ``InvalidQuery`` for
  filters), with nothing written and no audit record claiming success.

A value the validation accepts is written inside a unit of work that is then rolled back, so the
rows of one example never collide on unique keys; a value it refuses is sent on the normal
autocommit path, where a half-written row would stay visible.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from returns.result import Failure, Result, Success

from tests.integration.test_domains_crud import ENTITIES, Builder, _same, value_strategy
from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.errors import DataError, InvalidQuery, ValidationFailed
from wxdata.schema.spec import INT_RANGES, Column, Entity, Kind, validator_reads
from wxdata.schema.validate import merged_view, validate_changes, validate_create
from wxdata.tx import RollbackScope, unit_of_work

#: Every code point, NUL and lone surrogates included.
ANY_CHAR = st.characters(exclude_categories=())
INT_EDGES = sorted({v + d for lo, hi in INT_RANGES.values() for v in (lo, hi) for d in (-1, 0, 1)})
DECIMAL_EDGES = [Decimal(s) for s in (
    "1.005", "0.125", "123456789012.5", "99999999.99", "100000000", "-99999999.99", "9.99",
    "10", "1E+2", "1.500", "-0", "0E-30", "NaN", "sNaN", "Infinity", "-Infinity", "1E+1000000",
)]
OFFSETS = st.builds(timezone, st.timedeltas(timedelta(hours=-23, minutes=-59),
                                            timedelta(hours=23, minutes=59)).map(
    lambda d: timedelta(seconds=int(d.total_seconds()))))
DATETIME_EDGES = [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    datetime(1, 1, 1, 12, tzinfo=UTC),
    datetime(1, 1, 2, tzinfo=UTC),
    datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
    datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(9999, 12, 31, tzinfo=UTC),
]


def _json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                       st.text(ANY_CHAR, max_size=8))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(ANY_CHAR, max_size=6), inner,
                                                      max_size=3)), max_leaves=6)


def _texts(column: Column) -> st.SearchStrategy[str]:
    anything = st.text(ANY_CHAR, max_size=12)
    limit = column.limits.max_chars
    if limit is None:
        return anything
    near = st.integers(max(0, limit - 2), limit + 2).flatmap(
        lambda n: st.text(st.characters(codec="utf-8", exclude_characters="\x00"),
                          min_size=n, max_size=n))
    return st.one_of(anything, near)


def wild_value(entity: Entity[Any], column: Column) -> st.SearchStrategy[Any]:
    """Values from the whole range of the column's Python type, valid ones included."""
    kind = column.kind
    if kind is Kind.TEXT:
        wild: st.SearchStrategy[Any] = _texts(column)
    elif kind is Kind.INT:
        wild = st.one_of(st.integers(), st.sampled_from(INT_EDGES), st.just(True))
    elif kind is Kind.FLOAT:
        wild = st.one_of(st.floats(), st.integers(), st.sampled_from([2**53 + 1, 2**1100]))
    elif kind is Kind.DECIMAL:
        wild = st.one_of(st.decimals(), st.sampled_from(DECIMAL_EDGES),
                         st.integers(-(10**12), 10**12), st.floats())
    elif kind is Kind.DATE:
        wild = st.one_of(st.dates(), st.datetimes())
    elif kind is Kind.DATETIME:
        wild = st.one_of(st.datetimes(timezones=OFFSETS), st.sampled_from(DATETIME_EDGES),
                         st.datetimes())
    elif kind is Kind.BOOL:
        wild = st.one_of(st.booleans(), st.integers(0, 1))
    elif kind is Kind.UUID:
        wild = st.one_of(st.uuids(), st.text(ANY_CHAR, max_size=4))
    elif kind is Kind.TEXT_ARRAY:
        wild = st.lists(_texts(column), max_size=3)
    elif kind is Kind.UUID_ARRAY:
        wild = st.lists(st.uuids(), max_size=3)
    else:
        wild = _json_values()
    return st.one_of(value_strategy(entity, column), wild)


def _partners(entity: Entity[Any], name: str) -> set[str]:
    """The column and every column a cross-field validator reads together with it."""
    out = {name}
    for validator in entity.validators:
        declared = validator_reads(validator)
        if declared is None:
            out.update(c.name for c in entity.columns)
        elif name in declared:
            out.update(declared)
    return out


def _names(error: DataError, name: str, entity: Entity[Any] | None = None) -> bool:
    """The failure names this column, or a cross-field rule over it names its partner."""
    if isinstance(error, ValidationFailed):
        fields = _partners(entity, name) if entity is not None else {name}
        return any(e.field.removeprefix("[0].") in fields or name in e.rule.split()
                   for e in error.errors)
    return isinstance(error, InvalidQuery) and error.field == name


def _succeeded(admin: psycopg.Connection[Any], request_id: str, action: str) -> int:
    row = admin.execute(
        "SELECT count(*) FROM audit_log WHERE request_id = %s AND action = %s AND success",
        (request_id, action)).fetchone()
    return int(row[0]) if row else -1


def _count(admin: psycopg.Connection[Any], entity: Entity[Any]) -> int:
    row = admin.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(entity.table))).fetchone()
    return int(row[0]) if row else -1


@pytest.fixture
def admin(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A second connection that checks what was committed (rows, audit records)."""
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def _fresh_ctx(ctx: ExecutionContext) -> ExecutionContext:
    return attrs.evolve(ctx, request_id=f"range-{uuid.uuid4().hex[:16]}")


class _Checker:
    """Runs one value through create, update, bulk_create and filters and checks the outcome."""

    def __init__(self, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any],
                 ctx: ExecutionContext, entity: Entity[Any]) -> None:
        self.conn, self.admin, self.ctx, self.entity = conn, admin, ctx, entity

    def _in_rollback(self, run: Any) -> Result[Any, DataError]:
        """Run a write inside a unit of work that is rolled back; return its result."""
        out: list[Result[Any, DataError]] = []
        with unit_of_work(self.conn, self.ctx):
            out.append(run())
            raise RollbackScope
        return out[0]

    def refused(self, result: Result[Any, DataError], name: str, before: int, ctx:
                ExecutionContext, action: str) -> None:
        entity = self.entity
        assert isinstance(result, Failure), f"{entity.table}.{name}: expected a refusal"
        error = result.failure()
        assert isinstance(error, ValidationFailed) and _names(error, name, entity), (
            f"{entity.table}.{name}: {error!r} does not name the field")
        assert _count(self.admin, entity) == before, f"{entity.table}.{name}: row written"
        assert _succeeded(self.admin, str(ctx.request_id), action) == 0, (
            f"{entity.table}.{name}: audit claims a successful {action}")

    def create(self, base: dict[str, Any], name: str, value: Any) -> None:
        entity, values = self.entity, {**base, name: value}
        ctx = _fresh_ctx(self.ctx)
        if isinstance(validate_create(entity, values), Success):
            result = self._in_rollback(lambda: crud.create(self.conn, ctx, entity, values))
            if isinstance(result, Success):
                stored = getattr(result.unwrap(), name)
                assert _same(value, stored), f"{entity.table}.{name}: create changed the value"
                return
        before = _count(self.admin, entity)
        self.refused(crud.create(self.conn, ctx, entity, values), name, before, ctx, "CREATE")

    def bulk_create(self, base: dict[str, Any], name: str, value: Any) -> None:
        entity, values = self.entity, {**base, name: value}
        ctx = _fresh_ctx(self.ctx)
        if isinstance(validate_create(entity, values), Success):
            result = self._in_rollback(lambda: self._bulk_read_back(ctx, values, name))
            if isinstance(result, Success):
                assert _same(value, result.unwrap()), f"{entity.table}.{name}: COPY changed it"
                return
        before = _count(self.admin, entity)
        result = crud.bulk_create(self.conn, ctx, entity, [values])
        assert isinstance(result, Failure), f"{entity.table}.{name}: expected a refusal"
        error = result.failure()
        assert isinstance(error, ValidationFailed) and _names(error, name, entity), (
            f"{entity.table}.{name}: {error!r} does not name the field")
        assert _count(self.admin, entity) == before, f"{entity.table}.{name}: row written"
        assert _succeeded(self.admin, str(ctx.request_id), "BULK_CREATE") == 0

    def _bulk_read_back(self, ctx: ExecutionContext, values: dict[str, Any],
                        name: str) -> Result[Any, DataError]:
        ids = crud.bulk_create(self.conn, ctx, self.entity, [values])
        return ids.bind(lambda ids: crud.find_by_id(self.conn, ctx, self.entity, ids[0])).map(
            lambda row: getattr(row, name))

    def update(self, row: Any, name: str, value: Any) -> None:
        entity, ctx = self.entity, _fresh_ctx(self.ctx)
        changes = {name: value}
        checked = validate_changes(entity, changes)
        valid = isinstance(checked, Success) and not [
            e for v in entity.validators for e in v(merged_view(row, checked.unwrap()))]
        if valid:
            result = self._in_rollback(lambda: crud.update(self.conn, ctx, entity, row.id, changes))
            if isinstance(result, Success):
                assert _same(value, getattr(result.unwrap(), name)), (
                    f"{entity.table}.{name}: update changed the value")
                return
        before = _count(self.admin, entity)
        self.refused(crud.update(self.conn, ctx, entity, row.id, changes), name, before, ctx,
                     "UPDATE")
        again = crud.find_by_id(self.conn, self.ctx, entity, row.id)
        assert again == Success(row), f"{entity.table}.{name}: refused update changed the row"

    def filter(self, name: str, value: Any) -> None:
        entity = self.entity
        for where in ({name: value}, {name: {"in": [value]}}, {name: {"gte": value}}):
            result = crud.count(self.conn, self.ctx, entity, where)
            assert isinstance(result, Success) or _names(result.failure(), name), (
                f"{entity.table}.{name}: filter failed with {result!r}")


@settings(max_examples=2, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
@given(data=st.data())
def test_every_column_holds_its_whole_range_or_refuses_naming_it(
    conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], sys_ctx: ExecutionContext,
    entity: Entity[Any], data: st.DataObject,
) -> None:
    builder = Builder(conn, sys_ctx, data.draw)
    row = builder.create(entity, builder.values(entity))  # the row updates are tried on
    base = builder.values(entity)  # never inserted as is: new rows never collide with ``row``
    check = _Checker(conn, admin, sys_ctx, entity)
    columns = [c for c in entity.columns if c.writable and c.rules.references is None]
    for column in columns:
        value = data.draw(wild_value(entity, column), label=column.name)
        check.create(base, column.name, value)
        check.update(row, column.name, value)
        if column.filterable:
            check.filter(column.name, value)
    column = data.draw(st.sampled_from(columns), label="bulk column")
    check.bulk_create(base, column.name, data.draw(wild_value(entity, column), label="bulk value"))

