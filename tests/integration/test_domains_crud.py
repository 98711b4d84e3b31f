"""Every registered entity through the generic CRUD functions against the migrated database.

Rows are generated from the entity spec alone (kind, nullability, length, choices, pattern,
range, references): parents named by ``references`` are created first, recursively. Each example
creates a row, reads it back column for column, updates one writable column under optimistic
concurrency, then deletes it (soft-deleting entities: invisible after, visible again on restore).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

import wxdata.domains  # noqa: F401 - registers every entity
from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.errors import FieldError, NotFound
from wxdata.schema.spec import Column, Entity, Kind, lookup, registered
from wxdata.schema.validate import validate_create

ENTITIES = sorted(registered(), key=lambda e: e.table)
ALPHABET = st.characters(codec="utf-8", exclude_characters="\x00")
TODAY = date.today()
NOW = datetime.now(UTC).replace(tzinfo=None)


def _fresh(make: Callable[[str], str]) -> st.SearchStrategy[str]:
    """Unique by construction (a random UUID per draw), so replays never hit a unique index."""
    return st.builds(lambda: make(uuid.uuid4().hex))


def _digits(hex_: str) -> str:
    return str(int(hex_, 16)).zfill(12)


#: Columns whose valid values the spec alone cannot produce: a student's age must fit the age
#: validator, and unique columns with a format need values unique across the run.
OVERRIDES: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("students", "date_of_birth"): st.dates(TODAY - timedelta(days=365 * 21),
                                            TODAY - timedelta(days=365 * 4)),
    ("students", "medical_record_num"): _fresh(lambda h: f"{h[:4].upper()}-{h[4:12].upper()}"),
    ("users", "email"): _fresh(lambda h: f"u{h}@example.org"),
    ("vendors", "email"): _fresh(lambda h: f"v{h}@example.org"),
    ("medications", "ndc"): _fresh(lambda h: f"{_digits(h)[:5]}-{_digits(h)[5:9]}-{_digits(h)[9:11]}"),
}
_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")
_JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31 - 1),
                         st.text(ALPHABET, max_size=10))


def _json(annotation_origin: Any) -> st.SearchStrategy[Any]:
    objects = st.dictionaries(st.text(ALPHABET, min_size=1, max_size=8), _JSON_SCALAR, max_size=3)
    arrays = st.lists(_JSON_SCALAR, max_size=3)
    if annotation_origin is dict:
        return objects
    if annotation_origin is list:
        return arrays
    return st.one_of(objects, arrays, st.booleans(), st.integers(-1000, 1000),
                     st.text(ALPHABET, max_size=10))


def _json_origin(entity: Entity[Any], name: str) -> Any:
    for f in attrs.fields(entity.row_type):
        if f.name == name:
            args = [a for a in getattr(f.type, "__args__", ()) if a is not type(None)]
            base = f.type if getattr(f.type, "__origin__", None) in (list, dict) or not args \
                else args[0]
            return getattr(base, "__origin__", base)
    return None


def _decimal(column: Column) -> st.SearchStrategy[Decimal]:
    match = _NUMERIC.match(column.sql_type)
    precision, scale = (int(match.group(1)), int(match.group(2))) if match else (12, 4)
    limit = Decimal(10) ** (precision - scale) - Decimal(10) ** -scale
    low = max(Decimal(str(column.rules.minimum)), -limit) if column.rules.minimum is not None \
        else -limit
    high = min(Decimal(str(column.rules.maximum)), limit) if column.rules.maximum is not None \
        else limit
    return st.decimals(low, high, places=scale, allow_nan=False, allow_infinity=False)


def _text(column: Column) -> st.SearchStrategy[str]:
    rules = column.rules
    limit = rules.max_length or 10_000
    if rules.choices is not None:
        return st.sampled_from(rules.choices)
    if rules.unique or column.secret_field:
        assert rules.pattern is None, f"{column.name}: unique formatted column needs an OVERRIDE"
        return _fresh(lambda h: h[: min(limit, 32)])
    if rules.pattern is not None:
        return st.from_regex(rules.pattern, fullmatch=True, alphabet=ALPHABET).filter(
            lambda v: len(v) <= limit)
    return st.text(ALPHABET, max_size=min(limit, 24))


def value_strategy(entity: Entity[Any], column: Column) -> st.SearchStrategy[Any]:
    """Valid non-null values of one column, from its spec alone."""
    override = OVERRIDES.get((entity.table, column.name))
    if override is not None:
        return override
    rules, kind = column.rules, column.kind
    low = rules.minimum if rules.minimum is not None else None
    high = rules.maximum if rules.maximum is not None else None
    if kind is Kind.TEXT:
        base = _text(column)
    elif kind is Kind.BOOL:
        base = st.booleans()
    elif kind is Kind.INT:
        base = st.integers(int(low) if low is not None else -1000,
                           int(high) if high is not None else 1_000_000)
    elif kind is Kind.FLOAT:
        base = st.floats(low if low is not None else -1e6, high if high is not None else 1e6,
                         allow_nan=False, allow_infinity=False)
    elif kind is Kind.DECIMAL:
        base = _decimal(column)
    elif kind is Kind.DATE:
        base = st.dates(date(1995, 1, 1), TODAY if rules.not_future else date(2035, 12, 31))
    elif kind is Kind.DATETIME:
        top = NOW - timedelta(days=1) if rules.not_future else datetime(2035, 12, 31)
        base = st.datetimes(datetime(1995, 1, 1), top, timezones=st.just(UTC))
    elif kind is Kind.UUID:
        base = st.builds(uuid.uuid4)
    elif kind is Kind.UUID_ARRAY:
        base = st.lists(st.uuids(), max_size=3)
    elif kind is Kind.TEXT_ARRAY:
        if rules.choices is not None:
            base = st.lists(st.sampled_from(rules.choices), max_size=len(rules.choices),
                            unique=True)
        else:
            base = st.lists(st.text(ALPHABET, max_size=12), max_size=3)
    else:
        base = _json(_json_origin(entity, column.name))
    return base


def _words(rule: str) -> set[str]:
    return set(re.findall(r"[a-z_][a-z0-9_]*", rule))


def repair(entity: Entity[Any], values: dict[str, Any]) -> bool:
    """Drop optional values a cross-field validator rejects; False if that cannot satisfy it."""
    for _ in range(4):
        errors: list[FieldError] = [e for v in entity.validators for e in v(values)]
        if not errors:
            return True
        for error in errors:
            names = [error.field] if error.field in values else sorted(_words(error.rule))
            for name in names:
                column = entity.by_name.get(name)
                if name in values and column is not None and not column.required:
                    del values[name]
                    break
    return not [e for v in entity.validators for e in v(values)]


class Builder:
    """Draws valid rows for an entity and creates the parents its references need."""

    def __init__(self, conn: psycopg.Connection[Any], ctx: ExecutionContext,
                 draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self.conn, self.ctx, self.draw = conn, ctx, draw

    def values(self, entity: Entity[Any], stack: tuple[str, ...] = ()) -> dict[str, Any]:
        """A valid row for ``entity``; parent rows are inserted first."""
        out: dict[str, Any] = {}
        for column in (*entity.columns, *entity.secrets):
            if not column.writable:
                continue
            ref = column.rules.references
            if ref is not None:
                wanted = column.required or self.draw(st.booleans())
                if not wanted or ref in stack or ref == entity.table:
                    assert column.nullable, f"{entity.table}.{column.name}: cyclic required reference"
                    if wanted:
                        out[column.name] = None
                    continue
                out[column.name] = self.parent(ref, (*stack, entity.table))
                continue
            if not column.required and not self.draw(st.booleans()):
                continue
            if column.nullable and self.draw(st.integers(0, 4)) == 0:
                out[column.name] = None
                continue
            out[column.name] = self.draw(value_strategy(entity, column))
        assume(repair(entity, out))
        return out

    def parent(self, table: str, stack: tuple[str, ...]) -> uuid.UUID:
        """Create a row of ``table`` and return its id."""
        entity = lookup(table)
        assert entity is not None, f"no entity for referenced table {table}"
        created = self.create(entity, self.values(entity, stack))
        return created.id  # type: ignore[no-any-return]

    def create(self, entity: Entity[Any], values: Mapping[str, Any]) -> Any:
        """Insert through wxdata; the row must validate and the database must accept it."""
        checked = validate_create(entity, values)
        assert isinstance(checked, Success), f"{entity.table}: generated row rejected: {checked}"
        result = crud.create(self.conn, self.ctx, entity, values)
        assert isinstance(result, Success), f"{entity.table}: create failed: {result}"
        return result.unwrap()


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return expected == actual or (expected != expected and actual != actual)
    return bool(expected == actual)


def _pick_update(builder: Builder, entity: Entity[Any], row: Any) -> tuple[str, Any] | None:
    """One writable, non-reference column and a value for it the validators accept."""
    candidates = [c for c in entity.columns
                  if c.writable and c.rules.references is None]
    order = builder.draw(st.permutations(candidates)) if candidates else []
    current = attrs.asdict(row, recurse=False)
    for column in order:
        for _ in range(3):
            value = builder.draw(value_strategy(entity, column))
            merged = {**current, column.name: value}
            if not [e for v in entity.validators for e in v(merged)]:
                return column.name, value
    return None


@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
@given(data=st.data())
def test_crud_round_trip(conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any],
                         sys_ctx: ExecutionContext, entity: Entity[Any], data: st.DataObject
                         ) -> None:
    # SYSTEM: the generated parents live in schools of their own (and some rows have no school);
    # school scoping is proven in test_row_security / test_scope_token, not here
    ctx = sys_ctx
    builder = Builder(conn, ctx, data.draw)
    values = builder.values(entity)
    created = builder.create(entity, values)

    found = crud.find_by_id(conn, ctx, entity, created.id)
    assert found == Success(created), f"{entity.table}: find_by_id differs from create"
    for name, value in values.items():
        column = entity.by_name[name]
        if column.secret_field:
            stored = admin_conn.execute(
                f'SELECT "{name}" FROM "{entity.table}" WHERE id = %s', (created.id,)).fetchone()
            assert stored is not None and stored[0] == value, f"{entity.table}.{name} not stored"
            assert not hasattr(created, name), f"{entity.table}.{name}: secret is readable"
        else:
            assert _same(value, getattr(created, name)), f"{entity.table}.{name} did not round-trip"

    change = _pick_update(builder, entity, created)
    assert change is not None, f"{entity.table}: no writable column to update"
    name, new_value = change
    expected = created.version if entity.versioned else None
    updated = crud.update(conn, ctx, entity, created.id, {name: new_value},
                          expected_version=expected)
    assert isinstance(updated, Success), f"{entity.table}.{name}: update failed: {updated}"
    row = updated.unwrap()
    assert _same(new_value, getattr(row, name)), f"{entity.table}.{name}: update not applied"
    if entity.versioned:
        assert row.version == created.version + 1
        stale = crud.update(conn, ctx, entity, created.id, {name: new_value},
                            expected_version=created.version)
        assert isinstance(stale, Failure), f"{entity.table}: stale version accepted"
    assert crud.find_by_id(conn, ctx, entity, created.id) == Success(row)

    assert crud.delete(conn, ctx, entity, created.id) == Success(None)
    assert crud.find_by_id(conn, ctx, entity, created.id) == Failure(NotFound(entity=entity.name))
    if entity.soft_delete:
        hidden = crud.find_by_id(conn, ctx, entity, created.id, include_deleted=True).unwrap()
        assert hidden.deleted_at is not None
        restored = crud.restore(conn, ctx, entity, created.id)
        assert isinstance(restored, Success) and restored.unwrap().deleted_at is None
        assert isinstance(crud.find_by_id(conn, ctx, entity, created.id), Success)
    else:
        left = admin_conn.execute(f'SELECT count(*) FROM "{entity.table}" WHERE id = %s',
                                  (created.id,)).fetchone()
        assert left == (0,), f"{entity.table}: hard delete left the row"


def test_phi_entities_soft_delete() -> None:
    offenders = [e.table for e in ENTITIES if e.is_phi and not e.soft_delete]
    assert not offenders, f"PHI entities without deleted_at: {offenders}"


def test_no_clinical_table_cascades_from_students(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT conrelid::regclass::text, confdeltype FROM pg_constraint"
        " WHERE contype = 'f' AND confrelid = 'public.students'::regclass").fetchall()
    referencing = {table for table, _ in rows}
    linked = {e.table for e in ENTITIES
              if any(c.rules.references == "students" for c in e.columns)}
    assert linked <= referencing, f"declared but no FK: {sorted(linked - referencing)}"
    cascading = sorted(table for table, action in rows if action == "c")
    assert not cascading, f"ON DELETE CASCADE from students: {cascading}"


def test_every_soft_delete_table_restricts_student_deletes(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT conrelid::regclass::text, confdeltype FROM pg_constraint"
        " WHERE contype = 'f' AND confrelid = 'public.students'::regclass").fetchall()
    assert rows and all(action == "r" for _, action in rows), rows
